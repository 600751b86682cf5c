"""cvgrade: grade PyTorch computer-vision assignments and write Gradescope's results.json."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``grader.check`` (from a notebook cell), imported on first use only."""
    if name == "check":
        from grader.notebook import check

        return check
    raise AttributeError(f"module 'grader' has no attribute {name!r}")

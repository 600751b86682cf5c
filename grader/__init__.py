"""cvgrade: grade PyTorch computer-vision assignments and write Gradescope's results.json."""

__version__ = "0.1.0"

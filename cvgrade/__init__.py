"""``from cvgrade import check``: check your saved files (``.py`` or ``.ipynb``) from a notebook cell.

The engine is the ``grader`` package; this name only makes a notebook's import read as the command.
"""

from grader import __version__
from grader.notebook import check

__all__ = ["__version__", "check"]

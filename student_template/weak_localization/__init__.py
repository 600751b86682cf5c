"""Weakly supervised localization and WSDDN (CMU 16-824 Fall 2022, ``object-localization``).

The handout's files import each other by flat name (``from AlexNet import *``,
``from utils import nms``), as students run them from their folder. Put this
folder on ``sys.path`` so that ``python -m reference.weak_localization.task_1``
works the same way.
"""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

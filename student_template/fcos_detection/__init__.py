"""FCOS detection (CMU 16-824 S24 HW1 Q3, from UMich EECS 498 A4).

The handout's files import each other by flat name (``from detection_utils import
nms``), as students run them from their folder. Put this folder on ``sys.path``
so that ``python -m reference.fcos_detection.train`` works the same way.
"""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

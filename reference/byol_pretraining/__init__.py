"""BYOL self-supervised pre-training and the Office-Home settings A-E (DLCV HW1 P2).

The assignment's files import each other by flat name (``from byol import BYOL``),
as students run them from their folder. Put this folder on ``sys.path`` so that
``python -m reference.byol_pretraining.train_byol`` works the same way.
"""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

"""Semantic segmentation (CSE344 2024 A1 Q3 on IDD/Cityscapes; DLCV hw1 P3 on satellite masks).

The handout's files import each other by flat name (``from mask_utils import
read_mask``), as students run them from their folder. Put this folder on
``sys.path`` so that ``python -m reference.semantic_segmentation.train`` works the same way.
"""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

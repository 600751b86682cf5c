"""PASCAL VOC multi-label classification (CMU 16-824 S24 HW1 Q1-Q2, and the 2020 edition's tasks).

The handout's files import each other by flat name (``from voc_dataset import
VOCDataset``), as students run them from their folder. Put this folder on
``sys.path`` so that ``python -m reference.voc_classification.train_q1`` works
the same way.
"""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

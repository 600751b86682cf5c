"""Wildlife image classification (seeds 003 §1-2 and 004 P1): theory checks, CNN / ResNet-18 / VGG13.

The assignment's files import each other by flat name (``from metrics import
f1_score``), as students run them from their folder. Put this folder on
``sys.path`` so that ``python -m reference.wildlife_classification.train`` works
the same way.
"""

import os as _os
import sys as _sys

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if _HERE not in _sys.path:
    _sys.path.insert(0, _HERE)

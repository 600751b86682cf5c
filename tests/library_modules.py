"""Which modules are libraries (standard library or installed packages), for tests/conftest.py.

A module of its own, not in conftest.py: ``from conftest import ...`` in a test module can
find one of the assignments' conftest modules instead.
"""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
from pathlib import Path

_LIBRARY_DIRS = tuple({str(Path(p).resolve()) + os.sep for p in (
    *(sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")),
    *site.getsitepackages(), site.getusersitepackages()) if p})


@functools.cache
def _in_library_dir(path: str) -> bool:
    return (str(Path(path).resolve()) + os.sep).startswith(_LIBRARY_DIRS)


def is_library_module(name: str) -> bool:
    """True for a module of the standard library or of an installed package (paths cached: a snapshot
    checks every one of the ~4000 modules that torch and the oracles import)."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    places = [file] if file else list(getattr(module, "__path__", None) or [])
    return all(_in_library_dir(p) for p in places)

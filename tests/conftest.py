"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import functools
import os
import site
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

from _pytest import pytester as _pytester
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile(
    "cvgrade", derandomize=True, deadline=None, database=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "cvgrade"))


# pytester forgets, after each in-process run and after each test, the modules first
# imported meanwhile. For a library that is harmful: importing torchvision.transforms.v2
# a second time in one process left byol's ToDtype returning uint8 after a segmentation
# suite (through torchmetrics) had imported it first, and importing some C extensions
# twice crashes the process. Installed and standard-library modules are kept; course
# files, test modules and the grader's own modules are still forgotten.
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


class _SysModulesSnapshotKeepingLibraries(_pytester.SysModulesSnapshot):
    def __init__(self, preserve: Callable[[str], bool] | None = None) -> None:
        super().__init__(preserve=lambda name: is_library_module(name) or (preserve is not None and preserve(name)))


_pytester.SysModulesSnapshot = _SysModulesSnapshotKeepingLibraries
os.environ.setdefault("MPLBACKEND", "Agg")

"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import os
from collections.abc import Callable

from _pytest import pytester as _pytester
from hypothesis import HealthCheck, settings
from library_modules import is_library_module

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
class _SysModulesSnapshotKeepingLibraries(_pytester.SysModulesSnapshot):
    def __init__(self, preserve: Callable[[str], bool] | None = None) -> None:
        super().__init__(preserve=lambda name: is_library_module(name) or (preserve is not None and preserve(name)))


_pytester.SysModulesSnapshot = _SysModulesSnapshotKeepingLibraries
os.environ.setdefault("MPLBACKEND", "Agg")

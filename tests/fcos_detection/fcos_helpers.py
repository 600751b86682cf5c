"""Helpers of the fcos_detection project tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_suite_module(relative: str):
    """A graded test file as a module (to check its golden constants against the reference)."""
    path = ROOT / "grader" / "suites" / "fcos_detection" / relative
    spec = importlib.util.spec_from_file_location(f"_fcos_suite_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Fixtures of the weak_localization project tests: the reference modules, loaded in isolation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from grader import manifest as manifests
from grader.sandbox.loader import load_modules

MODULES = ("AlexNet", "voc_dataset", "wsddn", "utils", "task_1", "task_2")


def load_reference() -> SimpleNamespace:
    """The reference's flat modules (``AlexNet``, ``utils`` ...) without leaving them on ``sys.path``."""
    manifest = manifests.get("weak_localization")
    return SimpleNamespace(**load_modules(manifest.reference_dir, MODULES, isolated=True))


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    return load_reference()

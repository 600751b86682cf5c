"""Fixtures of the byol_pretraining project tests: the reference modules, loaded in isolation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from grader import manifest as manifests
from grader.sandbox.loader import load_modules

MODULES = ("augmentations", "byol", "officehome", "downstream", "train_byol", "settings_table")


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    """The reference modules of byol_pretraining (``ref.byol.BYOL``), without touching ``sys.path`` for good."""
    directory = manifests.get("byol_pretraining").reference_dir
    return SimpleNamespace(**load_modules(directory, list(MODULES), isolated=True))



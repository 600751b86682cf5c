"""Fixtures of the semantic_segmentation project tests: the reference modules, loaded without touching sys.path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from grader import manifest as manifests
from grader.sandbox.loader import load_modules

MODULES = ("mask_utils", "seg_dataset", "seg_models", "seg_losses", "seg_metrics", "inference", "train")


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    """The reference's modules by name: ``ref.seg_metrics.confusion_matrix(...)``."""
    manifest = manifests.get("semantic_segmentation")
    return SimpleNamespace(**load_modules(manifest.reference_dir, MODULES, isolated=True))

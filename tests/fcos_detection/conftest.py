"""Fixtures of the fcos_detection project tests: the reference modules, imported once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def ref():
    """The reference modules (``ref.detection_utils``, ``ref.one_stage_detector``, ...)."""
    from grader import manifest
    from grader.sandbox.loader import load_modules

    names = ["detection_utils", "one_stage_detector", "detection_helper", "train"]
    modules = load_modules(manifest.get("fcos_detection").reference_dir, names, isolated=True)

    class Namespace:
        pass

    space = Namespace()
    for name, module in modules.items():
        setattr(space, name, module)
    return space


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small tensors on a shared 2-core machine: one intra-op thread is much faster (restored afterwards)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

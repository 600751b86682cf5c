"""Fixtures of the voc_classification project tests: the reference, loaded without leaking flat module names.

The handout's files import each other by flat name (``import utils``); other
assignments have files of the same names, so the reference is imported with
``grader.sandbox.loader.load_modules(isolated=True)`` and its modules are put
back under their flat names only inside ``flat_names()`` (for the scripts'
``main`` functions, which import lazily).
"""

from __future__ import annotations

import contextlib
import sys
from types import SimpleNamespace

import pytest

from grader import manifest as manifests
from grader.sandbox.loader import load_modules

MODULES = ("voc_dataset", "simple_cnn", "caffe_net", "utils", "trainer", "train_q1", "train_q2", "analysis",
           "q0_hello_mnist")


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread for torch and OpenMP: on a shared 2-core machine more threads spin against each other
    (scikit-learn's t-SNE and ResNet-18 ran 10x slower)."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ref_modules() -> dict:
    return load_modules(manifests.get("voc_classification").reference_dir, MODULES, isolated=True)


@pytest.fixture(scope="session")
def ref(ref_modules) -> SimpleNamespace:
    """The reference modules as attributes: ``ref.utils.compute_ap``."""
    return SimpleNamespace(**ref_modules)


@pytest.fixture
def flat_names(ref_modules):
    """A context manager under which ``import utils`` etc. find the reference modules."""

    @contextlib.contextmanager
    def context():
        directory = str(manifests.get("voc_classification").reference_dir)
        saved = {name: sys.modules.get(name) for name in ref_modules}
        sys.modules.update(ref_modules)
        sys.path.insert(0, directory)
        try:
            yield
        finally:
            sys.path.remove(directory)
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module

    return context

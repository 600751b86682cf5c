"""Settings shared by every graded suite.

Randomized tests must give the same score at every regrade: hypothesis runs
derandomized (and without shrinking, so that a failing submission costs no more
time than a passing one), and every test starts from a seed derived from its own
id (the student's process is seeded the same way by the ``student`` fixture).
"""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

# No shrinking: a failing student would otherwise be re-run hundreds of times (grading time must stay
# bounded); the failure message already shows the call and its small inputs.
settings.register_profile(
    "cvgrade-suites", derandomize=True, deadline=None, database=None, print_blob=False, max_examples=60,
    suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate),
)
settings.load_profile("cvgrade-suites")


@pytest.fixture(autouse=True)
def _seed_everything(request: pytest.FixtureRequest) -> None:
    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.manual_seed(seed)


@pytest.fixture
def worker_chdir(student):
    """``with worker_chdir(path):`` runs the student's code from ``path`` (the student's process changes
    its working directory, and changes it back afterwards)."""
    @contextlib.contextmanager
    def chdir(path: Path) -> Iterator[None]:
        os_module = student.import_library("os")
        previous = os_module.getcwd()
        os_module.chdir(str(path))
        try:
            yield
        finally:
            os_module.chdir(previous)

    return chdir

"""Hidden speed check (part ``extended``) of metrics.compute_ap against the reference (identical sandboxed workers, ``grader.perf``).

5000 rows x 20 classes (the size of VOC 2007 test); every result is checked.
NumPy's sort dominates the reference, so a Python loop over the entries is only
12-18x slower here (not the > 100x of the detection checks; 11.9x in the
sandbox, whose call overhead the reference pays too), and the starter's loop of
scikit-learn calls over the classes 3.8x (measured on 2 cores, load 0.3): full
credit up to 3x, none from 8x (docs/performance.md has the measurements). The CUDA variant
carries no points (compute_ap works on NumPy arrays; it is timed with CUDA
tensors as inputs where a GPU is available).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from grader.compare import assert_close
from grader.perf import SpeedPolicy

POLICY = SpeedPolicy(full_at=3.0, none_at=8.0)
ROWS, CLASSES = 5000, 20


pytestmark = [pytest.mark.usefixtures("one_torch_thread"),  # as in the workers, also with --no-sandbox
              pytest.mark.part("extended")]


def ap_inputs(seed: int, as_tensors: bool = False):
    """Labels (~8 % positive), scores rounded to 1/1000 (ties), ~3 % invalid (difficult) entries."""
    rng = np.random.default_rng(seed)
    gt = (rng.random((ROWS, CLASSES)) < 0.08).astype(np.float32)
    pred = np.round(rng.random((ROWS, CLASSES)) * 0.6 + gt * rng.random((ROWS, CLASSES)) * 0.5, 3).astype(np.float32)
    valid = (rng.random((ROWS, CLASSES)) > 0.03).astype(np.float32)
    arrays = (gt, pred, valid)
    if as_tensors:
        arrays = tuple(torch.from_numpy(a) for a in arrays)
    return arrays, {}


def check_ap(got, expected):
    assert_close(torch.as_tensor(np.asarray(got, dtype=np.float64)), torch.as_tensor(np.asarray(expected)),
                 rtol=1e-9, atol=1e-12, equal_nan=True)


CHECKS = {
    "compute_ap": dict(function="metrics.compute_ap", inputs=lambda i: ap_inputs(100 + i), check=check_ap,
                       policy=POLICY),
}


@pytest.mark.weight(1)
@pytest.mark.number("4.2")
def test_speed_compute_ap(timing):
    """compute_ap is vectorized: 5000 rows x 20 classes, within 3x of the reference for full credit"""
    timing.grade(**CHECKS["compute_ap"])


@pytest.mark.cuda
@pytest.mark.weight(1)
def test_speed_cuda_compute_ap(timing):
    """compute_ap speed with CUDA tensors as inputs (counted where the course grades on a GPU, grading.gpu = true)"""
    timing.grade("metrics.compute_ap", inputs=lambda i: ap_inputs(100 + i, as_tensors=True), check=check_ap,
                 policy=POLICY, device="cuda")

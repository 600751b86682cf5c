"""Hidden speed checks of the segmentation metrics against the reference (``grader.perf``).

``confusion_matrix`` and ``per_image_iou`` on 4 masks of 128 x 128 with 19
classes and ignored pixels, fresh inputs per call, every result checked: a
Python loop over pixels is several hundred times the reference. The CUDA
variants are counted only where the manifest says ``grading.gpu = true``.
"""

from __future__ import annotations

import pytest
import torch

from grader.compare import assert_close, assert_equal
from grader.perf import SpeedPolicy

POLICY = SpeedPolicy(full_at=4.0, none_at=40.0)
CLASSES = 19


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as in the workers, also with --no-sandbox


def masks(seed: int, count: int = 4, size: int = 128):
    """Predicted and true label maps (about 70 % agreement, 5 % of the targets ignored: 255)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, CLASSES, (count, size, size), generator=g)
    noise = torch.randint(0, CLASSES, (count, size, size), generator=g)
    pred = torch.where(torch.rand(count, size, size, generator=g) < 0.7, target, noise)
    target = target.masked_fill(torch.rand(count, size, size, generator=g) < 0.05, 255)
    return (pred, target, CLASSES), {}


def close(got, expected):
    assert_close(got, expected, rtol=1e-12, atol=0, equal_nan=True)


CHECKS = {
    "confusion_matrix": dict(function="seg_metrics.confusion_matrix", inputs=lambda i: masks(100 + i),
                             check=assert_equal, policy=POLICY),
    "per_image_iou": dict(function="seg_metrics.per_image_iou", inputs=lambda i: masks(200 + i), check=close,
                          policy=POLICY),
}


@pytest.mark.weight(1)
@pytest.mark.number("2.18")
def test_speed_confusion_matrix(timing):
    """confusion_matrix is vectorized: 4 masks of 128 x 128, 19 classes, within 4x of the reference"""
    timing.grade(**CHECKS["confusion_matrix"])


@pytest.mark.weight(1)
@pytest.mark.number("2.19")
def test_speed_per_image_iou(timing):
    """per_image_iou is vectorized: 4 masks of 128 x 128, 19 classes, within 4x of the reference"""
    timing.grade(**CHECKS["per_image_iou"])


@pytest.mark.cuda
@pytest.mark.weight(2)
@pytest.mark.parametrize("which", sorted(CHECKS))
def test_speed_cuda(timing, which):
    """speed on a GPU (counted where the course grades on a GPU, grading.gpu = true)"""
    timing.grade(**CHECKS[which], device="cuda")

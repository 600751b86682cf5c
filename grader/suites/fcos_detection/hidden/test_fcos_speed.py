"""Hidden speed checks: deltas / centerness, and (extended profile) nms and mAP, against the reference.

Each check times the student's function and the reference's in identical
sandboxed workers on fresh inputs per call (``grader.perf``), checks every
result, and awards credit on a log scale of the time ratio. The graded sizes
are chosen so that the reference takes a few milliseconds and a per-element
Python loop (tests/mutants: ``*_loop``) is more than 100x slower; see
docs/performance.md for the measurements. The CUDA variants are
counted only where the manifest says ``grading.gpu = true`` (a course grading on its
own GPU machine); elsewhere they report the ratio with weight 0 on a GPU machine.
"""

from __future__ import annotations

import pytest
import torch

from grader.compare import assert_close, assert_equal
from grader.perf import SpeedPolicy

STRIDES = {"p3": 8, "p4": 16, "p5": 32}
# nms: the docstring allows a Python loop over the *kept* boxes (7-8x the reference here, measured in
# tests/test_speed_checks.py), so full credit reaches 20x; a loop over pairs of boxes is about 400x.
NMS_POLICY = SpeedPolicy(full_at=20.0, none_at=150.0)
DEFAULT_POLICY = SpeedPolicy(full_at=4.0, none_at=40.0)
EXTENDED = {"nms", "map"}  # checks of the extended profile's functions
# Speed is this project's requirement, not the course's (its starter asks for correct code only): every
# speed check belongs to a part of the extended profile.


def clustered_boxes(seed: int, count: int = 300, objects: int = 15, size: float = 800.0):
    """Detector-like output: ``count`` jittered boxes around ``objects`` objects, random scores."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(objects, 2, generator=g) * size
    sizes = torch.rand(objects, 2, generator=g) * 120 + 16
    which = torch.randint(0, objects, (count,), generator=g)
    jitter = torch.randn(count, 4, generator=g) * 0.15
    centre, wh = centres[which], sizes[which]
    x1y1 = centre - wh / 2 + jitter[:, :2] * wh
    x2y2 = centre + wh / 2 + jitter[:, 2:] * wh
    boxes = torch.cat([torch.minimum(x1y1, x2y2 - 1), torch.maximum(x2y2, x1y1 + 1)], dim=1)
    return boxes, torch.rand(count, generator=g)


def delta_inputs(seed: int, count: int = 30000):
    """Locations with their matched boxes, 70 % background rows."""
    g = torch.Generator().manual_seed(seed)
    locations = torch.rand(count, 2, generator=g) * 800
    x1y1 = locations - torch.rand(count, 2, generator=g) * 200 - 1
    x2y2 = locations + torch.rand(count, 2, generator=g) * 200 + 1
    gt = torch.cat([x1y1, x2y2, torch.randint(0, 20, (count, 1), generator=g).float()], dim=1)
    gt[torch.rand(count, generator=g) < 0.7] = -1
    return locations, gt


def centerness_inputs(seed: int, count: int = 30000):
    locations, gt = delta_inputs(seed, count)
    deltas = torch.cat([locations - gt[:, :2], gt[:, 2:4] - locations], dim=1) / 16
    return deltas.masked_fill((gt[:, :4] == -1).all(dim=1, keepdim=True), -1)


def map_inputs(seed: int, images: int = 50, per_image: int = 80, classes: int = 20):
    """A test set: 1-6 GT boxes per image (10 % difficult), ``per_image`` jittered detections each."""
    g = torch.Generator().manual_seed(seed)
    detections, ground_truths, difficult = [], [], []
    for _ in range(images):
        m = int(torch.randint(1, 7, (1,), generator=g))
        xy = torch.rand(m, 2, generator=g) * 400
        wh = torch.rand(m, 2, generator=g) * 150 + 10
        gt = torch.cat([xy, xy + wh, torch.randint(0, classes, (m, 1), generator=g).float()], dim=1)
        which = torch.randint(0, m, (per_image,), generator=g)
        box = gt[which, :4] + torch.randn(per_image, 4, generator=g) * 12
        box = torch.cat([torch.minimum(box[:, :2], box[:, 2:] - 1), torch.maximum(box[:, 2:], box[:, :2] + 1)], 1)
        cls = torch.where(torch.rand(per_image, generator=g) < 0.8, gt[which, 4],
                          torch.randint(0, classes, (per_image,), generator=g).float())
        detections.append(torch.cat([box, cls[:, None], torch.rand(per_image, 1, generator=g)], dim=1))
        ground_truths.append(gt)
        difficult.append(torch.rand(m, generator=g) < 0.1)
    return (detections, ground_truths, classes), {"difficult": difficult}


def close(got, expected):
    assert_close(got, expected, rtol=1e-5, atol=1e-5)


def close_map(got, expected):
    assert_close(got[0], expected[0], rtol=1e-9, atol=1e-9, equal_nan=True)


CHECKS = {
    "nms": dict(function="detection_utils.nms", inputs=lambda i: ((*clustered_boxes(100 + i), 0.5), {}),
                check=assert_equal, policy=NMS_POLICY),
    "deltas": dict(function="detection_utils.fcos_get_deltas_from_locations",
                   inputs=lambda i: ((*delta_inputs(300 + i), 16), {}), check=close, policy=DEFAULT_POLICY),
    "centerness": dict(function="detection_utils.fcos_make_centerness_targets",
                       inputs=lambda i: ((centerness_inputs(400 + i),), {}), check=close, policy=DEFAULT_POLICY),
    # One input set for every call: staging lists of many small tensors is slow (about 2 ms a tensor).
    "map": dict(function="detection_utils.compute_map", inputs=lambda i: map_inputs(500 + i),
                check=close_map, policy=DEFAULT_POLICY),
}


@pytest.mark.part("extended")
@pytest.mark.weight(1)
@pytest.mark.number("8.9")
def test_speed_nms(timing):
    """nms is vectorized: 300 detector-like boxes (15 objects), within 20x of the reference for full credit"""
    timing.grade(**CHECKS["nms"])


@pytest.mark.part("speed")
@pytest.mark.weight(0.5)
@pytest.mark.number("3.9")
def test_speed_deltas(timing):
    """fcos_get_deltas_from_locations is vectorized (30000 locations)"""
    timing.grade(**CHECKS["deltas"])


@pytest.mark.part("speed")
@pytest.mark.weight(0.5)
@pytest.mark.number("3.10")
def test_speed_centerness(timing):
    """fcos_make_centerness_targets is vectorized (30000 locations)"""
    timing.grade(**CHECKS["centerness"])


@pytest.mark.part("extended")
@pytest.mark.weight(1)
@pytest.mark.number("9.4")
def test_speed_map(timing):
    """compute_map is vectorized: 50 images, 80 detections each, 20 classes"""
    timing.grade(**CHECKS["map"])


@pytest.mark.cuda
@pytest.mark.weight(3)
@pytest.mark.parametrize("which", [pytest.param(name, marks=[pytest.mark.part("extended" if name in EXTENDED else "speed")])
                                   for name in sorted(CHECKS)])
def test_speed_cuda(timing, which):
    """speed on a GPU (counted where the course grades on a GPU, grading.gpu = true)"""
    timing.grade(**CHECKS[which], device="cuda")

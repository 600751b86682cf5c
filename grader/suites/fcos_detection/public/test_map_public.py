"""Public test of VOC-style detection mAP (a hand-computed scene)."""

from __future__ import annotations

import math

import pytest
import torch

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs

# This project's extended FCOS work: graded only in the manifest's 'extended' profile.
pytestmark = pytest.mark.part("extended")

# One class with ground truth (class 0): image 0 has boxes A and B, image 1 has C and a difficult box D.
GROUND_TRUTHS = [
    torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0], [20.0, 20.0, 30.0, 30.0, 0.0], [-1.0, -1.0, -1.0, -1.0, -1.0]]),
    torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0], [50.0, 50.0, 60.0, 60.0, 0.0], [0.0, 0.0, 5.0, 5.0, 2.0]]),
]
DIFFICULT = [torch.tensor([False, False, False]), torch.tensor([False, True, False])]
DETECTIONS = [
    torch.tensor([[0.0, 0.0, 10.0, 10.0, 0.0, 0.9],     # TP (A)
                  [1.0, 1.0, 10.0, 10.0, 0.0, 0.8],     # duplicate of A: FP
                  [40.0, 40.0, 50.0, 50.0, 0.0, 0.5],   # nothing there: FP
                  [21.0, 21.0, 30.0, 30.0, 0.0, 0.4],   # TP (B, IoU 0.81)
                  [0.0, 0.0, 9.0, 9.0, 1.0, 0.95]]),    # class 1 has no ground truth
    torch.tensor([[50.0, 50.0, 60.0, 60.0, 0.0, 0.7],   # the difficult box: ignored
                  [0.0, 0.0, 10.0, 9.0, 0.0, 0.6]]),    # TP (C, IoU 0.9)
]
# Ranked (ignored one dropped): TP FP TP FP TP, npos = 3: precision 1, 1/2, 2/3, 1/2, 3/5.
ALL_POINT = (1.0 + 2.0 / 3.0 + 0.6) / 3.0
ELEVEN_POINT = (4 * 1.0 + 3 * (2.0 / 3.0) + 4 * 0.6) / 11.0


@pytest.mark.weight(2)
@pytest.mark.number("9.1")
@pytest.mark.parametrize("use_07_metric", [False, True])
def test_map_hand_made(student, use_07_metric):
    """compute_map: duplicates, difficult boxes, classes without ground truth (NaN) or detections (0)"""
    ap, mean_ap = call_keeping_inputs(student.detection_utils.compute_map, DETECTIONS, GROUND_TRUTHS, 3,
                                      iou_threshold=0.5, use_07_metric=use_07_metric, difficult=DIFFICULT)
    call = describe_call("compute_map", DETECTIONS, GROUND_TRUTHS, 3, iou_threshold=0.5,
                         use_07_metric=use_07_metric, difficult=DIFFICULT)
    check(isinstance(ap, torch.Tensor) and ap.shape == (3,), f"expected AP per class as a tensor of shape [3], got "
          f"{ap!r}", call=call)
    expected_ap = ELEVEN_POINT if use_07_metric else ALL_POINT
    assert_close(ap.double(), torch.tensor([expected_ap, math.nan, 0.0], dtype=torch.float64), equal_nan=True,
                 rtol=1e-6, call=call, what="AP per class",
                 hint="class 0: the second detection of box A is a duplicate (FP), the difficult box is ignored; "
                      "class 1 has no ground truth (NaN); class 2 has ground truth but no detection (0)")
    assert_close(float(mean_ap), (expected_ap + 0.0) / 2, rtol=1e-6, call=call, what="mAP",
                 hint="the mean over classes that have ground truth")

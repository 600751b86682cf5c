"""Public tests of box IoU and NMS (shipped to students; no reference needed)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from grader.compare import assert_close, assert_equal, describe_call
from grader.student import call_keeping_inputs

# This project's extended FCOS work: graded only in the manifest's 'extended' profile.
pytestmark = pytest.mark.part("extended")


def random_boxes(count: int, generator: torch.Generator, size: float = 400.0) -> torch.Tensor:
    xy = torch.rand(count, 2, generator=generator) * size
    wh = torch.rand(count, 2, generator=generator) * size / 4 + 1
    return torch.cat([xy, xy + wh], dim=1)


@pytest.mark.weight(1)
@pytest.mark.number("8.1")
def test_box_iou_hand_made(student):
    """box_iou on hand-made boxes (overlap, touching, disjoint, identical)"""
    boxes1 = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    boxes2 = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 4.0, 2.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    expected = torch.tensor([[1 / 7, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.25]])
    got = call_keeping_inputs(student.detection_utils.box_iou, boxes1, boxes2)
    assert_close(got, expected, call=describe_call("box_iou", boxes1, boxes2),
                 hint="IoU = intersection / (area1 + area2 - intersection); clamp negative widths to 0")


@pytest.mark.weight(1)
@pytest.mark.number("8.2")
@pytest.mark.parametrize("count", [1, 20, 200])
def test_nms_matches_torchvision(student, count):
    """nms keeps the same boxes as torchvision.ops.nms, its inputs unchanged"""
    generator = torch.Generator().manual_seed(count)
    boxes = random_boxes(count, generator)
    scores = torch.rand(count, generator=generator)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    # The caller's boxes and scores must come back unchanged (inference still returns those scores).
    got = call_keeping_inputs(student.detection_utils.nms, boxes, scores, 0.5)
    assert_equal(got, expected, call=describe_call("nms", boxes, scores, iou_threshold=0.5),
                 hint="return int64 indices of the kept boxes, highest score first; leave the boxes and scores "
                      "you were given unchanged")


@pytest.mark.weight(1)
@pytest.mark.number("8.3")
def test_nms_empty(student):
    """nms of no boxes is an empty int64 tensor"""
    boxes, scores = torch.zeros(0, 4), torch.zeros(0)
    got = student.detection_utils.nms(boxes, scores, 0.5)
    assert_equal(got, torch.zeros(0, dtype=torch.long), call=describe_call("nms", boxes, scores, 0.5))

"""Hidden tests of box IoU and NMS: boundaries, ties and random scenes against the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_equal, describe_call
from grader.student import call_keeping_inputs

# This project's extended FCOS work: graded only in the manifest's 'extended' profile.
pytestmark = pytest.mark.part("extended")


@st.composite
def scenes(draw, max_boxes: int = 40):
    """Boxes on a coarse integer grid (many exact ties in IoU and in score).

    Thresholds are exact in float32, so IoU == threshold means the same whether the comparison is made in
    float32 or, as torchvision does, in float64.
    """
    count = draw(st.integers(0, max_boxes))
    corners = draw(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(1, 6), st.integers(1, 6)),
                            min_size=count, max_size=count))
    scores = draw(st.lists(st.sampled_from([0.1, 0.5, 0.5, 0.9, 0.3]), min_size=count, max_size=count))
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in corners], dtype=torch.float32).reshape(-1, 4)
    threshold = draw(st.sampled_from([0.0, 0.25, 0.375, 0.5, 0.75]))
    return boxes, torch.tensor(scores, dtype=torch.float32), threshold


@pytest.mark.weight(1)
@pytest.mark.number("8.5")
def test_nms_iou_equal_to_threshold_is_kept(student):
    """nms suppresses only when IoU is strictly greater than the threshold"""
    boxes = torch.tensor([[0.0, 0.0, 3.0, 1.0], [1.0, 0.0, 4.0, 1.0]])  # IoU exactly 0.5
    scores = torch.tensor([0.9, 0.8])
    got = student.detection_utils.nms(boxes, scores, 0.5)
    assert_equal(got, torch.tensor([0, 1]), call=describe_call("nms", boxes, scores, 0.5),
                 hint="use IoU > threshold, not >=")


@pytest.mark.weight(1)
@pytest.mark.number("8.6")
def test_nms_equal_scores_in_index_order(student):
    """nms visits equal scores in index order"""
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.1], [10.0, 10.0, 12.0, 12.0]])
    scores = torch.tensor([0.5, 0.5, 0.5])
    got = student.detection_utils.nms(boxes, scores, 0.5)
    assert_equal(got, torch.tensor([0, 2]), call=describe_call("nms", boxes, scores, 0.5),
                 hint="sort scores with a stable sort so that ties keep index order")


@pytest.mark.weight(0.5)
@pytest.mark.number("8.7")
@settings(max_examples=20)
@given(scenes())
def test_nms_random_scenes(student, reference, scene):
    """nms on random scenes with ties and boundary IoUs"""
    boxes, scores, threshold = scene
    expected = reference.detection_utils.nms(boxes, scores, threshold)
    got = call_keeping_inputs(student.detection_utils.nms, boxes, scores, threshold)
    assert_equal(got, expected, call=describe_call("nms", boxes, scores, threshold))

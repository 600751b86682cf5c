"""Hidden tests of the targets: boundaries of the matching rules and random scenes against the reference."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, describe_call

STRIDES = {"p3": 8, "p4": 16, "p5": 32}
BG = [-1.0] * 5


@pytest.mark.weight(1)
@pytest.mark.number("3.3")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_location_coords_random_shapes(student, reference, dtype):
    """get_fpn_location_coords on non-square maps and other strides equals the reference (either order)"""
    generator = torch.Generator().manual_seed(7)
    for _ in range(4):
        sizes = torch.randint(1, 13, (3, 2), generator=generator).tolist()
        shapes = {level: (2, 4, h, w) for level, (h, w) in zip(("p3", "p4", "p5"), sizes)}
        strides = {"p3": 4, "p4": 12, "p5": 40}
        got = student.detection_utils.get_fpn_location_coords(shapes, strides, dtype=dtype)
        expected = reference.detection_utils.get_fpn_location_coords(shapes, strides, dtype=dtype)
        call = describe_call("get_fpn_location_coords", shapes, strides, dtype=dtype)
        for level, (_, _, h, w) in shapes.items():
            value = expected[level]
            transposed = value.reshape(h, w, 2).transpose(0, 1).reshape(-1, 2)
            if isinstance(got.get(level), torch.Tensor) and got[level].dtype == dtype and \
                    got[level].shape == transposed.shape and torch.equal(got[level], transposed):
                continue
            assert_close(got[level], value, call=call, what=level,
                         hint="(x, y) = (stride * (column + 0.5), stride * (row + 0.5)) for every location")


@pytest.mark.weight(2)
@pytest.mark.number("4.3")
def test_match_boundaries_and_ties(student, reference):
    """matching at exactly 64 / 128, on box edges, and between boxes of equal or nearly equal area"""
    locations = {
        "p3": torch.tensor([[32.0, 32.0], [10.0, 30.0], [50.0, 50.0], [120.0, 20.0]]),
        "p4": torch.tensor([[32.0, 32.0], [64.0, 40.0], [50.0, 50.0]]),
        "p5": torch.tensor([[64.0, 40.0], [200.0, 20.0]]),
    }
    boxes = torch.tensor([
        [0.0, 0.0, 96.0, 64.0, 1.0],      # (32, 32): max distance exactly 64 -> neither p3 nor p4
        [0.0, 0.0, 192.0, 80.0, 2.0],     # (64, 40): max distance exactly 128 -> neither p4 nor p5
        [10.0, 20.0, 30.0, 60.0, 3.0],    # (10, 30) lies on its left edge -> not inside
        [40.0, 40.0, 60.0, 64.0, 4.0],    # (50, 50): area 480 ...
        [44.0, 44.0, 64.0, 68.0, 5.0],    # ... equal area, later -> the first one wins
        [100.0, 0.0, 140.0, 36.0, 6.0],   # (120, 20): area 1440 ...
        [104.0, 4.0, 140.0, 44.0, 7.0],   # ... area 1440 too (first wins) ...
        [110.0, 10.0, 130.0, 50.0, 8.0],  # ... area 800: the smallest wins
        [150.0, 0.0, 400.0, 40.0, 9.0],   # (200, 20): reach 200 -> p5
        BG,
    ])
    got = student.detection_utils.fcos_match_locations_to_gt(locations, STRIDES, boxes)
    expected = reference.detection_utils.fcos_match_locations_to_gt(locations, STRIDES, boxes)
    assert_close(got, expected, call=describe_call("fcos_match_locations_to_gt", locations, STRIDES, boxes),
                 hint="strict inequalities everywhere: all distances > 0, lower < max distance < upper; the "
                      "smallest area wins, the first box among equal areas")


@st.composite
def scenes(draw):
    """Boxes on a 4-pixel grid (areas differ by 0 or >= 16), a few padding rows, one image of up to 192 px."""
    count = draw(st.integers(0, 8))
    rows = []
    for _ in range(count):
        x, y = draw(st.integers(0, 40)) * 4, draw(st.integers(0, 40)) * 4
        w, h = draw(st.integers(1, 45)) * 4, draw(st.integers(1, 45)) * 4
        rows.append([float(x), float(y), float(x + w), float(y + h), float(draw(st.integers(0, 19)))])
    rows += [BG] * draw(st.integers(0, 2))
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


@pytest.mark.weight(2)
@pytest.mark.number("4.4")
@settings(max_examples=15)
@given(boxes=scenes())
def test_match_random_scenes(student, reference, boxes):
    """fcos_match_locations_to_gt on random scenes equals the reference"""
    shapes = {"p3": (1, 1, 24, 24), "p4": (1, 1, 12, 12), "p5": (1, 1, 6, 6)}
    locations = reference.detection_utils.get_fpn_location_coords(shapes, STRIDES)
    got = student.detection_utils.fcos_match_locations_to_gt(locations, STRIDES, boxes)
    expected = reference.detection_utils.fcos_match_locations_to_gt(locations, STRIDES, boxes)
    assert_close(got, expected, call=describe_call("fcos_match_locations_to_gt", locations, STRIDES, boxes))


@pytest.mark.weight(0.5)
@pytest.mark.number("5.4")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deltas_random(student, reference, dtype):
    """deltas of random boxes (with background rows) and their round trip equal the reference"""
    generator = torch.Generator().manual_seed(8)
    for stride in (8, 16, 32):
        n = 60
        locations = (torch.rand(n, 2, generator=generator) * 300).to(dtype)
        corners = torch.rand(n, 2, generator=generator) * 300
        boxes = torch.cat([corners, corners + torch.rand(n, 2, generator=generator) * 200 + 1,
                           torch.randint(0, 20, (n, 1), generator=generator).float()], dim=1).to(dtype)
        boxes[::7] = -1
        got = student.detection_utils.fcos_get_deltas_from_locations(locations, boxes, stride)
        expected = reference.detection_utils.fcos_get_deltas_from_locations(locations, boxes, stride)
        assert_close(got, expected, call=describe_call("fcos_get_deltas_from_locations", locations, boxes, stride),
                     hint="keep the input dtype; background rows (-1 boxes) give -1 deltas")
        deltas = (torch.randn(n, 4, generator=generator) * 2).to(dtype)
        got = student.detection_utils.fcos_apply_deltas_to_locations(deltas, locations, stride)
        expected = reference.detection_utils.fcos_apply_deltas_to_locations(deltas, locations, stride)
        assert_close(got, expected, call=describe_call("fcos_apply_deltas_to_locations", deltas, locations, stride))


@pytest.mark.weight(0.5)
@pytest.mark.number("5.5")
def test_centerness_random(student, reference):
    """centerness of random deltas (and background rows) equals the reference"""
    generator = torch.Generator().manual_seed(9)
    deltas = torch.rand(80, 4, generator=generator) * 10 + 0.01
    deltas[::5] = -1
    for dtype in (torch.float32, torch.float64):
        value = deltas.to(dtype)
        got = student.detection_utils.fcos_make_centerness_targets(value)
        expected = reference.detection_utils.fcos_make_centerness_targets(value)
        assert_close(got, expected, call=describe_call("fcos_make_centerness_targets", value))

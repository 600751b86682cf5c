"""Public tests of the training targets: FPN locations, deltas and centerness (golden values).

The GT matching (``fcos_match_locations_to_gt``) is the course's provided code: no test grades it.
"""

from __future__ import annotations

import pytest
import torch

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs

STRIDES = {"p3": 8, "p4": 16, "p5": 32}
BG = [-1.0] * 5


def row_major(height: int, width: int, stride: int) -> torch.Tensor:
    """Locations with x varying fastest (the order of a (H, W) flatten)."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float().add(0.5).mul(stride)


def column_major(height: int, width: int, stride: int) -> torch.Tensor:
    """Locations with y varying fastest (the order the course's own test lists)."""
    xs, ys = torch.meshgrid(torch.arange(width), torch.arange(height), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float().add(0.5).mul(stride)


@pytest.mark.weight(2)
@pytest.mark.number("3.1")
def test_location_coords_official_rows(student):
    """get_fpn_location_coords: centres at stride * (i + 0.5), first rows as in the course's test"""
    shapes = {"p3": (2, 64, 28, 28), "p4": (2, 64, 14, 14), "p5": (2, 64, 7, 7)}
    got = student.detection_utils.get_fpn_location_coords(shapes, STRIDES)
    call = describe_call("get_fpn_location_coords", shapes, STRIDES)
    check(isinstance(got, dict) and sorted(got) == ["p3", "p4", "p5"],
          f"expected a dict with keys p3, p4, p5, got {type(got).__name__}", call=call)
    official = {  # the first five rows the course's test expects (y varies fastest)
        "p3": torch.tensor([[4.0, 4.0], [4.0, 12.0], [4.0, 20.0], [4.0, 28.0], [4.0, 36.0]]),
        "p4": torch.tensor([[8.0, 8.0], [8.0, 24.0], [8.0, 40.0], [8.0, 56.0], [8.0, 72.0]]),
        "p5": torch.tensor([[16.0, 16.0], [16.0, 48.0], [16.0, 80.0], [16.0, 112.0], [16.0, 144.0]]),
    }
    for level, (_, _, h, w) in shapes.items():
        value = got[level]
        check(isinstance(value, torch.Tensor) and list(value.shape) == [h * w, 2],
              f"{level}: expected a float tensor of shape [{h * w}, 2]", call=call)
        first = value[:5]
        # The course's order or its transpose (x varying fastest); both are fine if the head flattens alike.
        if not torch.allclose(first, official[level]):
            assert_close(first, official[level].flip(1), call=call, what=f"{level}[:5]",
                         hint="location (row i, column j) is (x, y) = (stride * (j + 0.5), stride * (i + 0.5))")
        full = row_major(h, w, STRIDES[level]) if torch.allclose(first, official[level].flip(1)) \
            else column_major(h, w, STRIDES[level])
        assert_close(value, full, call=call, what=level, hint="every location of the map, in one consistent order")


@pytest.mark.weight(1)
@pytest.mark.number("3.2")
def test_location_coords_dtype_device(student):
    """get_fpn_location_coords honours dtype and device, for maps of other sizes"""
    _check_location_coords(student, {"p3": (1, 8, 6, 6), "p4": (1, 8, 3, 3), "p5": (1, 8, 2, 2)})


@pytest.mark.part("non_square")
@pytest.mark.weight(1)
@pytest.mark.number("3.4")
def test_location_coords_non_square(student):
    """get_fpn_location_coords on non-square maps: x runs along W, y along H, H * W rows"""
    _check_location_coords(student, {"p3": (1, 8, 6, 10), "p4": (1, 8, 3, 5), "p5": (1, 8, 2, 3)})


def _check_location_coords(student, shapes):
    got = student.detection_utils.get_fpn_location_coords(shapes, STRIDES, dtype=torch.float64, device="cpu")
    call = describe_call("get_fpn_location_coords", shapes, STRIDES, dtype=torch.float64, device="cpu")
    for level, (_, _, h, w) in shapes.items():
        expected = row_major(h, w, STRIDES[level]).double()
        value = got[level]
        check(isinstance(value, torch.Tensor) and value.dtype == torch.float64,
              f"{level}: expected a float64 tensor, got {getattr(value, 'dtype', type(value).__name__)}",
              call=call, hint="create the coordinates with the dtype and device arguments")
        check(list(value.shape) == [h * w, 2], f"{level}: expected shape [{h * w}, 2], got {list(value.shape)}",
              call=call, hint="H and W are the last two entries of the shape (B, C, H, W)")
        # Either order, as long as it is one of the two.
        if not torch.equal(value, expected):
            assert_close(value, column_major(h, w, STRIDES[level]).double(), call=call, what=level,
                         hint="x = stride * (column + 0.5) runs along W, y = stride * (row + 0.5) along H")


@pytest.mark.weight(2)
@pytest.mark.number("5.1")
def test_deltas_golden(student):
    """fcos_get_deltas_from_locations: the course's golden deltas, background -1, 4- or 5-column boxes"""
    locations = torch.tensor([[32.0, 32.0], [64.0, 32.0]])
    boxes = torch.tensor([[1.0, 2.0, 40.0, 50.0, 2.0], BG])
    expected = torch.tensor([[0.96875, 0.9375, 0.25, 0.5625], [-1.0, -1.0, -1.0, -1.0]])
    # The inputs must come back unchanged: the forward pass still reads the matched boxes after computing deltas.
    got = call_keeping_inputs(student.detection_utils.fcos_get_deltas_from_locations, locations, boxes, 32)
    assert_close(got, expected, call=describe_call("fcos_get_deltas_from_locations", locations, boxes, 32),
                 hint="(xc - x1, yc - y1, x2 - xc, y2 - yc) / stride; background rows give -1")
    got4 = call_keeping_inputs(student.detection_utils.fcos_get_deltas_from_locations, locations, boxes[:, :4], 32)
    assert_close(got4, expected, call=describe_call("fcos_get_deltas_from_locations", locations, boxes[:, :4], 32),
                 hint="the class column is optional: use only the first four columns")


@pytest.mark.weight(2)
@pytest.mark.number("5.2")
def test_apply_deltas(student):
    """fcos_apply_deltas_to_locations: boxes from the course's deltas, clamps negative deltas, background maps to the point"""
    # Deltas given, not computed with the student's fcos_get_deltas_from_locations: this test grades one function.
    locations = torch.tensor([[30.0, 40.0], [32.0, 29.0], [125.0, 150.0]])
    deltas = torch.tensor([[2.5, 3.125, 8.75, 9.375], [0.25, 1.125, 1.0, 0.125], [0.625, 6.25, 9.375, 6.25]])
    boxes = torch.tensor([[10.0, 15.0, 100.0, 115.0], [30.0, 20.0, 40.0, 30.0], [120.0, 100.0, 200.0, 200.0]])
    # The caller's deltas (the head's predictions) must come back unchanged: clamp a copy, not the input.
    got = call_keeping_inputs(student.detection_utils.fcos_apply_deltas_to_locations, deltas, locations, 8)
    assert_close(got, boxes, call=describe_call("fcos_apply_deltas_to_locations", deltas, locations, 8),
                 hint="(xc - l * stride, yc - t * stride, xc + r * stride, yc + b * stride)")
    odd = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [-0.5, 1.0, 2.0, -3.0]])
    points = torch.tensor([[100.0, 200.0], [16.0, 16.0]])
    got = call_keeping_inputs(student.detection_utils.fcos_apply_deltas_to_locations, odd, points, 8)
    assert_close(got, torch.tensor([[100.0, 200.0, 100.0, 200.0], [16.0, 8.0, 32.0, 16.0]]),
                 call=describe_call("fcos_apply_deltas_to_locations", odd, points, 8),
                 hint="multiply by the stride and clamp negative deltas to 0 (the location stays inside its box)")


@pytest.mark.weight(2)
@pytest.mark.number("5.3")
def test_centerness_golden(student):
    """fcos_make_centerness_targets: the course's golden values, background -1"""
    # The course's test: boxes [[10, 15, 100, 115], [30, 20, 40, 30], background] at locations [[30, 40], [32, 29],
    # [125, 150]], stride 8; their deltas are given here (not the student's), so this test grades one function.
    deltas = torch.tensor([[2.5, 3.125, 8.75, 9.375], [0.25, 1.125, 1.0, 0.125], [-1.0, -1.0, -1.0, -1.0]])
    # The caller's deltas must come back unchanged (the box loss uses them too).
    got = call_keeping_inputs(student.detection_utils.fcos_make_centerness_targets, deltas)
    assert_close(got, torch.tensor([0.30860671401, 0.1666666716, -1.0]),
                 call=describe_call("fcos_make_centerness_targets", deltas),
                 hint="sqrt(min(l, r) * min(t, b) / (max(l, r) * max(t, b))); -1 for background rows")

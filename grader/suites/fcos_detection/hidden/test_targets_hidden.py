"""Hidden tests of the targets: FPN locations, deltas and centerness on random inputs against the reference."""

from __future__ import annotations

import pytest
import torch

from grader.compare import assert_close, describe_call
from grader.student import call_keeping_inputs

STRIDES = {"p3": 8, "p4": 16, "p5": 32}
BG = [-1.0] * 5


@pytest.mark.weight(2)
@pytest.mark.number("3.3")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_location_coords_random_shapes(student, reference, dtype):
    """get_fpn_location_coords on maps of random sizes and other strides equals the reference (either order)"""
    _check_random_location_coords(student, reference, dtype, square=True)


@pytest.mark.part("non_square")
@pytest.mark.weight(1)
@pytest.mark.number("3.5")
def test_location_coords_random_non_square(student, reference):
    """get_fpn_location_coords on random non-square maps equals the reference (either order)"""
    _check_random_location_coords(student, reference, torch.float32, square=False)


def _check_random_location_coords(student, reference, dtype, square: bool):
    generator = torch.Generator().manual_seed(7)
    # Even strides only: the starter asks for "the center of the receptive field" and its strides are
    # 8, 16, 32, so stride * j + stride // 2 (an odd stride's half-pixel centre aside) is a right answer.
    for _ in range(4):
        strides = {"p3": 4, "p4": 12, "p5": 40}
        sizes = torch.randint(1, 13, (3, 2), generator=generator)
        if square:  # the course's maps: "H = W is the size of feature map"
            sizes[:, 1] = sizes[:, 0]
        sizes = sizes.tolist()
        shapes = {level: (2, 4, h, w) for level, (h, w) in zip(("p3", "p4", "p5"), sizes)}
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


@pytest.mark.weight(1.5)
@pytest.mark.number("5.4")
def test_deltas_random(student, reference):
    """deltas of random boxes (with background rows), and boxes from random deltas, equal the reference; inputs unchanged"""
    dtype = torch.float32  # the starter never mentions dtypes: float32, what its data loader serves
    generator = torch.Generator().manual_seed(8)
    for stride in (8, 16, 32):
        n = 60
        locations = (torch.rand(n, 2, generator=generator) * 300).to(dtype)
        corners = torch.rand(n, 2, generator=generator) * 300
        boxes = torch.cat([corners, corners + torch.rand(n, 2, generator=generator) * 200 + 1,
                           torch.randint(0, 20, (n, 1), generator=generator).float()], dim=1).to(dtype)
        boxes[::7] = -1
        got = call_keeping_inputs(student.detection_utils.fcos_get_deltas_from_locations, locations, boxes, stride)
        expected = reference.detection_utils.fcos_get_deltas_from_locations(locations, boxes, stride)
        assert_close(got, expected, call=describe_call("fcos_get_deltas_from_locations", locations, boxes, stride),
                     hint="background rows (-1 boxes) give -1 deltas")
        deltas = (torch.randn(n, 4, generator=generator) * 2).to(dtype)
        got = call_keeping_inputs(student.detection_utils.fcos_apply_deltas_to_locations, deltas, locations, stride)
        expected = reference.detection_utils.fcos_apply_deltas_to_locations(deltas, locations, stride)
        assert_close(got, expected, call=describe_call("fcos_apply_deltas_to_locations", deltas, locations, stride))


@pytest.mark.weight(1.5)
@pytest.mark.number("5.5")
def test_centerness_random(student, reference):
    """centerness of random deltas (and background rows) equals the reference; the deltas stay unchanged"""
    generator = torch.Generator().manual_seed(9)
    deltas = torch.rand(80, 4, generator=generator) * 10 + 0.01
    deltas[::5] = -1
    got = call_keeping_inputs(student.detection_utils.fcos_make_centerness_targets, deltas)
    expected = reference.detection_utils.fcos_make_centerness_targets(deltas)
    assert_close(got, expected, call=describe_call("fcos_make_centerness_targets", deltas))

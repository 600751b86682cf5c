"""Public tests of the networks: backbone with FPN and the FCOS prediction head (shapes and layout)."""

from __future__ import annotations

import math

import pytest
import torch

from grader.compare import assert_close, assert_equal, check, describe_call


def _shapes(features: dict) -> dict:
    return {k: list(v.shape) for k, v in features.items()} if isinstance(features, dict) else features


def _backbone(student, fcos_kit):
    return fcos_kit.shared("backbone32", lambda: student.one_stage_detector.DetectorBackboneWithFPN(out_channels=32))


def _check_backbone_shapes(student, fcos_kit, sizes):
    backbone = _backbone(student, fcos_kit)
    check(backbone.fpn_strides == {"p3": 8, "p4": 16, "p5": 32},
          f"fpn_strides should be {{'p3': 8, 'p4': 16, 'p5': 32}}, got {backbone.fpn_strides!r}")
    for height, width in sizes:
        images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height))
        feats = backbone(images)
        call = describe_call("DetectorBackboneWithFPN(out_channels=32)", images)
        check(isinstance(feats, dict) and list(feats) == ["p3", "p4", "p5"],
              f"expected a dict with keys ['p3', 'p4', 'p5'] (in this order), got {_shapes(feats)!r}", call=call)
        expected = {f"p{k}": [2, 32, height // 2**k, width // 2**k] for k in (3, 4, 5)}
        check(_shapes(feats) == expected, f"expected feature shapes {expected}, got {_shapes(feats)}", call=call,
              hint="lateral 1x1 convs bring c3/c4/c5 to out_channels; 3x3 output convs need padding=1")
        for level, value in feats.items():
            check(bool(torch.isfinite(value).all()), f"{level} has non-finite values", call=call)


@pytest.mark.weight(3)
@pytest.mark.number("1.1")
def test_backbone_fpn_shapes(student, fcos_kit):
    """DetectorBackboneWithFPN gives p3/p4/p5 at strides 8/16/32 with out_channels channels"""
    # The course's images are 224 x 224 (its docstrings: "H = W is the size of feature map").
    _check_backbone_shapes(student, fcos_kit, [(224, 224), (96, 96)])


@pytest.mark.part("non_square")
@pytest.mark.weight(1)
@pytest.mark.number("1.4")
def test_backbone_fpn_shapes_non_square(student, fcos_kit):
    """DetectorBackboneWithFPN on non-square images gives (H / 8, W / 8), (H / 16, W / 16), (H / 32, W / 32) maps"""
    _check_backbone_shapes(student, fcos_kit, [(64, 96)])


@pytest.mark.weight(2)
@pytest.mark.number("1.2")
def test_backbone_fpn_layers(student, fcos_kit):
    """the FPN adds three lateral 1x1 convs and three output 3x3 convs in fpn_params"""
    backbone = _backbone(student, fcos_kit)
    info = fcos_kit.parameters_under(backbone, ("fpn_params",))
    weights = sorted(tuple(shape) for name, shape, *_ in info["parameters"]
                     if name.startswith("fpn_params.") and len(shape) == 4)
    expected = sorted([(32, 64, 1, 1), (32, 160, 1, 1), (32, 400, 1, 1)] + [(32, 32, 3, 3)] * 3)
    check(weights == expected, f"the conv weights in fpn_params have shapes {weights}, expected {expected}",
          hint="one lateral 1x1 conv per level (c3: 64, c4: 160, c5: 400 channels in) and one 3x3 output conv "
               "per level, all with out_channels outputs, stored in self.fpn_params")


def _head(student, num_classes: int = 20, channels: int = 64):
    return student.one_stage_detector.FCOSPredictionNetwork(num_classes=num_classes, in_channels=channels,
                                                             stem_channels=[channels, channels])


def _features(batch: int, channels: int, sizes: dict, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {level: torch.randn(batch, channels, h, w, generator=generator) for level, (h, w) in sizes.items()}


@pytest.mark.weight(2)
@pytest.mark.number("2.1")
def test_prediction_network_shapes(student):
    """FCOSPredictionNetwork returns [class logits, box deltas, centerness logits] as (B, H*W, C) dicts"""
    head = _head(student)
    feats = _features(2, 64, {"p3": (28, 28), "p4": (14, 14), "p5": (7, 7)})
    out = head(feats)
    call = describe_call("FCOSPredictionNetwork(20, 64, [64, 64])", feats)
    check(isinstance(out, (list, tuple)) and len(out) == 3,
          f"expected a list of three dicts, got {type(out).__name__}", call=call)
    for name, channels, result in zip(("class logits", "box deltas", "centerness logits"), (20, 4, 1), out):
        expected = {level: [2, h * w, channels] for level, (h, w) in
                    {"p3": (28, 28), "p4": (14, 14), "p5": (7, 7)}.items()}
        check(isinstance(result, dict) and _shapes(result) == expected,
              f"{name}: expected shapes {expected}, got {_shapes(result)!r}", call=call,
              hint="flatten (B, C, H, W) to (B, H * W, C): channels last")


@pytest.mark.weight(2)
@pytest.mark.number("2.2")
def test_prediction_network_layers(student, fcos_kit):
    """the head has two stems of 3x3 convs and 3x3 pred_cls / pred_box / pred_ctr convs"""
    head = _head(student, num_classes=7, channels=16)
    info = fcos_kit.parameters_under(head, ("stem_cls", "stem_box", "pred_cls", "pred_box", "pred_ctr"))
    shapes = {name: tuple(shape) for name, shape, *_ in info["parameters"]}
    for stem in ("stem_cls", "stem_box"):
        convs = [s for n, s in shapes.items() if n.startswith(stem + ".") and len(s) == 4]
        check(convs == [(16, 16, 3, 3), (16, 16, 3, 3)],
              f"{stem} should hold two 3x3 convs of 16 -> 16 channels, got weights {convs}",
              hint="alternate nn.Conv2d(..., kernel_size=3, padding=1) and nn.ReLU() for every stem_channels entry")
    for name, out in (("pred_cls", 7), ("pred_box", 4), ("pred_ctr", 1)):
        check(shapes.get(f"{name}.weight") == (out, 16, 3, 3),
              f"{name}.weight should have shape {(out, 16, 3, 3)}, got {shapes.get(f'{name}.weight')}")
    bias = head.pred_cls.bias
    assert_close(bias, torch.full((7,), -math.log(99)), what="pred_cls.bias",
                 hint="keep the given line that sets pred_cls's bias to -log(99)")


@pytest.mark.weight(1)
@pytest.mark.number("2.3")
def test_prediction_network_channels_last(student, fcos_kit):
    """with zero conv weights every location predicts the biases: channels end up last, per location"""
    head = _head(student, num_classes=5, channels=8)
    weights = [(name, torch.zeros_like(t) if name.endswith("weight") else t)
               for name, t in fcos_kit.head_weights(5, 8, [8, 8], seed=3)]
    fcos_kit.load_head(head, weights, "FCOSPredictionNetwork(5, 8, [8, 8])")
    biases = dict(weights)
    feats = _features(2, 8, {"p3": (6, 6), "p4": (3, 3), "p5": (2, 2)}, seed=4)
    class_logits, boxreg_deltas, centerness_logits = head(feats)
    for result, layer in ((class_logits, "pred_cls"), (boxreg_deltas, "pred_box"), (centerness_logits, "pred_ctr")):
        for level, (h, w) in {"p3": (6, 6), "p4": (3, 3), "p5": (2, 2)}.items():
            expected = biases[f"{layer}.bias"].expand(2, h * w, -1)
            assert_close(result[level], expected, what=f"{layer} output at {level}",
                         call=describe_call("FCOSPredictionNetwork(5, 8, [8, 8])", feats),
                         hint="move channels last with permute/transpose before reshaping; a plain "
                              "reshape of (B, C, H, W) to (B, H * W, C) mixes channels and locations")


@pytest.mark.weight(1)
@pytest.mark.number("2.4")
def test_prediction_network_stems(student, fcos_kit):
    """class logits come from stem_cls; box deltas and centerness from stem_box"""
    # Zero pred weights; the stems' biases and ReLU are invisible then. Instead make each pred layer read one
    # stem channel and check which stem it reads by switching that stem's bias.
    # Two stem convs, as the course uses (a one-conv stem would test list handling, not which stem feeds what).
    weights = []
    for name, tensor in fcos_kit.head_weights(3, 8, [8, 8], seed=5):
        if name.startswith("stem"):
            tensor = torch.zeros_like(tensor)
            if name.endswith(".2.bias"):  # the last conv of the stem
                tensor[0] = 1.0 if name.startswith("stem_cls") else 2.0
        elif name.endswith("weight"):
            tensor = torch.zeros_like(tensor)
            tensor[:, 0, 1, 1] = 1.0  # centre tap of stem channel 0
        else:
            tensor = torch.zeros_like(tensor)
        weights.append((name, tensor))
    head = student.one_stage_detector.FCOSPredictionNetwork(num_classes=3, in_channels=8, stem_channels=[8, 8])
    fcos_kit.load_head(head, weights, "FCOSPredictionNetwork(3, 8, [8, 8])")
    feats = _features(1, 8, {"p3": (4, 4), "p4": (2, 2), "p5": (1, 1)}, seed=6)
    class_logits, boxreg_deltas, centerness_logits = head(feats)
    call = describe_call("FCOSPredictionNetwork(3, 8, [8, 8])", feats)
    assert_equal(class_logits["p3"], torch.full((1, 16, 3), 1.0), call=call, what="class logits",
                 hint="pred_cls reads the output of stem_cls")
    assert_equal(boxreg_deltas["p3"], torch.full((1, 16, 4), 2.0), call=call, what="box deltas",
                 hint="pred_box reads the output of stem_box")
    assert_equal(centerness_logits["p3"], torch.full((1, 16, 1), 2.0), call=call, what="centerness logits",
                 hint="pred_ctr reads the output of stem_box (not stem_cls)")

"""Hidden tests of the FPN and the head: values against the reference with the same weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from grader.compare import GradingFailure, assert_close, check, describe_call, first_close


def _fpn_weights(channels: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for cin in (64, 160, 400):
        weights[("lateral", cin)] = (torch.randn(channels, cin, 1, 1, generator=generator) * cin ** -0.5,
                                     torch.randn(channels, generator=generator) * 0.1)
    # One set of weights for the three 3x3 output convs: which conv serves which level does not matter then.
    weights["output"] = (torch.randn(channels, channels, 3, 3, generator=generator) * (9 * channels) ** -0.5,
                         torch.randn(channels, generator=generator) * 0.1)
    return weights


def _fpn_state(info: dict, weights: dict, channels: int) -> dict:
    """The student's fpn_params state dict (names without the prefix) holding ``weights``."""
    params = {name: tuple(shape) for name, shape, *_ in info["parameters"] if name.startswith("fpn_params.")}
    state = {}
    for name, shape in params.items():
        if not name.endswith(".weight"):
            continue
        prefix = name[: -len(".weight")]
        if shape[2:] == (1, 1) and ("lateral", shape[1]) in weights and shape[0] == channels:
            weight, bias = weights[("lateral", shape[1])]
        elif shape == (channels, channels, 3, 3):
            weight, bias = weights["output"]
        else:
            raise GradingFailure(f"cannot place fpn_params weight {name} of shape {list(shape)}: expected 1x1 "
                                 f"lateral convs from 64, 160 or 400 channels and 3x3 output convs, {channels} "
                                 "channels out")
        state[name[len("fpn_params."):]] = weight
        if f"{prefix}.bias" in params:
            state[f"{prefix}.bias"[len("fpn_params."):]] = bias
    unplaced = sorted(set(params) - {f"fpn_params.{k}" for k in state})
    if unplaced or len([k for k in state if k.endswith("weight")]) != 6:
        raise GradingFailure(f"fpn_params should hold six convs (3 lateral 1x1, 3 output 3x3); found {sorted(params)}")
    return state


def _fpn_forward(features: dict, weights: dict, mode: str, with_bias: bool, upsample: str = "merged") -> dict:
    """The FPN's outputs; ``upsample`` says what the top-down pathway carries to the finer level.

    The starter's hint ("upsample FPN features") admits two readings, both graded as right:
    ``"merged"`` upsamples the merged lateral map (m4 = lateral(c4) + up(m5), p4 = out(m4), as in the
    FPN paper), ``"output"`` the level's output map (p4 = out(lateral(c4) + up(p5))).
    """
    def conv(x, key, padding):
        weight, bias = weights[key]
        return F.conv2d(x, weight, bias if with_bias else None, padding=padding)

    merged = conv(features["c5"], ("lateral", 400), 0)
    out = {"p5": conv(merged, "output", 1)}
    for name, level, cin in (("c4", "p4", 160), ("c3", "p3", 64)):
        lateral = conv(features[name], ("lateral", cin), 0)
        coarse = merged if upsample == "merged" else out["p5" if level == "p4" else "p4"]
        up = F.interpolate(coarse, size=lateral.shape[-2:], mode=mode) if mode == "nearest" else \
            F.interpolate(coarse, size=lateral.shape[-2:], mode=mode, align_corners=False)
        merged = lateral + up
        out[level] = conv(merged, "output", 1)
    return {k: out[k] for k in ("p3", "p4", "p5")}


@pytest.mark.weight(5)
@pytest.mark.number("1.3")
def test_fpn_values(student, reference, fcos_kit):
    """the FPN's top-down pathway: lateral 1x1, upsample and add, 3x3 output (same weights as the reference)"""
    _check_fpn_values(student, reference, fcos_kit, (128, 128))


@pytest.mark.part("non_square")
@pytest.mark.weight(1)
@pytest.mark.number("1.5")
def test_fpn_values_non_square(student, reference, fcos_kit):
    """the FPN's top-down pathway on non-square images (each level upsampled to the finer level's H and W)"""
    _check_fpn_values(student, reference, fcos_kit, (128, 192))


def _check_fpn_values(student, reference, fcos_kit, size):
    channels = 16
    backbone = student.one_stage_detector.DetectorBackboneWithFPN(out_channels=channels)
    trunk = fcos_kit.trunk(seed=11)
    backbone.backbone = trunk.remote
    info = fcos_kit.parameters_under(backbone, ("fpn_params",))
    weights = _fpn_weights(channels, seed=12)
    state = _fpn_state(info, weights, channels)
    with_bias = any(k.endswith("bias") for k in state)
    backbone.fpn_params.load_state_dict(state)
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(13))
    got = backbone(images)
    features = trunk.local(images)
    expected = _fpn_forward(features, weights, "nearest", with_bias)
    # The reference agrees with this computation (a guard on the test itself).
    ref = reference.one_stage_detector.DetectorBackboneWithFPN.__new__(reference.one_stage_detector.DetectorBackboneWithFPN)
    torch.nn.Module.__init__(ref)
    ref.backbone = trunk.local
    ref.fpn_params = torch.nn.ModuleDict({
        "lateral_c3": torch.nn.Conv2d(64, channels, 1), "lateral_c4": torch.nn.Conv2d(160, channels, 1),
        "lateral_c5": torch.nn.Conv2d(400, channels, 1), "output_p3": torch.nn.Conv2d(channels, channels, 3, padding=1),
        "output_p4": torch.nn.Conv2d(channels, channels, 3, padding=1),
        "output_p5": torch.nn.Conv2d(channels, channels, 3, padding=1)})
    for key, cin in (("lateral_c3", 64), ("lateral_c4", 160), ("lateral_c5", 400)):
        ref.fpn_params[key].load_state_dict(dict(zip(("weight", "bias"), weights[("lateral", cin)])))
    for key in ("output_p3", "output_p4", "output_p5"):
        ref.fpn_params[key].load_state_dict(dict(zip(("weight", "bias"), weights["output"])))
    if with_bias:
        with torch.no_grad():
            assert_close(ref(images), expected, rtol=1e-4, atol=1e-5, what="reference FPN (grader self-check)")
    call = describe_call("DetectorBackboneWithFPN(16).forward (RegNet replaced by fixed convs)", images)
    check(isinstance(got, dict) and sorted(got) == ["p3", "p4", "p5"], f"expected a dict p3/p4/p5, got {got!r}",
          call=call)
    # Either reading of the hint (see _fpn_forward), with nearest or bilinear upsampling.
    readings = [_fpn_forward(features, weights, mode, with_bias, upsample)
                for upsample in ("merged", "output") for mode in ("nearest", "bilinear")]

    def matches(reading: dict) -> bool:
        return all(isinstance(got[level], torch.Tensor) and got[level].shape == reading[level].shape
                   and torch.allclose(got[level], reading[level], rtol=1e-4, atol=1e-4) for level in reading)

    if any(matches(reading) for reading in readings):
        return
    for level in ("p3", "p4", "p5"):
        assert_close(got[level], expected[level], call=call, rtol=1e-4, atol=1e-4, what=level,
                         hint="m5 = lateral(c5); m4 = lateral(c4) + upsample(m5); m3 = lateral(c3) + upsample(m4); "
                              "p_i = output_conv_i(m_i) (upsample with F.interpolate to the finer level's size; "
                              "upsampling p_(i+1) instead of m_(i+1) is accepted too)")


@pytest.mark.weight(3)
@pytest.mark.number("2.5")
def test_prediction_network_values(student, reference, fcos_kit):
    """FCOSPredictionNetwork outputs equal the reference's with the same weights"""
    num_classes, channels, stem = 5, 8, [8, 8]
    weights = fcos_kit.head_weights(num_classes, channels, stem, seed=21)
    head = student.one_stage_detector.FCOSPredictionNetwork(num_classes=num_classes, in_channels=channels,
                                                            stem_channels=stem)
    fcos_kit.load_head(head, weights, "FCOSPredictionNetwork(5, 8, [8, 8])")
    ref = reference.one_stage_detector.FCOSPredictionNetwork(num_classes, channels, stem)
    ref.load_state_dict(dict(weights))
    generator = torch.Generator().manual_seed(22)
    sizes = {"p3": (6, 6), "p4": (3, 3), "p5": (2, 2)}
    feats = {k: torch.randn(2, channels, h, w, generator=generator) for k, (h, w) in sizes.items()}
    got = head(feats)
    with torch.no_grad():
        expected = ref(feats)
        # The other reading of "alternating 3x3 convolution layers and RELU": no ReLU after a stem's last conv.
        other = fcos_kit.stems_without_final_relu(copy.deepcopy(ref))(feats)
    call = describe_call("FCOSPredictionNetwork(5, 8, [8, 8])", feats)
    check(isinstance(got, (list, tuple)) and len(got) == 3, "expected [class logits, deltas, centerness]", call=call)
    expected = first_close(list(got), [list(expected), list(other)], rtol=1e-4, atol=1e-5)
    for name, g, e in zip(("class logits", "box deltas", "centerness logits"), got, expected):
        for level, (h, w) in sizes.items():
            value = e[level]
            # Either flattening order (rows or columns first) is fine if the locations follow it.
            transposed = value.reshape(2, h, w, -1).transpose(1, 2).reshape(2, h * w, -1)
            if isinstance(g[level], torch.Tensor) and g[level].shape == value.shape and torch.allclose(
                    g[level], transposed, rtol=1e-4, atol=1e-5):
                continue
            assert_close(g[level], value, call=call, rtol=1e-4, atol=1e-5, what=f"{name}[{level!r}]",
                         hint="stem_cls -> pred_cls; stem_box -> pred_box and pred_ctr; ReLU after every stem conv; "
                              "(B, C, H, W) -> (B, H * W, C)")

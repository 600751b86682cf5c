"""Hidden tests of FCOS: losses, gradients and inference against the reference on location-varying predictions.

The student's RegNet + FPN is replaced by a fixed stand-in (the same weights
here and in the student's process) and the head gets the reference's weights,
so the predictions are known and vary from location to location: the losses
then also check that locations, targets and predictions are paired up in the
same order.
"""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch

from grader.compare import assert_close, check, describe_call, first_close

NUM_CLASSES, CHANNELS, STEM = 6, 16, [16, 16]
BG = [-1.0] * 5
GT = torch.tensor([
    [[4.0, 6.0, 40.0, 50.0, 1.0], [30.0, 10.0, 150.0, 118.0, 4.0], [100.0, 60.0, 120.0, 70.0, 2.0], BG],
    [[0.0, 0.0, 160.0, 128.0, 0.0], [60.0, 40.0, 100.0, 90.0, 2.0], [62.0, 42.0, 98.0, 88.0, 5.0],
     [8.0, 80.0, 70.0, 126.0, 3.0]],
])


def _models(student, reference, fcos_kit, seed: int):
    """(student FCOS, reference FCOS, name map) sharing the stand-in backbone and the head weights."""
    fpn = fcos_kit.fpn(CHANNELS, seed=seed)
    weights = fcos_kit.head_weights(NUM_CLASSES, CHANNELS, STEM, seed=seed + 1)
    model = fcos_kit.fcos_for_losses(NUM_CLASSES, CHANNELS, STEM, seed=seed)  # the same stand-in FPN as ``fpn``
    names = fcos_kit.load_head(model.pred_net, weights, "FCOS(6, 16, [16, 16]).pred_net")
    osd = reference.one_stage_detector
    ref = osd.FCOS.__new__(osd.FCOS)
    torch.nn.Module.__init__(ref)
    ref.num_classes = NUM_CLASSES
    ref.backbone = fpn.local
    ref.pred_net = osd.FCOSPredictionNetwork(NUM_CLASSES, CHANNELS, STEM)
    ref.pred_net.load_state_dict(dict(weights))
    ref._normalizer = 150
    return model, ref, names


def _scalars(losses) -> dict:
    if not isinstance(losses, dict):
        return losses
    return {k: (v.detach().reshape(()) if isinstance(v, torch.Tensor) and v.numel() == 1 else v)
            for k, v in losses.items()}


def _copy(ref):
    """A deep copy of a reference FCOS (the stand-in FPN's ``fpn_strides`` is set by hand: deepcopy drops it)."""
    twin = copy.deepcopy(ref)
    twin.backbone.fpn_strides = dict(ref.backbone.fpn_strides)
    return twin


# The readings of the starter a reference must be run in to grade the losses (the first is the reference's
# own): the pairing of locations and predictions (conftest.course_location_order) and whether a stem ends
# with a ReLU (FCOSKit.stems_without_final_relu).
READINGS = [("consistent", True), ("course", True), ("consistent", False), ("course", False)]


def _in_reading(ref, fcos_kit, course_order, reading):
    """(a copy of ``ref`` in ``reading``, the context to run it in)."""
    order, final_relu = reading
    twin = _copy(ref)
    if not final_relu:
        fcos_kit.stems_without_final_relu(twin.pred_net)
    return twin, course_order() if order == "course" else contextlib.nullcontext()


@pytest.mark.weight(5)
@pytest.mark.number("6.2")
def test_losses_match_reference(student, reference, fcos_kit, course_order):
    """FCOS losses on location-varying predictions equal the reference's, over two EMA steps"""
    model, ref, _ = _models(student, reference, fcos_kit, seed=31)
    model.train()
    images = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(32))
    call = describe_call("FCOS.forward (stand-in backbone, fixed head weights)", images, GT)
    got = []
    for _ in range(2):
        got.append((_scalars(model(images, GT)), float(model._normalizer)))
    sequences = []
    for reading in READINGS:
        twin, context = _in_reading(ref, fcos_kit, course_order, reading)
        twin.train()
        with torch.no_grad(), context:
            sequences.append([(_scalars(twin(images, GT)), float(twin._normalizer)) for _ in range(2)])
    # Every reading of the starter counts: the one the student's losses match (else the reference's own).
    expected = first_close(got, sequences, rtol=2e-4, atol=1e-5)
    for step, ((losses, normalizer), (want, want_normalizer)) in enumerate(zip(got, expected)):
        assert_close(losses, want, call=call, rtol=2e-4, atol=1e-5, what=f"losses of call {step + 1}",
                     hint="match every image's boxes to the locations of all levels; focal loss over all "
                          "locations; box and centerness losses at foreground only; divide by normalizer * B")
        assert_close(normalizer, want_normalizer, rtol=1e-6, what=f"_normalizer after call {step + 1}")


# Square images whose sides are not multiples of 32 (the stand-in FPN gives maps of side // 8, // 16, // 32),
# one image and three: the losses must come from the feature maps' own sizes and the FPN's strides, for any batch.
OTHER_SIZES = [
    (104, torch.tensor([[[6.0, 4.0, 50.0, 44.0, 3.0], [20.0, 30.0, 100.0, 102.0, 0.0], BG]])),
    (120, torch.tensor([
        [[4.0, 6.0, 40.0, 50.0, 1.0], [30.0, 10.0, 118.0, 116.0, 4.0], BG],
        [[0.0, 0.0, 120.0, 120.0, 0.0], [60.0, 40.0, 100.0, 90.0, 2.0], [62.0, 42.0, 98.0, 88.0, 5.0]],
        [[10.0, 70.0, 44.0, 118.0, 3.0], BG, BG],
    ])),
]


@pytest.mark.weight(1)
@pytest.mark.number("6.4")
@pytest.mark.parametrize("case", [0, 1], ids=["1_image_104", "3_images_120"])
def test_losses_other_sizes_and_batches(student, reference, fcos_kit, course_order, case):
    """FCOS losses equal the reference's for 1 and 3 images whose sides are not multiples of 32"""
    side, gt = OTHER_SIZES[case]
    model, ref, _ = _models(student, reference, fcos_kit, seed=61 + case)
    model.train()
    images = torch.randn(gt.shape[0], 3, side, side, generator=torch.Generator().manual_seed(63 + case))
    call = describe_call("FCOS.forward (stand-in backbone, fixed head weights)", images, gt)
    got = (_scalars(model(images, gt)), float(model._normalizer))
    readings = []
    for reading in READINGS:
        twin, context = _in_reading(ref, fcos_kit, course_order, reading)
        twin.train()
        with torch.no_grad(), context:
            readings.append((_scalars(twin(images, gt)), float(twin._normalizer)))
    expected = first_close(got, readings, rtol=2e-4, atol=1e-5)
    assert_close(got[0], expected[0], call=call, rtol=2e-4, atol=1e-5, what=f"losses ({gt.shape[0]} x {side} x {side})",
                 hint="locations from the sizes of the FPN maps (not image side // stride), the strides from "
                      "backbone.fpn_strides; match every image of the batch; divide by normalizer * B")
    assert_close(got[1], expected[1], rtol=1e-6, what="_normalizer after the call",
                 hint="positives per image: divide by the batch size")


@pytest.mark.weight(3)
@pytest.mark.number("6.3")
def test_loss_gradients_match_reference(student, reference, fcos_kit, course_order):
    """one SGD step (lr 1) on the head changes its weights as the reference's gradients do"""
    model, ref, names = _models(student, reference, fcos_kit, seed=41)
    images = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(42))
    optim = student.import_library("torch.optim")
    optimizer = optim.SGD(model.pred_net.parameters(), lr=1.0)
    student.detection_helper.train_step(model, optimizer, images, GT)
    after = model.pred_net.state_dict()
    stepped = []
    for reading in READINGS:
        twin, context = _in_reading(ref, fcos_kit, course_order, reading)
        twin.train()
        with context:
            total = sum(twin(images, GT).values())
        twin.pred_net.zero_grad()
        total.backward()
        params = dict(twin.pred_net.named_parameters())
        stepped.append({their: (params[ours] - params[ours].grad).detach() for their, ours in names.items()})
    # Every reading of the starter counts (see READINGS): the one the student's step matches.
    expected = first_close({name: after[name] for name in names}, stepped, rtol=1e-3, atol=2e-5)
    call = describe_call("train_step(FCOS, SGD(pred_net, lr=1), images, gt_boxes)", images, GT)
    for their_name in names:
        assert_close(after[their_name], expected[their_name], call=call, rtol=1e-3, atol=2e-5,
                     what=f"pred_net.{their_name} after one step",
                     hint="the gradient of loss_cls + loss_box + loss_ctr must reach every head layer exactly as "
                          "the formulas say (no detached terms, background masked out)")


def _random_predictions(seed: int, sizes: dict) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    cls, deltas, ctr = {}, {}, {}
    for level, (h, w) in sizes.items():
        n = h * w
        cls[level] = torch.randn(1, n, NUM_CLASSES, generator=generator) * 2.0 - 1.5
        deltas[level] = torch.randn(1, n, 4, generator=generator) * 1.5 + 1.0
        ctr[level] = torch.randn(1, n, 1, generator=generator) * 2.0
    return cls, deltas, ctr


@pytest.mark.weight(3)
@pytest.mark.number("7.3")
@pytest.mark.parametrize("seed", [51, 52, 53])
def test_inference_matches_reference(student, reference, fcos_kit, seed):
    """FCOS.inference on random predictions equals the reference (threshold, decoding, clipping, NMS)"""
    _check_inference(reference, fcos_kit, seed, 64, 64)


@pytest.mark.part("non_square")
@pytest.mark.weight(1)
@pytest.mark.number("7.5")
def test_inference_matches_reference_non_square(student, reference, fcos_kit):
    """FCOS.inference on random predictions for a non-square image equals the reference"""
    _check_inference(reference, fcos_kit, 51, 64, 96)


def _check_inference(reference, fcos_kit, seed: int, height: int, width: int) -> None:
    sizes = {level: (height // stride, width // stride) for level, stride in (("p3", 8), ("p4", 16), ("p5", 32))}
    strides = {"p3": 8, "p4": 16, "p5": 32}
    locations = reference.detection_utils.get_fpn_location_coords(
        {k: (1, 1, h, w) for k, (h, w) in sizes.items()}, strides)
    cls, deltas, ctr = _random_predictions(seed, sizes)
    thresholds = {51: (0.3, 0.5), 52: (0.45, 0.3), 53: (0.2, 0.7)}[seed]
    images = torch.zeros(1, 3, height, width)
    # The same FCOS as the public inference tests (num_classes 6, 16 channels), built once per worker.
    model = fcos_kit.inference_fcos(NUM_CLASSES, CHANNELS, STEM)
    model.eval()
    got = model.inference(images, locations, cls, deltas, ctr, test_score_thresh=thresholds[0],
                          test_nms_thresh=thresholds[1])
    osd = reference.one_stage_detector
    ref = osd.FCOS.__new__(osd.FCOS)
    torch.nn.Module.__init__(ref)
    ref.num_classes = NUM_CLASSES
    ref.backbone = type("Strides", (), {"fpn_strides": strides})()
    expected = osd.FCOS.inference(ref, images, locations, cls, deltas, ctr, test_score_thresh=thresholds[0],
                                  test_nms_thresh=thresholds[1])
    # Clipping at W - 1 and H - 1 (pixel indices) instead of W and H is the other reading of the starter's
    # "clip ... beyond the height and width": the reference's answer for an image one pixel smaller.
    pixel_clipped = osd.FCOS.inference(ref, images[:, :, : height - 1, : width - 1], locations, cls, deltas, ctr,
                                       test_score_thresh=thresholds[0], test_nms_thresh=thresholds[1])
    call = describe_call("FCOS.inference", images, locations, cls, deltas, ctr, test_score_thresh=thresholds[0],
                         test_nms_thresh=thresholds[1])
    check(isinstance(got, (tuple, list)) and len(got) == 3 and all(isinstance(g, torch.Tensor) for g in got),
          f"expected (pred_boxes, pred_classes, pred_scores), got {type(got).__name__}", call=call)
    order = torch.sort(got[2], descending=True, stable=True).indices
    boxes, classes, scores = got[0][order], got[1][order], got[2][order]
    expected = first_close((boxes, classes.long(), scores), [expected, pixel_clipped], rtol=1e-5, atol=1e-4)
    assert_close(scores, expected[2], call=call, rtol=1e-5, atol=1e-6, what="pred_scores (sorted)",
                 hint="keep sqrt(sigmoid(cls) * sigmoid(ctr)) of the best class above the threshold; then "
                      "class-specific NMS")
    assert_close(classes.long(), expected[1], call=call, what="pred_classes (sorted by score)")
    assert_close(boxes, expected[0], call=call, rtol=1e-5, atol=1e-4, what="pred_boxes (sorted by score)",
                 hint="boxes from deltas * stride around each location (negative deltas clamped), clipped to "
                      f"0 <= x <= {width}, 0 <= y <= {height} (or to {width - 1} and {height - 1})")
    check(math.isfinite(float(scores.sum())) if scores.numel() else True, "non-finite scores", call=call)

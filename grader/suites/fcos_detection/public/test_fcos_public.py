"""Public tests of the FCOS model: losses (golden values), inference, and a training step end to end."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from grader.compare import assert_close, check, describe_call, first_close

NUM_CLASSES, FPN_CHANNELS, STEM = 6, 16, [16, 16]
BG = [-1.0] * 5

# Two 160 x 160 images (the course's are square); boxes that match at p3, p4 and p5, nested boxes, padding rows.
LOSS_GT = torch.tensor([
    [[10.0, 12.0, 50.0, 60.0, 1.0], [20.0, 8.0, 150.0, 120.0, 4.0], BG, BG],
    [[0.0, 0.0, 160.0, 128.0, 0.0], [60.0, 40.0, 100.0, 90.0, 2.0], [62.0, 42.0, 98.0, 88.0, 5.0], BG],
])
CONSTANT_HEAD = {
    "pred_cls": torch.tensor([-1.0, -2.0, 0.5, -3.0, 1.0, -0.5]),
    "pred_box": torch.tensor([1.0, 0.5, 2.0, 1.5]),
    "pred_ctr": torch.tensor([0.3]),
}
# Losses of the reference for two consecutive training calls (the normalizer is an EMA).
GOLDEN_LOSSES = [
    ({"loss_cls": 3.216625213623047, "loss_box": 1.3498948812484741, "loss_ctr": 0.39793938398361206}, 142.65),
    ({"loss_cls": 3.3730404376983643, "loss_box": 1.4155364036560059, "loss_ctr": 0.4172900319099426}, 136.035),
]


def _scalars(losses) -> dict:
    if not isinstance(losses, dict):
        return losses
    return {k: (v.detach().reshape(()) if isinstance(v, torch.Tensor) and v.numel() == 1 else v)
            for k, v in losses.items()}


def _fcos(student):
    return student.one_stage_detector.FCOS(num_classes=NUM_CLASSES, fpn_channels=FPN_CHANNELS, stem_channels=STEM)


def _inference_fcos(fcos_kit):
    """The FCOS whose ``inference`` the tests call (the student's, built once per worker; see ``FCOSKit``)."""
    return fcos_kit.inference_fcos(NUM_CLASSES, FPN_CHANNELS, STEM)


@pytest.mark.weight(5)
@pytest.mark.number("6.1")
def test_losses_with_constant_predictions(student, fcos_kit):
    """FCOS losses and the normalizer EMA on a head that predicts the same values everywhere"""
    # A stand-in FPN (the same map sizes as the student's for 160 x 160 images): with zero conv weights the
    # predictions do not depend on the features, and the losses not on the student's FPN.
    model = fcos_kit.fcos_for_losses(NUM_CLASSES, FPN_CHANNELS, STEM)
    for name, bias in CONSTANT_HEAD.items():
        layer = getattr(model.pred_net, name)
        weight = layer.weight
        layer.load_state_dict({"weight": torch.zeros_like(weight), "bias": bias})
    model.train()
    images = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    call = describe_call("FCOS(6, 16, [16, 16]).forward", images, LOSS_GT)
    for step, (expected, normalizer) in enumerate(GOLDEN_LOSSES):
        losses = model(images, LOSS_GT)
        check(isinstance(losses, dict), f"training forward should return a dict of losses, got {losses!r}", call=call)
        losses = _scalars(losses)
        assert_close(losses, {k: torch.tensor(v) for k, v in expected.items()}, call=call, rtol=2e-4, atol=1e-5,
                     what=f"losses of call {step + 1}",
                     hint="focal loss on one-hot classes (zeros for background); 0.25 * L1 on deltas and BCE on "
                          "centerness, both zero at background; each summed and divided by normalizer * B")
        assert_close(float(model._normalizer), normalizer, rtol=1e-6, what=f"_normalizer after call {step + 1}",
                     hint="keep the given EMA update of the normalizer (before computing the losses)")
    # A batch without objects: every location is background, so the class loss is torchvision's focal loss of
    # the constant logits against all-zero targets, and the other two losses are 0.
    empty = torch.full((2, 3, 5), -1.0)
    losses = _scalars(model(images, empty))
    normalizer = 0.9 * GOLDEN_LOSSES[-1][1]
    locations = 20 * 20 + 10 * 10 + 5 * 5
    logits = CONSTANT_HEAD["pred_cls"].expand(2, locations, -1)
    focal = sigmoid_focal_loss(logits, torch.zeros_like(logits), alpha=0.25, gamma=2.0, reduction="sum")
    expected = {"loss_cls": focal / (normalizer * 2), "loss_box": torch.tensor(0.0), "loss_ctr": torch.tensor(0.0)}
    assert_close(losses, expected, rtol=2e-4, atol=1e-6, what="losses of a batch without objects",
                 call=describe_call("FCOS(6, 16, [16, 16]).forward", images, empty),
                 hint="torchvision.ops.sigmoid_focal_loss(logits, one_hot_targets) summed over all locations and "
                      "classes; no box or centerness loss where there is no object")


INFERENCE_LOCATIONS = {
    "p3": torch.tensor([[4.0, 4.0], [20.0, 12.0], [60.0, 36.0], [92.0, 60.0]]),
    "p4": torch.tensor([[8.0, 8.0], [40.0, 24.0]]),
    "p5": torch.tensor([[16.0, 16.0], [80.0, 48.0]]),
}


def _logits(rows: list) -> torch.Tensor:
    out = torch.full((len(rows), NUM_CLASSES), -5.0)
    for i, (cls, value) in enumerate(rows):
        if cls is not None:
            out[i, cls] = value
    return out[None]


INFERENCE_CLS = {"p3": _logits([(2, 3.0), (2, 2.5), (4, 1.0), (0, 4.0)]), "p4": _logits([(3, 2.0), (2, 2.8)]),
                 "p5": _logits([(None, 0), (5, 1.5)])}
INFERENCE_DELTAS = {
    "p3": torch.tensor([[[0.5, 0.5, 2.0, 2.0], [2.0, 1.0, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.5, 1.5]]]),
    "p4": torch.tensor([[[-0.5, 0.25, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]]]),
    "p5": torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.25, 0.5, 0.25, 0.25]]]),
}
INFERENCE_CTR = {"p3": torch.tensor([[[2.0], [1.5], [-2.0], [0.5]]]), "p4": torch.tensor([[[1.0], [0.0]]]),
                 "p5": torch.tensor([[[3.0], [1.0]]])}


def _score(cls_logit: float, ctr_logit: float) -> float:
    return math.sqrt(torch.sigmoid(torch.tensor(cls_logit, dtype=torch.float64))
                     * torch.sigmoid(torch.tensor(ctr_logit, dtype=torch.float64)))


def _by_score(boxes, classes, scores):
    order = torch.sort(scores, descending=True, stable=True).indices
    return boxes[order], classes[order], scores[order]


@pytest.mark.weight(5)
@pytest.mark.number("7.1")
def test_inference_hand_made(student, fcos_kit):
    """FCOS.inference: scores, threshold, decoding per stride, clipping and class-specific NMS"""
    _check_hand_made_inference(fcos_kit, 96, 96, [84.0, 52.0, 96.0, 72.0])  # p3 (92, 60): x clipped at 96


@pytest.mark.part("non_square")
@pytest.mark.weight(1)
@pytest.mark.number("7.4")
def test_inference_hand_made_non_square(student, fcos_kit):
    """FCOS.inference on a non-square image: x clipped to [0, W], y to [0, H]"""
    _check_hand_made_inference(fcos_kit, 64, 96, [84.0, 52.0, 96.0, 64.0])  # p3 (92, 60): clipped to 96 x 64


def _check_hand_made_inference(fcos_kit, height: int, width: int, clipped_box: list) -> None:
    model = _inference_fcos(fcos_kit)
    model.eval()
    images = torch.zeros(1, 3, height, width)
    out = model.inference(images, INFERENCE_LOCATIONS, INFERENCE_CLS, INFERENCE_DELTAS, INFERENCE_CTR,
                          test_score_thresh=0.4, test_nms_thresh=0.5)
    call = describe_call("FCOS.inference", images, INFERENCE_LOCATIONS, INFERENCE_CLS, INFERENCE_DELTAS,
                         INFERENCE_CTR, test_score_thresh=0.4, test_nms_thresh=0.5)
    check(isinstance(out, (tuple, list)) and len(out) == 3 and all(isinstance(o, torch.Tensor) for o in out),
          f"expected (pred_boxes, pred_classes, pred_scores) tensors, got {type(out).__name__}", call=call)
    expected_boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0],     # p3 (4, 4), clipped at 0; suppresses p3 (20, 12)
                                   [8.0, 4.0, 24.0, 24.0],     # p4, negative left delta clamped to 0
                                   clipped_box,                # p3 (92, 60): (84, 52, 104, 72) clipped to the image
                                   [72.0, 32.0, 88.0, 56.0],   # p5, stride 32
                                   [32.0, 16.0, 48.0, 32.0]])  # p4 (40, 24)
    expected_classes = torch.tensor([2, 3, 0, 5, 2])
    expected_scores = torch.tensor([_score(3.0, 2.0), _score(2.0, 1.0), _score(4.0, 0.5), _score(1.5, 1.0),
                                    _score(2.8, 0.0)], dtype=torch.float32)
    boxes, classes, scores = _by_score(*out)
    assert_close(scores, expected_scores, call=call, what="pred_scores", rtol=1e-5,
                 hint="score = sqrt(sigmoid(class logit) * sigmoid(centerness logit)) of the best class; keep "
                      "scores above the threshold; same-class boxes with IoU > 0.5 are suppressed")
    assert_close(classes.long(), expected_classes, call=call, what="pred_classes (sorted by score)")
    # "Clip XYXY box-coordinates that go beyond the height and width": at W and H (continuous coordinates), or
    # at W - 1 and H - 1 (pixel indices); both readings earn the points.
    last = float(width - 1), float(height - 1)
    pixel_clipped = torch.minimum(expected_boxes, torch.tensor([last[0], last[1], last[0], last[1]]))
    expected_boxes = first_close(boxes, [expected_boxes, pixel_clipped])
    assert_close(boxes, expected_boxes, call=call, what="pred_boxes (sorted by score)",
                 hint="decode with the level's stride (8, 16, 32), clamp negative deltas, clip x to [0, W] and "
                      "y to [0, H] (or to W - 1 and H - 1)")


@pytest.mark.weight(1)
@pytest.mark.number("7.2")
def test_eval_forward_detections(student, fcos_kit):
    """FCOS in eval mode returns valid detections for one image"""
    model = fcos_kit.fcos(NUM_CLASSES, FPN_CHANNELS, STEM)
    model.eval()
    images = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    out = model(images, test_score_thresh=0.05, test_nms_thresh=0.6)
    call = describe_call("FCOS(6, 16, [16, 16]).eval()(images, test_score_thresh=0.05, test_nms_thresh=0.6)", images)
    check(isinstance(out, (tuple, list)) and len(out) == 3 and all(isinstance(o, torch.Tensor) for o in out),
          f"expected (pred_boxes, pred_classes, pred_scores), got {type(out).__name__}", call=call,
          hint="in eval mode forward returns self.inference(...)")
    boxes, classes, scores = out
    count = boxes.shape[0]
    check(boxes.shape == (count, 4) and classes.shape == (count,) and scores.shape == (count,),
          f"inconsistent shapes {list(boxes.shape)}, {list(classes.shape)}, {list(scores.shape)}", call=call)
    check(count > 0, "no detection at all with a score threshold of 0.05 on a fresh model "
          "(its scores are about sqrt(0.01 * 0.5) = 0.07)", call=call)
    check(not classes.is_floating_point() and bool(((classes >= 0) & (classes < NUM_CLASSES)).all()),
          f"classes must be integer ids in [0, {NUM_CLASSES}), got {classes.dtype} {classes.unique().tolist()[:8]}",
          call=call)
    check(bool(((scores > 0.05) & (scores <= 1)).all()), "scores must lie in (threshold, 1]", call=call)
    check(bool((scores[:-1] >= scores[1:]).all()), "detections must be sorted by decreasing score", call=call)
    inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= 96) & (boxes[:, 3] <= 96) \
        & (boxes[:, 0] <= boxes[:, 2]) & (boxes[:, 1] <= boxes[:, 3])
    check(bool(inside.all()), "every box must be clipped to the 96 x 96 image, with x1 <= x2 and y1 <= y2",
          call=call)


@pytest.mark.weight(4)
@pytest.mark.number("10.1")
@pytest.mark.sandbox(call_timeout=120)
def test_training_step_end_to_end(student):
    """a training step of the full FCOS: finite losses and gradients in the FPN and every head layer"""
    model = _fcos(student)
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    gt = torch.tensor([[[8.0, 10.0, 60.0, 70.0, 3.0], [40.0, 30.0, 90.0, 94.0, 1.0], BG],
                       [[0.0, 0.0, 96.0, 96.0, 5.0], BG, BG]])
    optim = student.import_library("torch.optim")
    optimizer = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    losses = student.detection_helper.train_step(model, optimizer, images, gt)
    call = describe_call("detection_helper.train_step(FCOS(6, 16, [16, 16]), SGD, images, gt_boxes)", images, gt)
    check(sorted(losses) == ["loss_box", "loss_cls", "loss_ctr", "total"],
          f"FCOS.forward should return loss_cls, loss_box and loss_ctr, got {sorted(losses)}", call=call)
    check(all(math.isfinite(v) and v >= 0 for v in losses.values()), f"losses must be finite and >= 0: {losses}",
          call=call)
    norms = student.detection_helper.grad_norms(model)
    trainable = {name: value for name, value in norms.items()
                 if name.startswith("pred_net.") or name.startswith("backbone.fpn_params.")}
    check(len(trainable) >= 16, f"expected the FPN (backbone.fpn_params.*) and head (pred_net.*) parameters, "
          f"found {sorted(trainable)[:8]}", call=call)
    dead = sorted(name for name, value in trainable.items() if not (math.isfinite(value) and value > 0))
    check(not dead, f"these parameters got no gradient from the losses: {dead[:6]}", call=call,
          hint="compute the losses from the predictions with torch operations (no .item(), .detach() or numpy "
               "in between) and use every FPN layer")

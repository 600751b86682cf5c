"""Public tests of Task 2: IoU, NMS, WSDDN's two streams and loss, detections and AP (no reference needed).

As the F22 starter has them (part ``main``): ``iou(box1, box2)`` of two boxes, ``nms(bounding_boxes,
confidence_score, threshold=0.05)`` returning boxes and scores in any container ("list of bounding
boxes and scores"), ``WSDDN.forward`` called with ``rois`` in each container and scale the starter
leaves open (``course.wsddn_forward``), ``build_loss`` with the label shapes the starter itself
uses ([20, 1] from its forward, [1, 20] in its docstring, [20]). This project's ``iou`` of all
pairs, ``get_detections`` and ``calculate_map(detections, ground_truths)`` are part ``extended``.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision

from grader.compare import GradingFailure, assert_close, check, describe, describe_call
from grader.sandbox.client import StudentCodeError
from grader.student import value_and_grad


def random_boxes(count: int, generator: torch.Generator, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(count, 2, generator=generator) * size
    wh = torch.rand(count, 2, generator=generator) * size / 3 + 1
    return torch.cat([xy, xy + wh], dim=1)


KEEP_BOXES = ("leave the caller's boxes and scores as they were: work on copies (boxes.clone()) or out of place "
              "(torch.clamp(x, min=0), boxes[order] instead of sorting in place, scores[keep] instead of zeroing)")


@pytest.mark.weight(2)
@pytest.mark.number("2.1")
def test_iou(student, wl):
    """iou(box1, box2): intersection over union of two boxes (x1, y1, x2, y2)"""
    cases = [((0.0, 0.0, 2.0, 2.0), (1.0, 1.0, 3.0, 3.0), 1 / 7, "intersection / (area1 + area2 - intersection)"),
             ((0.0, 0.0, 2.0, 2.0), (5.0, 5.0, 6.0, 6.0), 0.0, "boxes apart: no intersection, IoU 0"),
             ((0.0, 0.0, 4.0, 4.0), (1.0, 1.0, 2.0, 3.0), 2 / 16, "a box inside the other"),
             ((0.0, 0.0, 2.0, 2.0), (2.0, 0.0, 4.0, 2.0), 0.0, "boxes that touch: the intersection has width 0"),
             ((0.1, 0.2, 0.5, 0.9), (0.3, 0.1, 0.8, 0.6), None, "normalised coordinates, as the data set gives"),
             ((0.0, 0.0, 2.0, 2.0), (3.0, 0.0, 5.0, 1.0), 0.0,
              "apart in x only: clamp the intersection's width at 0 (not a negative area)")]
    for box1, box2, expected, hint in cases:
        a, b = torch.tensor(box1), torch.tensor(box2)
        if expected is None:
            expected = float(torchvision.ops.box_iou(a[None], b[None])[0, 0])
        call = describe_call("iou", a, b)
        got = wl.number(wl.keeping_inputs(student.utils.iou, a, b, call=call, hint=KEEP_BOXES), call)
        check(math.isclose(got, expected, rel_tol=1e-5, abs_tol=1e-6), f"expected {expected:.6g}, got {got:.6g}",
              call=call, hint=hint)


@pytest.mark.weight(1)
@pytest.mark.number("2.18")
@pytest.mark.part("extended")
def test_iou_all_pairs(student):
    """iou of [N, 4] x [M, 4] boxes: the [N, M] matrix (vs torchvision.ops.box_iou; this project's docstring)"""
    generator = torch.Generator().manual_seed(21)
    boxes1, boxes2 = random_boxes(7, generator), random_boxes(9, generator)
    assert_close(student.utils.iou(boxes1, boxes2), torchvision.ops.box_iou(boxes1, boxes2),
                 call=describe_call("iou", boxes1, boxes2), rtol=1e-5, atol=1e-6,
                 hint="for [N, 4] and [M, 4] inputs return the [N, M] matrix of every pair, without Python loops")


@pytest.mark.weight(2)
@pytest.mark.number("2.2")
@pytest.mark.parametrize("count", [1, 30, 300])
def test_nms_matches_torchvision(student, wl, count):
    """nms: confidence threshold 0.05, then greedy NMS at IoU 0.3 (vs torchvision.ops.nms)"""
    generator = torch.Generator().manual_seed(count)
    boxes = random_boxes(count, generator)
    scores = torch.rand(count, generator=generator) * 0.4
    call = describe_call("nms", boxes, scores, threshold=0.05)
    # nms is given the proposals and scores of the caller (test_model reuses them for every class).
    got = wl.keeping_inputs(student.utils.nms, boxes, scores, threshold=0.05, call=call, hint=KEEP_BOXES)
    candidates = torch.nonzero(scores > 0.05).flatten()
    keep = candidates[torchvision.ops.nms(boxes[candidates], scores[candidates], 0.3)]
    wl.check_nms_result(got, boxes[keep], scores[keep], call)


def wsddn(student, wl, image_size: int = 224, rois: int = 6, seed: int = 0):
    net = wl.eval_mode(student.wsddn.WSDDN(classes=wl.classes))
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(1, 3, image_size, image_size, generator=generator)
    xy = torch.rand(rois, 2, generator=generator) * image_size * 0.6
    boxes = torch.cat([xy, xy + 16 + torch.rand(rois, 2, generator=generator) * image_size * 0.35], 1).floor()
    return net, image, boxes


def set_head(net, name: str, scale: float, seed: int) -> None:
    """Replace every parameter of ``net.<name>`` (zero, or random with std ``scale``)."""
    head = getattr(net, name)
    state = head.state_dict()
    generator = torch.Generator().manual_seed(seed)
    head.load_state_dict({k: torch.randn(v.shape, generator=generator) * scale for k, v in state.items()})


def forward(course, net, image, rois, call: str, **options):
    """``net(image, rois)`` in the first ``rois`` reading the student's forward takes (see ROI_READINGS)."""
    found = course.wsddn_forward(net, image, rois, **options)
    if found.reading:
        return found.output, f"{call}  (rois as {found.reading})", found.reading
    tried = "; ".join(f"{reading}: {error}" for reading, error in found.attempts)
    raise GradingFailure(f"Called {call}\nWSDDN.forward(image, rois) gave no cls_prob of shape "
                         f"[{rois.shape[0]}, 20] for any way of passing the rois. Tried: {tried}\n"
                         "Hint: forward should return cls_prob [N_roi, 20] for one image and its proposals")


@pytest.mark.weight(1)
@pytest.mark.number("2.3")
def test_wsddn_output(student, wl, course):
    """WSDDN.forward: cls_prob of shape [N_roi, 20], in [0, 1], columns summing to at most 1"""
    net, image, rois = wsddn(student, wl)
    prob, call, reading = forward(course, net, image, rois, describe_call("WSDDN().eval()", image, rois))
    check(bool((prob >= 0).all()) and bool((prob <= 1).all()), "cls_prob has values outside [0, 1]", call=call)
    check(bool((prob.sum(0) <= 1 + 1e-5).all()), f"the sum over regions exceeds 1: {prob.sum(0).max():.4f}", call=call,
          hint="softmax over regions in the detection stream makes each class's column sum to at most 1")
    twice, twice_call, _ = forward(course, net, image, rois[[0, 0]], describe_call("WSDDN().eval()", image,
                                                                                  rois[[0, 0]]),
                                   only=reading, accept=lambda out: isinstance(out, torch.Tensor))
    assert_close(twice[0], twice[1], call=twice_call, hint="identical regions must get identical scores in eval mode")


@pytest.mark.weight(3)
@pytest.mark.number("2.4")
@pytest.mark.parametrize("stream", ["classification", "detection"])
def test_wsddn_softmax_axes(student, wl, course, stream):
    """WSDDN: softmax over classes in score_fc, over regions in bbox_fc"""
    net, image, rois = wsddn(student, wl, seed=1)
    call = describe_call("WSDDN().eval()", image, rois)
    if stream == "classification":
        # bbox_fc silenced: the detection stream is uniform (1/N per region), so N * cls_prob is the
        # classification stream alone, a distribution over classes in every row.
        set_head(net, "bbox_fc", 0.0, 0)
        set_head(net, "score_fc", 0.05, 1)
        prob, call, _ = forward(course, net, image, rois, call + " with bbox_fc set to zero")
        prob = prob * rois.shape[0]
        assert_close(prob.sum(1), torch.ones(rois.shape[0]), call=call,
                     what="N * cls_prob summed over classes", rtol=1e-4, atol=1e-4,
                     hint="the classification stream (score_fc) takes a softmax over classes (dim=1)")
    else:
        set_head(net, "score_fc", 0.0, 2)
        set_head(net, "bbox_fc", 0.05, 3)
        prob, call, _ = forward(course, net, image, rois, call + " with score_fc set to zero")
        prob = prob * 20
        assert_close(prob.sum(0), torch.ones(20), call=call,
                     what="20 * cls_prob summed over regions", rtol=1e-4, atol=1e-4,
                     hint="the detection stream (bbox_fc) takes a softmax over regions (dim=0)")
    check(not torch.allclose(prob, prob.flatten()[0].expand_as(prob), atol=1e-6),
          "cls_prob does not depend on the other stream", call=call,
          hint="cls_prob = softmax(score, dim=1) * softmax(bbox, dim=0)")


def bce_sum(cls_prob: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(cls_prob.sum(0).clamp(0, 1), labels, reduction="sum")


LABEL_SHAPES = ((20, 1), (1, 20), (20,))
"""The label shapes build_loss may get: the starter's forward passes gt_vec.view(n_classes, -1) ([20, 1]), its
docstring says 1x20, and a student's forward may flatten it."""


@pytest.mark.weight(3)
@pytest.mark.number("2.5")
def test_wsddn_build_loss(student, wl):
    """WSDDN.build_loss: sum over regions, then binary cross-entropy with the image labels"""
    net = student.wsddn.WSDDN(classes=wl.classes)
    generator = torch.Generator().manual_seed(4)
    cls_prob = (torch.softmax(torch.randn(7, 20, generator=generator, dtype=torch.float64), 1)
                * torch.softmax(torch.randn(7, 20, generator=generator, dtype=torch.float64) * 2, 0))
    flat = torch.zeros(20, dtype=torch.float64)
    flat[[1, 7, 14]] = 1
    leaf = cls_prob.clone().requires_grad_(True)
    expected = bce_sum(leaf, flat)
    expected.backward()
    first_failure = None
    for shape in LABEL_SHAPES:
        labels = flat.reshape(shape)
        call = describe_call("WSDDN.build_loss", cls_prob, labels)
        try:
            loss, (grad,) = value_and_grad(net.build_loss, cls_prob, labels, wrt=(0,))
            value = float(torch.as_tensor(loss).detach())
            # The reduction over classes is not fixed by the handout: a sum or a mean are both accepted.
            factor = 1.0 if math.isclose(value, float(expected.detach()), rel_tol=1e-5) else 20.0
            assert_close(torch.as_tensor(loss, dtype=torch.float64) * factor, expected.detach(), call=call,
                         what="loss", rtol=1e-5, atol=1e-8,
                         hint="image score = cls_prob summed over the regions (clamped to [0, 1]); binary "
                              "cross-entropy with the labels, summed (or averaged) over classes")
            check(grad is not None, "the loss has no gradient with respect to cls_prob", call=call)
            assert_close(grad * factor, leaf.grad, call=call, what="d loss / d cls_prob", rtol=1e-4, atol=1e-8)
            return
        except (GradingFailure, StudentCodeError) as exc:
            first_failure = first_failure or exc
    raise first_failure


@pytest.mark.weight(1)
@pytest.mark.number("2.6")
def test_wsddn_training_forward_sets_loss(student, wl, course):
    """WSDDN.forward in training mode stores the loss of its output (model.loss)"""
    net, image, rois = wsddn(student, wl, seed=5)
    wl.train_mode(net)
    labels = torch.zeros(1, 20)
    labels[0, [0, 9]] = 1
    prob, call, _ = forward(course, net, image, rois, describe_call("WSDDN().train()", image, rois, labels),
                            gt_vec=labels)
    loss = net.loss
    check(isinstance(loss, torch.Tensor) and loss.numel() == 1, f"model.loss should be a scalar tensor, got "
          f"{describe(loss)}", call=call, hint="forward sets self.cross_entropy = self.build_loss(cls_prob, label_vec)")
    expected = float(bce_sum(prob.detach().double(), labels.reshape(-1).double()))
    value = float(loss.detach())
    check(math.isclose(value, expected, rel_tol=1e-4) or math.isclose(value * 20, expected, rel_tol=1e-4),
          f"model.loss is {value:.6g}; the binary cross-entropy of this output is {expected:.6g} (sum over classes)",
          call=call)


@pytest.mark.weight(1)
@pytest.mark.number("2.7")
@pytest.mark.part("extended")
def test_get_detections_hand_made(student, wl):
    """get_detections: per-class threshold 0.05 and NMS at 0.3, classes independent"""
    rois = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.55], [0.5, 0.5, 1.0, 1.0], [0.1, 0.1, 0.6, 0.6]])
    # float64 columns, so that 0.05 is exactly the threshold (a float32 0.05 lies above it)
    cls_prob = torch.tensor([[0.30, 0.00, 0.10],   # class 0: roi 0 suppressed by roi 1
                             [0.40, 0.00, 0.00],   # class 1: exactly 0.05 (roi 2) is not above the threshold
                             [0.20, 0.05, 0.00],   # class 2: IoU(roi 0, roi 3) = 0.47 > 0.3, roi 3 suppressed
                             [0.04, 0.50, 0.09]],  # roi 3 is below 0.05 in class 0
                            dtype=torch.float64)
    call = describe_call("get_detections", cls_prob, rois, 0.05, 0.3)
    got = wl.keeping_inputs(student.task_2.get_detections, cls_prob, rois, 0.05, 0.3, call=call, hint=KEEP_BOXES)
    check(isinstance(got, (tuple, list)) and len(got) == 3, f"expected (boxes, scores, labels), got {describe(got)}",
          call=call)
    boxes = wl.tensor(got[0], "boxes", call, torch.float64).reshape(-1, 4)
    scores = wl.tensor(got[1], "scores", call, torch.float64).reshape(-1)
    labels = wl.tensor(got[2], "labels", call, torch.int64).reshape(-1)
    expected = (rois[[1, 2, 3, 0]].double(), torch.tensor([0.40, 0.20, 0.50, 0.10], dtype=torch.float64),
                torch.tensor([0, 0, 1, 2]))
    got_sorted, expected_sorted = wl.sort_detections(boxes, scores, labels), wl.sort_detections(*expected)
    for what, g, e in zip(("boxes", "scores", "labels"), got_sorted, expected_sorted):
        assert_close(g, e, call=call, what=f"{what} (sorted by class, then score)", rtol=1e-6, atol=1e-6,
                     hint="for each class: keep cls_prob > thresh, then NMS (IoU > 0.3 suppresses) within the class")


@pytest.mark.weight(1.5)
@pytest.mark.number("2.8")
@pytest.mark.part("extended")
def test_calculate_map_hand_computed(student, wl):
    """calculate_map: class-wise AP at IoU 0.5 on a hand-computed example"""
    ground_truths = [(torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), torch.tensor([0, 0])),
                     (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([1])),
                     (torch.tensor([[40.0, 40, 60, 60]]), torch.tensor([3]))]
    detections = [
        # class 0: a hit (0.9), a duplicate of it (0.8: false positive), the second box (0.7, IoU 10/11)
        (torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 31]]), torch.tensor([0.9, 0.8, 0.7]),
         torch.tensor([0, 0, 0])),
        # image 1: a class-0 false positive (0.95); its class-1 box is missed
        (torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0.95]), torch.tensor([0])),
        # image 2: class 3 found, with IoU 0.49 (a miss) and 0.64 (a hit)
        (torch.tensor([[40.0, 40, 54, 54], [42, 42, 58, 58]]), torch.tensor([0.6, 0.5]), torch.tensor([3, 3])),
    ]
    call = describe_call("calculate_map", detections, ground_truths, num_classes=4)
    got = wl.keeping_inputs(student.task_2.calculate_map, detections, ground_truths, num_classes=4, call=call,
                            hint=KEEP_BOXES)
    # class 0 ranks: FP, TP, FP, TP -> precision at the recall steps: 1/2, 2/4 -> AP = 0.5
    # class 3 ranks: FP, TP -> AP = 1 * 1/2
    wl.check_aps(got, [0.5, 0.0, float("nan"), 0.5], call)
    # IoU exactly 0.5 is a match (the docstring: IoU >= iou_threshold); 0.5 is exact in binary.
    ground_truths = [(torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0])),
                     (torch.tensor([[0.0, 0, 4, 4], [10, 10, 14, 14]]), torch.tensor([1, 1]))]
    detections = [(torch.tensor([[0.0, 0, 10, 20]]), torch.tensor([0.9]), torch.tensor([0])),      # IoU 100/200
                   (torch.tensor([[0.0, 0, 4, 2], [10, 10, 14, 11]]), torch.tensor([0.8, 0.7]),    # IoU 8/16, 4/16
                    torch.tensor([1, 1]))]
    call = describe_call("calculate_map", detections, ground_truths, num_classes=2) + " (IoUs of exactly 0.5)"
    got = student.task_2.calculate_map(detections, ground_truths, num_classes=2)
    wl.check_aps(got, [1.0, 0.5], call)

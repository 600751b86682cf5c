"""Public tests of the confusion-matrix metrics (library oracles and hand computations; no reference needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import precision_recall_fscore_support
from torchmetrics.classification import MulticlassJaccardIndex

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.student import call_keeping_inputs

NAN = float("nan")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def random_masks(seed: int, shape=(3, 12, 10), classes: int = 5, ignore_rows: int = 2):
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, classes, shape, generator=generator)
    pred = torch.where(torch.rand(shape, generator=generator) < 0.6, target,
                       torch.randint(0, classes, shape, generator=generator))
    target[:, :ignore_rows] = 255
    return pred, target


@pytest.mark.weight(0.5)
@pytest.mark.number("2.5")
def test_confusion_matrix_matches_sklearn(student):
    """confusion_matrix: equals sklearn's on the pixels that are not ignored"""
    pred, target = random_masks(1)
    pred[0, 0, 0] = 4  # a prediction under an ignored target does not count
    keep = target != 255
    expected = torch.from_numpy(sk_confusion_matrix(target[keep].numpy(), pred[keep].numpy(), labels=range(6)))
    got = call_keeping_inputs(student.seg_metrics.confusion_matrix, pred, target, 6)
    assert_equal(got, expected.to(torch.int64), call=describe_call("confusion_matrix", pred, target, 6),
                 hint="rows are true classes, columns predictions; drop pixels whose target is 255; "
                      "torch.bincount(target * C + pred, minlength=C * C)")


@pytest.mark.weight(1)
@pytest.mark.number("2.6")
def test_iou_matches_torchmetrics(student):
    """per_class_iou / mean_iou: equal torchmetrics' MulticlassJaccardIndex(ignore_index=255), absent classes excluded"""
    pred, target = random_masks(2, classes=4)
    # class 5 occurs nowhere (absent); class 4 is only predicted
    pred[1, 5, :3] = 4
    cm = student.seg_metrics.confusion_matrix(pred, target, 6)
    got = call_keeping_inputs(student.seg_metrics.per_class_iou, cm)
    oracle = MulticlassJaccardIndex(num_classes=6, ignore_index=255, average=None)(pred, target).double()
    expected = oracle.clone()
    expected[5] = NAN
    assert_close(got, expected, equal_nan=True, call=describe_call("per_class_iou", cm),
                 hint="tp / (tp + fp + fn), NaN for a class in neither the targets nor the predictions")
    macro = float(MulticlassJaccardIndex(num_classes=6, ignore_index=255, average="macro")(pred, target))
    got_mean = student.seg_metrics.mean_iou(cm)
    assert_close(got_mean, macro, rtol=1e-6, call=describe_call("mean_iou", cm),
                 hint="average over present classes only: an absent class is left out, not counted as 0")


@pytest.mark.weight(1)
@pytest.mark.number("2.7")
def test_pixel_accuracy_and_dice(student):
    """pixel_accuracy and dice on a hand-made confusion matrix; NaN for a matrix without pixels"""
    cm = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 0]])
    got = student.seg_metrics.pixel_accuracy(cm)
    assert_close(got, 8 / 11, call=describe_call("pixel_accuracy", cm), hint="trace / total")
    got = call_keeping_inputs(student.seg_metrics.dice, cm)
    assert_close(got, torch.tensor([10 / 13, 6 / 9, NAN], dtype=torch.float64), equal_nan=True,
                 call=describe_call("dice", cm), hint="2 tp / (row + column); NaN for an absent class")
    empty = torch.zeros(3, 3, dtype=torch.int64)  # no kept pixel at all (every target ignored)
    for name in ("pixel_accuracy", "mean_iou"):
        got = getattr(student.seg_metrics, name)(empty)
        assert_close(got, NAN, equal_nan=True, call=describe_call(name, empty),
                     hint="a matrix without pixels has no accuracy and no present class: NaN, not 0")


def hit_rates_by_hand(ious: list[list[float]]):
    rates = []
    for c in range(len(ious[0])):
        values = [row[c] for row in ious if not math.isnan(row[c])]
        rates.append([sum(v >= k / 10 for v in values) / len(values) if values else NAN for k in range(11)])
    return torch.tensor(rates, dtype=torch.float64).T


@pytest.mark.weight(1)
@pytest.mark.number("2.9")
def test_iou_threshold_metrics(student):
    """iou_threshold_metrics: hit rate at IoU >= 0, 0.1, ..., 1.0 per class, and their mean (mAP)"""
    rows = [[0.5, NAN, 1.0, 0.3], [0.25, NAN, 0.0, 0.7], [NAN, NAN, 0.95, 0.1]]
    ious = torch.tensor(rows, dtype=torch.float64)
    got = call_keeping_inputs(student.seg_metrics.iou_threshold_metrics, ious)
    call = describe_call("iou_threshold_metrics", ious)
    check(isinstance(got, dict) and {"thresholds", "hit_rate", "ap", "map"} <= set(got),
          f"expected a dict with 'thresholds', 'hit_rate', 'ap', 'map', got {got!r:.120}", call=call)
    assert_close(got["thresholds"], torch.arange(11, dtype=torch.float64) / 10, call=call, what="thresholds")
    hit_rate = hit_rates_by_hand(rows)
    assert_close(got["hit_rate"], hit_rate, equal_nan=True, call=call, what="hit_rate",
                 hint="fraction of the images where the class is defined whose IoU is >= the threshold")
    ap = hit_rate.mean(0)
    assert_close(got["ap"], ap, equal_nan=True, call=call, what="ap")
    assert_close(got["map"], float(ap[~ap.isnan()].mean()), call=call, what="map",
                 hint="mean of ap over the classes defined in some image")


def per_image_iou_by_hand(pred: torch.Tensor, target: torch.Tensor, classes: int) -> torch.Tensor:
    out = torch.full((pred.shape[0], classes), NAN, dtype=torch.float64)
    for i in range(pred.shape[0]):
        keep = target[i] != 255
        for c in range(classes):
            t, p = target[i][keep] == c, pred[i][keep] == c
            union = int((t | p).sum())
            if union:
                out[i, c] = int((t & p).sum()) / union
    return out


@pytest.mark.weight(1)
@pytest.mark.number("2.11")
def test_per_image_iou(student):
    """per_image_iou: IoU of each class within each image (NaN where the class does not occur)"""
    pred = torch.tensor([[[0, 0, 1], [1, 2, 2]], [[2, 2, 2], [0, 1, 1]], [[3, 3, 3], [3, 3, 3]]])
    target = torch.tensor([[[0, 1, 1], [1, 2, 255]], [[2, 255, 0], [0, 0, 1]], [[255, 255, 255], [255, 255, 255]]])
    got = call_keeping_inputs(student.seg_metrics.per_image_iou, pred, target, 4)
    assert_close(got, per_image_iou_by_hand(pred, target, 4), equal_nan=True,
                 call=describe_call("per_image_iou", pred, target, 4),
                 hint="one confusion matrix per image; leave out pixels whose target is 255")


@pytest.mark.weight(2)
@pytest.mark.number("3.1")
def test_plot_confusion_matrix(student, sandbox_tmp_path):
    """plot_confusion_matrix: a PNG heat map of the row-normalised matrix"""
    cm = torch.tensor([[6, 2, 0], [0, 0, 0], [1, 3, 4]])
    path = sandbox_tmp_path / "cm.png"
    got = call_keeping_inputs(student.seg_metrics.plot_confusion_matrix, cm, ["a", "b", "c"], str(path))
    call = describe_call("plot_confusion_matrix", cm, ["a", "b", "c"], str(path))
    check(path.is_file() and path.read_bytes()[:8] == PNG_MAGIC, f"expected a PNG file at {path}", call=call)
    expected = torch.tensor([[0.75, 0.25, 0], [0, 0, 0], [0.125, 0.375, 0.5]], dtype=torch.float64)
    assert_close(got, expected, call=call, hint="divide each row by its sum; a row of zeros stays zeros")


@pytest.mark.weight(3)
@pytest.mark.number("3.4")
def test_precision_recall_f1_match_sklearn(student):
    """precision_recall_f1: equal sklearn's per-class precision, recall and F1"""
    pred, target = random_masks(4, shape=(4, 16, 16), classes=5)
    keep = target != 255
    precision, recall, f1, _ = precision_recall_fscore_support(target[keep].numpy(), pred[keep].numpy(),
                                                               labels=range(5), zero_division=0)
    cm = student.seg_metrics.confusion_matrix(pred, target, 5)
    got = call_keeping_inputs(student.seg_metrics.precision_recall_f1, cm)
    call = describe_call("precision_recall_f1", cm)
    check(isinstance(got, (list, tuple)) and len(got) == 3, f"expected (precision, recall, f1), got {got!r:.100}",
          call=call)
    for value, expected, name in zip(got, (precision, recall, f1), ("precision", "recall", "f1")):
        assert_close(value, torch.from_numpy(expected).double(), call=call, what=name,
                     hint="precision = tp / column sum, recall = tp / row sum, F1 = 2 tp / (row + column)")


@pytest.mark.weight(1.5)
@pytest.mark.number("3.6")
def test_segmentation_report(student):
    """segmentation_report: every metric of one confusion matrix"""
    cm = torch.tensor([[8, 2, 0, 0], [1, 5, 2, 0], [0, 0, 0, 0], [0, 3, 0, 4]])
    got = call_keeping_inputs(student.seg_metrics.segmentation_report, cm)
    call = describe_call("segmentation_report", cm)
    c = cm.double()
    tp, rows, cols = c.diagonal(), c.sum(1), c.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (rows + cols - tp)
        expected = {"pixel_accuracy": 17 / 25, "iou": iou, "miou": float(iou[~iou.isnan()].mean()),
                    "dice": 2 * tp / (rows + cols), "precision": tp / cols, "recall": tp / rows,
                    "f1": 2 * tp / (rows + cols)}
    check(isinstance(got, dict), f"expected a dict, got {got!r:.100}", call=call)
    assert_close({k: got.get(k) for k in expected}, expected, equal_nan=True, call=call)


CITYSCAPES_TO_IDD = [0, 1, 15, 10, 11, 14, 13, 12, 16, 255, 17, 2, 3, 6, 7, 8, 9, 4, 5]


@pytest.mark.weight(1)
@pytest.mark.number("4.1")
def test_cityscapes_to_idd(student):
    """cityscapes_to_idd: Cityscapes trainIds to the 18 IDD classes, by class name"""
    ids = torch.tensor([list(range(19)) + [255]])
    got = call_keeping_inputs(student.mask_utils.cityscapes_to_idd, ids)
    assert_equal(got, torch.tensor([CITYSCAPES_TO_IDD + [255]]), call=describe_call("cityscapes_to_idd", ids),
                 hint="match the class names; terrain has no IDD class (255)")


def course_mean_iou(pred: np.ndarray, labels: np.ndarray) -> float:
    """The DLCV course's formula, operation for operation (numpy scalars, classes 0..5, running sum)."""
    total = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        total += (tp / (tp_fp + tp_fn - tp)) / 6
    return total


@pytest.mark.weight(1)
@pytest.mark.number("5.15")
def test_mean_iou_score_is_the_course_formula(student):
    """mean_iou_score: the DLCV course's mean_iou_score, bit for bit"""
    generator = torch.Generator().manual_seed(15)
    labels = torch.randint(0, 7, (3, 20, 20), generator=generator)
    pred = torch.where(torch.rand(3, 20, 20, generator=generator) < 0.7, labels,
                       torch.randint(0, 7, (3, 20, 20), generator=generator))
    pred_np, labels_np = pred.double().numpy(), labels.double().numpy()  # the course's read_masks gives float64
    got = call_keeping_inputs(student.seg_metrics.mean_iou_score, pred_np, labels_np)
    expected = float(course_mean_iou(pred_np, labels_np))
    assert_close(got, expected, rtol=0, atol=0, call=describe_call("mean_iou_score", pred_np, labels_np),
                 hint="pool over every mask; classes 0..5 only; add iou / 6 class by class, as the course does")

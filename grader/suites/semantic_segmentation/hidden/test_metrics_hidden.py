"""Hidden tests of the metrics: random masks against float64 numpy oracles and the reference, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, assert_equal, describe_call
from grader.student import call_keeping_inputs, student_raises

NAN = float("nan")


@st.composite
def mask_batches(draw, max_classes: int = 6):
    """A few batches of (pred, target): absent classes, ignore pixels, sometimes all-ignore images."""
    classes = draw(st.integers(2, max_classes))
    used = draw(st.integers(1, classes))  # classes >= used never occur in the targets
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(draw(st.integers(1, 3))):
        n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
        target = torch.randint(0, used, (n, h, w), generator=generator)
        pred = torch.where(torch.rand(n, h, w, generator=generator) < 0.5, target,
                           torch.randint(0, classes, (n, h, w), generator=generator))
        ignore = torch.rand(n, h, w, generator=generator) < draw(st.sampled_from([0.0, 0.2, 0.6]))
        target[ignore] = 255
        if draw(st.booleans()):
            target[0] = 255  # an image with every pixel ignored
        batches.append((pred, target))
    return classes, batches


def numpy_confusion(batches, classes: int) -> np.ndarray:
    cm = np.zeros((classes, classes), dtype=np.int64)
    for pred, target in batches:
        p, t = pred.numpy().ravel(), target.numpy().ravel()
        keep = t != 255
        np.add.at(cm, (t[keep], p[keep]), 1)
    return cm


def numpy_metrics(cm: np.ndarray) -> dict:
    """Float64 numpy version of every metric (pooled), with NaN for undefined values."""
    cm = cm.astype(np.float64)
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (rows + cols - tp)
        dice = 2 * tp / (rows + cols)
        return {"pixel_accuracy": float(tp.sum() / cm.sum()) if cm.sum() else NAN, "iou": iou,
                "miou": float(np.nanmean(iou)) if not np.isnan(iou).all() else NAN, "dice": dice,
                "precision": tp / cols, "recall": tp / rows, "f1": dice}


@pytest.mark.weight(1.5)
@pytest.mark.number("2.8")
@settings(max_examples=25)
@given(mask_batches())
def test_streaming_metrics_match_numpy(student, case):
    """ConfusionMatrix + metrics: pooled over batches, equal a float64 numpy confusion matrix"""
    classes, batches = case
    matrix = student.seg_metrics.ConfusionMatrix(classes)
    for pred, target in batches:
        call_keeping_inputs(matrix.update, pred, target)
    cm = matrix.matrix
    expected_cm = numpy_confusion(batches, classes)
    call = f"ConfusionMatrix({classes}).update(...) over {len(batches)} batches"
    assert_equal(cm, torch.from_numpy(expected_cm), call=call, what="matrix",
                 hint="add every batch's counts; ignore pixels whose target is 255")
    report = call_keeping_inputs(student.seg_metrics.segmentation_report, cm)
    expected = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in numpy_metrics(expected_cm).items()}
    assert_close({k: report.get(k) for k in expected}, expected, equal_nan=True, rtol=1e-9, atol=1e-12,
                 call=describe_call("segmentation_report", cm),
                 hint="pool pixels over the dataset; absent classes are NaN and left out of the mean")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.10")
@settings(max_examples=25)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_iou_threshold_metrics_random(student, reference, count, classes, seed):
    """iou_threshold_metrics on random IoUs (on the thresholds, NaN, 0 and 1 included)"""
    generator = torch.Generator().manual_seed(seed)
    ious = (torch.randint(0, 11, (count, classes), generator=generator).double() / 10)
    ious[torch.rand(count, classes, generator=generator) < 0.3] = NAN
    expected = reference.seg_metrics.iou_threshold_metrics(ious)
    got = call_keeping_inputs(student.seg_metrics.iou_threshold_metrics, ious)
    assert_close({k: got.get(k) for k in expected} if isinstance(got, dict) else got, expected, equal_nan=True,
                 call=describe_call("iou_threshold_metrics", ious), hint="IoU >= threshold counts as a hit")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.12")
@settings(max_examples=25)
@given(mask_batches())
def test_per_image_iou_random(student, case):
    """per_image_iou on random batches against a float64 numpy per-image oracle"""
    classes, batches = case
    pred, target = batches[0]
    expected = torch.full((pred.shape[0], classes), NAN, dtype=torch.float64)
    for i in range(pred.shape[0]):
        cm = numpy_confusion([(pred[i:i + 1], target[i:i + 1])], classes).astype(np.float64)
        tp, union = np.diag(cm), cm.sum(0) + cm.sum(1) - np.diag(cm)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected[i] = torch.from_numpy(np.where(union > 0, tp / union, NAN))
    got = call_keeping_inputs(student.seg_metrics.per_image_iou, pred, target, classes)
    assert_close(got, expected, equal_nan=True, call=describe_call("per_image_iou", pred, target, classes))


@pytest.mark.weight(1.5)
@pytest.mark.number("2.13")
def test_worst_examples(student):
    """worst_examples: images with IoU <= 0.5 for the class, lowest first, ties in index order"""
    ious = torch.tensor([[0.5, 0.9], [NAN, 0.1], [0.2, NAN], [0.51, 0.0], [0.2, 0.3], [0.0, 0.6]],
                        dtype=torch.float64)
    cases = [((0, 3, 0.5), [5, 2, 4]), ((0, 10, 0.5), [5, 2, 4, 0]), ((1, 2, 0.5), [3, 1]),
             ((1, 5, 0.05), [3]), ((0, 0, 0.5), [])]
    for (cls, k, max_iou), expected in cases:
        got = call_keeping_inputs(student.seg_metrics.worst_examples, ious, cls, k=k, max_iou=max_iou)
        assert_equal(got, torch.tensor(expected, dtype=torch.int64),
                     call=describe_call("worst_examples", ious, cls, k=k, max_iou=max_iou),
                     hint="keep IoU <= max_iou (never NaN), sort ascending with a stable sort, take k")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.14")
def test_confusion_matrix_rejects_bad_labels(student):
    """confusion_matrix and per_image_iou: labels out of range are an error, not a silent miscount"""
    target = torch.tensor([[0, 1], [2, 255]])
    with student_raises("ValueError"):
        student.seg_metrics.confusion_matrix(torch.tensor([[0, 1], [3, 0]]), target, 3)
    with student_raises("ValueError"):
        student.seg_metrics.confusion_matrix(torch.tensor([[0, 1], [2, 0]]), torch.tensor([[0, 1], [7, 255]]), 3)
    got = student.seg_metrics.confusion_matrix(torch.tensor([[0, 1], [2, 9]]), target, 3)
    assert_equal(got, torch.eye(3, dtype=torch.int64),
                 call="confusion_matrix(pred [[0, 1], [2, 9]], target [[0, 1], [2, 255]], 3)",
                 hint="a prediction under an ignored target does not matter")
    # per_image_iou raises "as confusion_matrix": a bad label in image 0 would land in image 1's bins
    good = torch.tensor([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])
    with student_raises("ValueError"):
        student.seg_metrics.per_image_iou(torch.tensor([[[0, 1], [3, 0]], [[1, 1], [0, 2]]]), good, 3)
    with student_raises("ValueError"):
        student.seg_metrics.per_image_iou(good, torch.tensor([[[0, 1], [7, 0]], [[1, 1], [0, 2]]]), 3)
    got = student.seg_metrics.per_image_iou(torch.tensor([[[0, 1], [2, 9]]]), target[None], 3)
    assert_close(got, torch.ones(1, 3, dtype=torch.float64),
                 call="per_image_iou(pred [[[0, 1], [2, 9]]], target [[[0, 1], [2, 255]]], 3)",
                 hint="raise ValueError for a label outside 0..C-1 at a kept pixel; an ignored pixel's prediction "
                      "does not matter")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.15")
def test_ignore_index_argument(student):
    """ignore_index: confusion_matrix, per_image_iou, ConfusionMatrix, class_distribution and the losses honour it"""
    generator = torch.Generator().manual_seed(25)
    target = torch.randint(0, 5, (2, 4, 6), generator=generator)  # 4 classes; label 4 is the ignore index here
    pred = torch.randint(0, 4, (2, 4, 6), generator=generator)
    pred[target == 4] = torch.randint(0, 9, (int((target == 4).sum()),), generator=generator)  # anything goes there
    keep = target != 4
    hint = "leave out the pixels whose target is the ignore_index argument (255 is only its default)"
    expected = torch.from_numpy(np.bincount((target[keep] * 4 + pred[keep]).numpy(), minlength=16).reshape(4, 4))
    got = student.seg_metrics.confusion_matrix(pred, target, 4, ignore_index=4)
    assert_equal(got, expected, call=describe_call("confusion_matrix", pred, target, 4, ignore_index=4), hint=hint)
    matrix = student.seg_metrics.ConfusionMatrix(4, ignore_index=4)
    matrix.update(pred, target)
    assert_equal(matrix.matrix, expected, call="ConfusionMatrix(4, ignore_index=4).update(pred, target)",
                 what="matrix", hint=hint)
    ious = torch.full((2, 4), NAN, dtype=torch.float64)
    for i in range(2):
        t, p = target[i][keep[i]], pred[i][keep[i]]
        for c in range(4):
            union = int(((t == c) | (p == c)).sum())
            if union:
                ious[i, c] = int(((t == c) & (p == c)).sum()) / union
    got = student.seg_metrics.per_image_iou(pred, target, 4, ignore_index=4)
    assert_close(got, ious, equal_nan=True, call=describe_call("per_image_iou", pred, target, 4, ignore_index=4),
                 hint=hint)
    got = student.seg_dataset.class_distribution([target], 4, ignore_index=4)
    assert_equal(got, torch.bincount(target[keep], minlength=4),
                 call=describe_call("class_distribution", [target], 4, ignore_index=4), hint=hint)
    logits = torch.randn(2, 4, 4, 6, generator=generator, dtype=torch.float64)
    got = student.seg_losses.cross_entropy_loss(logits, target, ignore_index=4)
    assert_close(got, F.cross_entropy(logits, target, ignore_index=4), rtol=1e-9,
                 call=describe_call("cross_entropy_loss", logits, target, ignore_index=4), hint=hint)
    ce = F.cross_entropy(logits, target, ignore_index=4, reduction="none")
    poly = torch.where(keep, ce + 0.5 * (1 - torch.exp(-ce)), torch.zeros_like(ce)).sum() / keep.sum()
    got = student.seg_losses.poly1_loss(logits, target, 0.5, ignore_index=4)
    assert_close(got, poly, rtol=1e-9, call=describe_call("poly1_loss", logits, target, 0.5, ignore_index=4),
                 hint=hint)


@pytest.mark.weight(0.5)
@pytest.mark.number("3.2")
def test_confusion_matrix_class_streams(student):
    """ConfusionMatrix: update with labels or logits, reset"""
    generator = torch.Generator().manual_seed(32)
    logits = torch.randn(2, 4, 5, 6, generator=generator)
    target = torch.randint(0, 4, (2, 5, 6), generator=generator)
    target[1, 2:] = 255
    matrix = student.seg_metrics.ConfusionMatrix(4)
    call_keeping_inputs(matrix.update, logits, target)
    call_keeping_inputs(matrix.update, logits.argmax(1)[:1], target[:1])
    pred = torch.cat([logits.argmax(1), logits.argmax(1)[:1]])
    t = torch.cat([target, target[:1]])
    keep = t != 255
    expected = torch.from_numpy(np.bincount((t[keep] * 4 + pred[keep]).numpy(), minlength=16).reshape(4, 4))
    assert_equal(matrix.matrix, expected, call="ConfusionMatrix(4).update(logits [2, 4, 5, 6], target); "
                 ".update(labels [1, 5, 6], target[:1])", what="matrix",
                 hint="logits [N, C, H, W] are reduced with argmax over dimension 1")
    matrix.reset()
    assert_equal(matrix.matrix, torch.zeros(4, 4, dtype=torch.int64), call="ConfusionMatrix.reset()",
                 what="matrix")


@pytest.mark.weight(1)
@pytest.mark.number("3.3")
def test_plot_confusion_matrix_checks_its_input(student, sandbox_tmp_path):
    """plot_confusion_matrix: a non-square matrix or wrong names are an error"""
    with student_raises("ValueError"):
        student.seg_metrics.plot_confusion_matrix(torch.zeros(2, 3, dtype=torch.int64), ["a", "b"],
                                                  str(sandbox_tmp_path / "a.png"))
    with student_raises("ValueError"):
        student.seg_metrics.plot_confusion_matrix(torch.ones(2, 2, dtype=torch.int64), ["a", "b", "c"],
                                                  str(sandbox_tmp_path / "b.png"))


@pytest.mark.weight(1.5)
@pytest.mark.number("3.5")
def test_precision_recall_f1_undefined_values(student):
    """precision_recall_f1: NaN where a value is undefined (never predicted, absent)"""
    # class 0 fine, class 1 never predicted, class 2 only predicted, class 3 absent
    cm = torch.tensor([[4, 0, 1, 0], [2, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    precision, recall, f1 = call_keeping_inputs(student.seg_metrics.precision_recall_f1, cm)
    call = describe_call("precision_recall_f1", cm)
    assert_close(precision, torch.tensor([4 / 6, NAN, 0.0, NAN], dtype=torch.float64), equal_nan=True, call=call,
                 what="precision", hint="precision is NaN for a class that is never predicted")
    assert_close(recall, torch.tensor([4 / 5, 0.0, NAN, NAN], dtype=torch.float64), equal_nan=True, call=call,
                 what="recall", hint="recall is NaN for a class absent from the targets")
    assert_close(f1, torch.tensor([8 / 11, 0.0, 0.0, NAN], dtype=torch.float64), equal_nan=True, call=call,
                 what="f1", hint="F1 = 2 tp / (row + column): 0 when only one of them is 0, NaN when both are")


@pytest.mark.weight(1)
@pytest.mark.number("4.2")
def test_cityscapes_logits_to_idd(student):
    """cityscapes_logits_to_idd: the 18 Cityscapes channels of the IDD classes, in IDD order"""
    logits = torch.arange(19, dtype=torch.float32).reshape(1, 19, 1, 1).expand(2, 19, 3, 2).contiguous()
    order = [0, 1, 11, 12, 17, 18, 13, 14, 15, 16, 3, 4, 7, 6, 5, 2, 8, 10]
    got = call_keeping_inputs(student.mask_utils.cityscapes_logits_to_idd, logits)
    assert_equal(got, logits[:, order], call=describe_call("cityscapes_logits_to_idd", logits),
                 hint="channel i of the result is the Cityscapes channel named IDD_CLASSES[i]; terrain is dropped")


def course_mean_iou(pred: np.ndarray, labels: np.ndarray) -> float:
    total = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        with np.errstate(divide="ignore", invalid="ignore"):
            total += (tp / (tp_fp + tp_fn - tp)) / 6
    return float(total)


@pytest.mark.weight(1)
@pytest.mark.number("5.16")
@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(2, 7), st.booleans(), st.integers(0, 2**31 - 1))
def test_mean_iou_score_random(student, count, side, classes, as_tensor, seed):
    """mean_iou_score on random masks (absent classes give NaN, as in the course)"""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count, side, side), generator=generator)
    pred = torch.where(torch.rand(count, side, side, generator=generator) < 0.5, labels,
                       torch.randint(0, 7, (count, side, side), generator=generator))
    expected = course_mean_iou(pred.double().numpy(), labels.double().numpy())
    args = (pred, labels) if as_tensor else (pred.double().numpy(), labels.double().numpy())
    got = call_keeping_inputs(student.seg_metrics.mean_iou_score, *args)
    assert_close(got, expected, rtol=0, atol=0, equal_nan=True, call=describe_call("mean_iou_score", *args),
                 hint="the course's formula exactly: classes 0..5, pooled, iou / 6 added class by class")

"""The reference's metrics and losses against library oracles and float64 hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import precision_recall_fscore_support
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

NAN = float("nan")


@st.composite
def batches(draw, max_classes: int = 7):
    """Batches of (pred, target) with absent classes, ignore pixels and all-ignore images."""
    classes = draw(st.integers(1, max_classes))
    used = draw(st.integers(1, classes))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    out = []
    for _ in range(draw(st.integers(1, 4))):
        n, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 10)), draw(st.integers(1, 10))
        target = torch.randint(0, used, (n, h, w), generator=generator)
        pred = torch.where(torch.rand(n, h, w, generator=generator) < draw(st.sampled_from([0.0, 0.5, 0.9])),
                           target, torch.randint(0, classes, (n, h, w), generator=generator))
        target[torch.rand(n, h, w, generator=generator) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = 255
        if draw(st.booleans()):
            target[0] = 255
        out.append((pred, target))
    return classes, out


def numpy_cm(pairs, classes: int) -> np.ndarray:
    cm = np.zeros((classes, classes), dtype=np.int64)
    for pred, target in pairs:
        p, t = pred.numpy().ravel(), target.numpy().ravel()
        keep = t != 255
        np.add.at(cm, (t[keep], p[keep]), 1)
    return cm


@settings(max_examples=150)
@given(batches())
def test_pooled_metrics_equal_torchmetrics_and_numpy(ref, case):
    classes, pairs = case
    m = ref.seg_metrics
    stream = m.ConfusionMatrix(classes)
    for pred, target in pairs:
        stream.update(pred, target)
    expected = numpy_cm(pairs, classes)
    assert torch.equal(stream.matrix, torch.from_numpy(expected))
    pred = torch.cat([p.reshape(-1) for p, _ in pairs])
    target = torch.cat([t.reshape(-1) for _, t in pairs])
    assert torch.equal(m.confusion_matrix(pred, target, classes), stream.matrix)

    cm = expected.astype(np.float64)
    tp, rows, cols = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou, dice = tp / (rows + cols - tp), 2 * tp / (rows + cols)
    report = m.segmentation_report(stream.matrix)
    np.testing.assert_allclose(report["iou"].numpy(), iou, rtol=1e-12)
    np.testing.assert_allclose(report["dice"].numpy(), dice, rtol=1e-12)
    np.testing.assert_allclose(report["f1"].numpy(), dice, rtol=1e-12)
    if cm.sum() == 0:
        assert math.isnan(report["pixel_accuracy"]) and math.isnan(report["miou"])
        return
    assert report["pixel_accuracy"] == pytest.approx(tp.sum() / cm.sum(), rel=1e-12)
    assert report["miou"] == pytest.approx(np.nanmean(iou), rel=1e-12)

    if classes < 2:
        return  # torchmetrics' multiclass metrics need two classes
    # torchmetrics: 0 for absent classes (we say NaN); its macro mean leaves absent classes out, as we do
    jaccard = MulticlassJaccardIndex(num_classes=classes, ignore_index=255, average=None)(pred, target).double()
    present = ~np.isnan(iou)
    np.testing.assert_allclose(jaccard.numpy()[present], iou[present], rtol=1e-6)
    macro = MulticlassJaccardIndex(num_classes=classes, ignore_index=255, average="macro")(pred, target)
    assert float(macro) == pytest.approx(report["miou"], rel=1e-5, abs=1e-7)
    accuracy = MulticlassAccuracy(num_classes=classes, ignore_index=255, average="micro")(pred, target)
    assert float(accuracy) == pytest.approx(report["pixel_accuracy"], rel=1e-6)
    f1 = MulticlassF1Score(num_classes=classes, ignore_index=255, average=None)(pred, target).double()
    np.testing.assert_allclose(f1.numpy()[present], dice[present], rtol=1e-6)
    keep = target != 255
    labels = range(classes)
    precision, recall, _, _ = precision_recall_fscore_support(target[keep].numpy(), pred[keep].numpy(),
                                                              labels=labels, zero_division=np.nan)
    got_p, got_r, _ = m.precision_recall_f1(stream.matrix)
    np.testing.assert_allclose(got_p.numpy(), precision, rtol=1e-12)
    np.testing.assert_allclose(got_r.numpy(), recall, rtol=1e-12)


@settings(max_examples=100)
@given(batches())
def test_per_image_iou_equals_per_image_matrices(ref, case):
    classes, pairs = case
    pred, target = pairs[0]
    got = ref.seg_metrics.per_image_iou(pred, target, classes)
    for i in range(pred.shape[0]):
        one = ref.seg_metrics.per_class_iou(ref.seg_metrics.confusion_matrix(pred[i], target[i], classes))
        torch.testing.assert_close(got[i], one, equal_nan=True, rtol=0, atol=0)


def course_mean_iou(pred: np.ndarray, labels: np.ndarray) -> float:
    total = 0
    for i in range(6):
        tp_fp = np.sum(pred == i)
        tp_fn = np.sum(labels == i)
        tp = np.sum((pred == i) * (labels == i))
        with np.errstate(divide="ignore", invalid="ignore"):
            total += (tp / (tp_fp + tp_fn - tp)) / 6
    return float(total)


@settings(max_examples=200)
@given(st.integers(1, 4), st.integers(1, 16), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_mean_iou_score_is_bit_for_bit(ref, count, side, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count, side, side), generator=generator)
    pred = torch.where(torch.rand(count, side, side, generator=generator) < 0.5, labels,
                       torch.randint(0, 8, (count, side, side), generator=generator))
    expected = course_mean_iou(pred.double().numpy(), labels.double().numpy())
    for args in ((pred.double().numpy(), labels.double().numpy()), (pred, labels)):
        got = ref.seg_metrics.mean_iou_score(*args)
        assert (math.isnan(got) and math.isnan(expected)) or got == expected  # exact, not approximate


def test_iou_threshold_metrics_by_hand(ref):
    generator = torch.Generator().manual_seed(0)
    ious = torch.randint(0, 11, (30, 4), generator=generator).double() / 10
    ious[torch.rand(30, 4, generator=generator) < 0.3] = NAN
    ious[:, 3] = NAN
    got = ref.seg_metrics.iou_threshold_metrics(ious)
    rates = torch.full((11, 4), NAN, dtype=torch.float64)
    for c in range(4):
        values = [float(v) for v in ious[:, c] if not math.isnan(float(v))]
        for k in range(11):
            if values:
                rates[k, c] = sum(v >= k / 10 for v in values) / len(values)
    torch.testing.assert_close(got["hit_rate"], rates, equal_nan=True)
    assert got["map"] == pytest.approx(float(rates[:, :3].mean(0).mean()))
    assert float(got["hit_rate"][0, 0]) == 1.0  # every defined image counts at threshold 0


def test_confusion_matrix_on_cuda_when_available(ref):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pred = torch.randint(0, 5, (4, 32, 32), device="cuda")
    target = torch.randint(0, 5, (4, 32, 32), device="cuda")
    cm = ref.seg_metrics.confusion_matrix(pred, target, 5)
    assert cm.device.type == "cuda"
    assert torch.equal(cm.cpu(), ref.seg_metrics.confusion_matrix(pred.cpu(), target.cpu(), 5))


def test_poly1_gradcheck_and_reductions(ref):
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 4, (2, 3, 3), generator=generator)
    target[0, 1] = 255
    for epsilon in (0.0, 1.0, -0.7, 4.0):
        assert torch.autograd.gradcheck(lambda x, e=epsilon: ref.seg_losses.poly1_loss(x, target, e), (logits,))
    with torch.no_grad():
        ce = ref.seg_losses.cross_entropy_loss(logits, target)
        torch.testing.assert_close(ref.seg_losses.poly1_loss(logits, target, 0.0), ce)
        torch.testing.assert_close(ce, F.cross_entropy(logits, target, ignore_index=255))
        pt = F.softmax(logits, 1).gather(1, target.clamp(max=3)[:, None])[:, 0]
        valid = target != 255
        by_hand = ((-pt.log() + 2.0 * (1 - pt))[valid]).mean()
        torch.testing.assert_close(ref.seg_losses.poly1_loss(logits, target, 2.0), by_hand)
    huge = torch.tensor([[[[1000.0]], [[-1000.0]]]], requires_grad=True)
    value = ref.seg_losses.poly1_loss(huge, torch.tensor([[[1]]]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(huge.grad).all()


def test_metric_errors_quote_the_value(ref):
    with pytest.raises(ValueError, match="7"):
        ref.seg_metrics.confusion_matrix(torch.tensor([0, 7]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="dtype"):
        ref.seg_metrics.confusion_matrix(torch.tensor([0.0]), torch.tensor([0]), 3)
    with pytest.raises(ValueError, match="shape"):
        ref.seg_metrics.confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)

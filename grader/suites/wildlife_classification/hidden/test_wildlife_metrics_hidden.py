"""Hidden tests of the metrics on random predictions (hypothesis) against scikit-learn and the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn import metrics as skm

from grader.compare import assert_close, assert_equal, describe_call
from grader.student import student_raises


@st.composite
def predictions(draw, max_classes: int = 8):
    classes = draw(st.integers(2, max_classes))
    count = draw(st.integers(1, 40))
    targets = draw(st.lists(st.integers(0, classes - 1), min_size=count, max_size=count))
    preds = draw(st.lists(st.integers(0, classes - 1), min_size=count, max_size=count))
    return torch.tensor(preds), torch.tensor(targets), classes


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.5")
@settings(max_examples=15)
@given(predictions())
def test_confusion_matrix_random(student, case):
    """Q2.2(d) confusion matrix on random predictions; out-of-range classes are errors"""
    preds, targets, classes = case
    got = student.metrics.confusion_matrix(preds, targets, classes)
    expected = skm.confusion_matrix(targets.numpy(), preds.numpy(), labels=list(range(classes)))
    assert_equal(got, torch.from_numpy(expected).long(), call=describe_call("confusion_matrix", preds, targets, classes))
    with student_raises("ValueError"):
        student.metrics.confusion_matrix(torch.tensor([0, classes]), torch.tensor([0, 1]), classes)


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.6")
@settings(max_examples=15)
@given(predictions(), st.sampled_from(["macro", "weighted", "micro"]))
def test_f1_random(student, case, average):
    """Q2.2(d) F1 score on random predictions (absent classes, tiny sets) equals sklearn's"""
    preds, targets, classes = case
    got = student.metrics.f1_score(preds, targets, classes, average)
    expected = skm.f1_score(targets.numpy(), preds.numpy(), labels=list(range(classes)), average=average,
                            zero_division=0)
    assert_close(got, float(expected), call=describe_call("f1_score", preds, targets, classes, average=average),
                 rtol=1e-9, atol=1e-12)


@pytest.mark.weight(0.25)
@pytest.mark.number("2.2.7")
@settings(max_examples=15)
@given(predictions(), st.integers(1, 4))
def test_misclassified_per_class_random(student, reference, case, k):
    """Q2.2(e) misclassified samples per class on random predictions"""
    preds, targets, classes = case
    got = student.metrics.misclassified_per_class(preds, targets, classes, k)
    expected = reference.metrics.misclassified_per_class(preds, targets, classes, k)
    assert_equal(got, expected, call=describe_call("misclassified_per_class", preds, targets, classes, k))


@pytest.mark.weight(1)
@pytest.mark.number("2.5.1")
@settings(max_examples=15)
@given(st.integers(0, 2**31 - 1), st.integers(1, 30), st.integers(2, 6))
def test_class_centroids_random(student, seed, count, classes):
    """Q2.5 (bonus) class centroids on random float64 features (classes may be empty)"""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (count,), generator=generator)
    got = student.metrics.class_centroids(features, labels, classes)
    expected = torch.full((classes, 5), float("nan"), dtype=torch.float64)
    for c in labels.unique().tolist():
        expected[c] = features[labels == c].mean(0)
    assert_close(got, expected, call=describe_call("class_centroids", features, labels, classes), equal_nan=True,
                 rtol=1e-9, atol=1e-12, hint="keep the dtype of features; NaN rows for empty classes")


@pytest.mark.weight(1.5)
@pytest.mark.number("2.5.2")
@settings(max_examples=15)
@given(st.integers(0, 2**31 - 1), st.integers(1, 25), st.integers(2, 6))
def test_centroid_distances_random(student, seed, count, classes):
    """Q2.5 (bonus) centroid distances on random features equal scipy's cdist (NaN for correct predictions)"""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(count, 6, generator=generator, dtype=torch.float64)
    centroids = torch.randn(classes, 6, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, classes, (count,), generator=generator)
    preds = torch.randint(0, classes, (count,), generator=generator)
    table = cdist(features.numpy(), centroids.numpy())
    rows = np.arange(count)
    expected = np.stack([table[rows, targets.numpy()], table[rows, preds.numpy()]], axis=1)
    expected[(preds == targets).numpy(), 1] = np.nan
    got = student.metrics.centroid_distances(features, targets, preds, centroids)
    assert_close(got, torch.from_numpy(expected), call=describe_call("centroid_distances", features, targets, preds,
                                                                     centroids), equal_nan=True, rtol=1e-9, atol=1e-12)

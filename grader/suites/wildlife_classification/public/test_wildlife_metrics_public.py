"""Public tests of the metrics (Q2.2d-e, 2.5 bonus) against scikit-learn and hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.student import student_raises

# 10 classes; class 8 is never present nor predicted, class 9 is predicted but never true.
TARGETS = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4, 5, 5, 5, 6, 7, 7, 1, 0])
PREDS = torch.tensor([0, 1, 0, 1, 1, 2, 0, 2, 9, 3, 4, 5, 5, 5, 3, 6, 7, 6, 1, 0])


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.4")
def test_accuracy(student):
    """Q2.2(d) accuracy equals sklearn's accuracy_score; empty input is an error"""
    got = student.metrics.accuracy(PREDS, TARGETS)
    assert_close(got, skm.accuracy_score(TARGETS.numpy(), PREDS.numpy()), call=describe_call("accuracy", PREDS, TARGETS),
                 rtol=1e-9, atol=1e-12)
    with student_raises("ValueError"):
        student.metrics.accuracy(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.5")
def test_confusion_matrix_matches_sklearn(student):
    """Q2.2(d) confusion matrix (rows true, columns predicted) equals sklearn's"""
    got = student.metrics.confusion_matrix(PREDS, TARGETS, 10)
    expected = torch.from_numpy(skm.confusion_matrix(TARGETS.numpy(), PREDS.numpy(), labels=list(range(10))))
    assert_equal(got, expected.long(), call=describe_call("confusion_matrix", PREDS, TARGETS, 10),
                 hint="cm[true, predicted], int64, K x K even for classes that never occur")


@pytest.mark.weight(1)
@pytest.mark.number("2.2.6")
@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_f1_matches_sklearn(student, average):
    """Q2.2(d) F1 score (macro, weighted, micro, per class) equals sklearn's f1_score"""
    got = student.metrics.f1_score(PREDS, TARGETS, 10, average)
    expected = skm.f1_score(TARGETS.numpy(), PREDS.numpy(), labels=list(range(10)), average=average, zero_division=0)
    if average is None:
        expected = torch.from_numpy(np.asarray(expected, dtype=np.float64))
        check(isinstance(got, torch.Tensor), f"average=None should return a Tensor[10], got {type(got).__name__}")
        got = got.double()
    assert_close(got, expected, call=describe_call("f1_score", PREDS, TARGETS, 10, average=average), rtol=1e-9,
                 atol=1e-12, hint="F1_c = 2 TP / (2 TP + FP + FN), 0 when undefined; macro averages all K classes, "
                                  "weighted uses each class's number of true samples")


@pytest.mark.weight(0.25)
@pytest.mark.number("2.2.7")
def test_misclassified_per_class(student, sandbox_tmp_path, tools):
    """Q2.2(e) misclassified samples per class (first k in order) and their image grid"""
    got = student.metrics.misclassified_per_class(PREDS, TARGETS, 10, 1)
    expected = {0: [1], 1: [], 2: [6], 3: [], 4: [11], 5: [14], 6: [], 7: [17], 8: [], 9: []}
    assert_equal(got, expected, call=describe_call("misclassified_per_class", PREDS, TARGETS, 10, k=1),
                 hint="for every true class c (all K keys), the first k indices i with targets[i] == c != preds[i]")
    got = student.metrics.misclassified_per_class(PREDS, TARGETS, 10, 3)
    check(got.get(2) == [6, 8] and got.get(0) == [1], f"with k=3 class 2 should list [6, 8] and class 0 [1], got {got}")
    images = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    path = sandbox_tmp_path / "misclassified.png"
    student.visualize.plot_misclassified(images, torch.tensor([2, 4, 5, 7]), torch.tensor([0, 5, 3, 6]),
                                         list(tools.classes), str(path))
    tools.assert_png(path, "misclassified grid")


@pytest.mark.weight(1)
@pytest.mark.number("2.5.1")
def test_class_centroids(student):
    """Q2.5 (bonus) class centroids are the mean feature of each class"""
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0], [5.0, 5.0], [7.0, 9.0]])
    labels = torch.tensor([0, 0, 0, 2, 2])
    got = student.metrics.class_centroids(features, labels, 3)
    expected = torch.tensor([[1.0, 1.0], [float("nan"), float("nan")], [6.0, 7.0]])
    assert_close(got, expected, call=describe_call("class_centroids", features, labels, 3), equal_nan=True,
                 hint="row c = mean of the rows of class c; NaN for a class without samples")


@pytest.mark.weight(1.5)
@pytest.mark.number("2.5.2")
def test_centroid_distances(student):
    """Q2.5 (bonus) distances to the true and the predicted class centroids (NaN when correct)"""
    centroids = torch.tensor([[0.0, 0.0], [3.0, 4.0], [-6.0, 8.0]])
    features = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0], [-6.0, 0.0]])
    targets = torch.tensor([0, 1, 0, 2])
    preds = torch.tensor([1, 2, 0, 0])
    got = student.metrics.centroid_distances(features, targets, preds, centroids)
    expected = torch.tensor([[5.0, 0.0], [5.0, 10.0], [2 ** 0.5, float("nan")], [8.0, 6.0]])
    assert_close(got, expected, call=describe_call("centroid_distances", features, targets, preds, centroids),
                 equal_nan=True, rtol=1e-5, atol=1e-6,
                 hint="column 0: distance to the centroid of the TRUE class; column 1: of the predicted class, "
                      "NaN ('NA') for correctly classified samples")

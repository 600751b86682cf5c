"""Questions 2.2(d)-(e), 2.3(c), 2.5: accuracy, F1, confusion matrix, misclassified samples, centroid distances.

``preds`` and ``targets`` are class indices (Tensor[N] int64), not logits. Every
function is vectorized: no Python loop over samples (a loop that builds one
output entry per class is fine).
"""

from __future__ import annotations

import torch
from torch import Tensor

AVERAGES = ("macro", "weighted", "micro", None)


def accuracy(preds: Tensor, targets: Tensor) -> float:
    """Fraction of correct predictions.

    Args:
        preds (Tensor[N] int64): predicted classes.
        targets (Tensor[N] int64): true classes.

    Returns:
        float in [0, 1].

    Raises:
        ValueError: different lengths, or no samples.
    """
    raise NotImplementedError("TODO: accuracy")


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Counts of (true class, predicted class) pairs, as ``sklearn.metrics.confusion_matrix``.

    ``cm[i, j]`` = number of samples of true class ``i`` predicted as ``j``;
    rows are true classes, columns predictions. Use one ``torch.bincount``.

    Args:
        preds (Tensor[N] int64), targets (Tensor[N] int64): class indices.
        num_classes (int): K.

    Returns:
        Tensor[K, K] int64.

    Raises:
        ValueError: different lengths, or a class outside ``[0, K)``.
    """
    raise NotImplementedError("TODO: confusion_matrix")


def f1_per_class(cm: Tensor) -> Tensor:
    """F1 score of each class from a confusion matrix (rows true, columns predicted).

    ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``; 0 when the denominator is 0 (a
    class never present and never predicted), like scikit-learn with
    ``zero_division=0``.

    Args:
        cm (Tensor[K, K]): confusion matrix.

    Returns:
        Tensor[K] float64.
    """
    raise NotImplementedError("TODO: f1_per_class")


def f1_score(preds: Tensor, targets: Tensor, num_classes: int, average: str | None = "macro") -> float | Tensor:
    """F1 score as ``sklearn.metrics.f1_score(targets, preds, labels=range(K), average=..., zero_division=0)``.

    * ``"macro"``: unweighted mean of the K per-class scores (classes absent
      from both ``targets`` and ``preds`` count as 0);
    * ``"weighted"``: mean weighted by each class's support (its number of
      true samples); 0 when there are no samples;
    * ``"micro"``: F1 of the pooled counts (equals accuracy for single-label
      predictions);
    * ``None``: the per-class scores.

    Args:
        preds (Tensor[N] int64), targets (Tensor[N] int64): class indices.
        num_classes (int): K.
        average: one of ``"macro"``, ``"weighted"``, ``"micro"``, ``None``.

    Returns:
        float, or Tensor[K] float64 for ``average=None``.

    Raises:
        ValueError: an unknown ``average`` (the message lists the choices).
    """
    raise NotImplementedError("TODO: f1_score")


def misclassified_per_class(preds: Tensor, targets: Tensor, num_classes: int, k: int = 3) -> dict[int, list[int]]:
    """The first ``k`` misclassified samples of each true class, Q2.2(e).

    Args:
        preds (Tensor[N] int64), targets (Tensor[N] int64): class indices.
        num_classes (int): K.
        k (int): at most this many per class.

    Returns:
        dict with every class ``0..K-1`` as a key: the indices (into the N
        samples, ascending) of the first ``k`` samples of that true class whose
        prediction is wrong; an empty list when there are none.
    """
    raise NotImplementedError("TODO: misclassified_per_class")


def class_centroids(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean feature vector of each class, Q2.5 (bonus).

    Args:
        features (Tensor[N, D]): float features (e.g. ``forward_features`` of the train set).
        labels (Tensor[N] int64): the class of each row.
        num_classes (int): K.

    Returns:
        Tensor[K, D] (dtype of ``features``): row ``c`` is the mean of the rows of
        class ``c``; NaN for a class without samples. Use ``index_add_`` (or a
        one-hot matrix product), not a loop over classes.
    """
    raise NotImplementedError("TODO: class_centroids")


def centroid_distances(features: Tensor, targets: Tensor, preds: Tensor, centroids: Tensor) -> Tensor:
    """Euclidean distances of samples to the centroids of their true and predicted classes, Q2.5 (bonus).

    Args:
        features (Tensor[N, D]): features of the samples (e.g. misclassified test images).
        targets (Tensor[N] int64): their true classes.
        preds (Tensor[N] int64): their predicted classes.
        centroids (Tensor[K, D]): class centroids (``class_centroids`` of the train set).

    Returns:
        Tensor[N, 2]: column 0 is ``||features[n] - centroids[targets[n]]||``;
        column 1 is ``||features[n] - centroids[preds[n]]||`` for a misclassified
        sample and NaN ("NA" in the handout) for a correctly classified one.
    """
    raise NotImplementedError("TODO: centroid_distances")

"""Questions 2.2(d)-(e), 2.3(c), 2.5: accuracy, F1, confusion matrix, misclassified samples, centroid distances.

``preds`` and ``targets`` are class indices (Tensor[N] int64), not logits. Every
function is vectorized: no Python loop over samples (a loop that builds one
output entry per class is fine).
"""

from __future__ import annotations

import torch
from torch import Tensor

AVERAGES = ("macro", "weighted", "micro", None)


# BEGIN SOLUTION NO PROMPT
def _check_pair(preds: Tensor, targets: Tensor, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    preds = torch.as_tensor(preds).reshape(-1).long()
    targets = torch.as_tensor(targets).reshape(-1).long()
    if preds.shape != targets.shape:
        raise ValueError(f"preds and targets must have the same length, got {preds.numel()} and {targets.numel()}")
    if num_classes is not None:
        for name, values in (("preds", preds), ("targets", targets)):
            bad = values[(values < 0) | (values >= num_classes)]
            if bad.numel():
                raise ValueError(f"{name} holds class {int(bad[0])}, outside [0, {num_classes})")
    return preds, targets
# END SOLUTION


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
    # BEGIN SOLUTION
    preds, targets = _check_pair(preds, targets)
    if preds.numel() == 0:
        raise ValueError("accuracy of an empty set of predictions is undefined")
    return float((preds == targets).double().mean())
    # END SOLUTION


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
    # BEGIN SOLUTION
    preds, targets = _check_pair(preds, targets, num_classes)
    return torch.bincount(targets * num_classes + preds, minlength=num_classes ** 2).reshape(num_classes,
                                                                                             num_classes)
    # END SOLUTION


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
    # BEGIN SOLUTION
    cm = cm.double()
    tp = cm.diagonal()
    denominator = cm.sum(0) + cm.sum(1)  # = 2 TP + FP + FN
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.zeros_like(tp))
    # END SOLUTION


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
    # BEGIN SOLUTION
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {list(AVERAGES)}, got {average!r}")
    cm = confusion_matrix(preds, targets, num_classes)
    per_class = f1_per_class(cm)
    if average is None:
        return per_class
    if average == "macro":
        return float(per_class.mean())
    if average == "weighted":
        support = cm.sum(1).double()
        total = support.sum()
        return float((per_class * support).sum() / total) if total > 0 else 0.0
    tp = cm.diagonal().sum().double()
    denominator = 2 * cm.sum().double()  # 2 TP + FP + FN pooled = 2 N for single-label data
    return float(2 * tp / denominator) if denominator > 0 else 0.0
    # END SOLUTION


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
    # BEGIN SOLUTION
    preds, targets = _check_pair(preds, targets, num_classes)
    wrong = torch.nonzero(preds != targets).flatten()
    classes = targets[wrong]
    order = torch.sort(classes, stable=True).indices
    wrong, classes = wrong[order], classes[order]
    sizes = torch.bincount(classes, minlength=num_classes)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(wrong.numel()) - starts[classes]
    keep = rank < k
    wrong, classes = wrong[keep].tolist(), classes[keep].tolist()
    result: dict[int, list[int]] = {c: [] for c in range(num_classes)}
    for index, cls in zip(wrong, classes):
        result[cls].append(index)
    return result
    # END SOLUTION


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
    # BEGIN SOLUTION
    labels = torch.as_tensor(labels).reshape(-1).long()
    if features.shape[0] != labels.numel():
        raise ValueError(f"features has {features.shape[0]} rows but labels has {labels.numel()} entries")
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype).index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    return sums / counts[:, None]  # 0 / 0 = NaN for empty classes
    # END SOLUTION


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
    # BEGIN SOLUTION
    preds, targets = _check_pair(preds, targets, centroids.shape[0])
    to_true = torch.linalg.vector_norm(features - centroids[targets], dim=1)
    to_pred = torch.linalg.vector_norm(features - centroids[preds], dim=1)
    to_pred = torch.where(preds == targets, torch.full_like(to_pred, float("nan")), to_pred)
    return torch.stack([to_true, to_pred], dim=1)
    # END SOLUTION

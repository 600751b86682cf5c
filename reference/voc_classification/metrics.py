"""This project's multi-label metrics (part ``extended`` of voc_classification; not the course's).

The S24 starter's ``utils.compute_ap`` and ``utils.eval_dataset_map`` are
course code marked "do not modify": they call scikit-learn once per class and
apply a softmax and average AP per test batch. The extended profile asks for
these two instead: ``compute_ap`` without a Python loop over classes, exactly
scikit-learn's ``average_precision_score`` per class, and ``eval_dataset_map``
with a sigmoid (the classes are independent) over the whole test set.
"""

from __future__ import annotations

import numpy as np
import torch


def compute_ap(gt, pred, valid, average=None):
    """Average precision of every class of a multi-label problem.

    For class ``c``, keep the rows with ``valid[:, c] > 0``, rank them by
    ``pred[:, c]`` (highest first) and sum, over the distinct score values ``t``,
    ``(R(t) - R(t')) * P(t)``: precision and recall of "score >= t", ``t'`` the
    next higher value (``R = 0`` above the top score). Rows with equal scores
    enter together. This is ``sklearn.metrics.average_precision_score`` of the
    kept rows; write it without a Python loop over classes or rows.

    Args:
        gt (ndarray | Tensor[N, C]): 1 where the class is present, else 0.
        pred (ndarray | Tensor[N, C]): scores (any real values; only their
            order within a class matters).
        valid (ndarray | Tensor[N, C]): 0 where the entry must be ignored
            (``difficult``), else 1.
        average (str | None): None for the per-class values; ``"macro"`` for
            their mean over the classes that have one.

    Returns:
        ndarray[C] (float64) with ``average=None``, else a float. A class with
        no valid positive row has no AP: NaN (scikit-learn says 0.0 with a
        warning; the grader accepts both).

    Raises:
        ValueError: when the three arrays are not 2-D of one shape, or for an
            unknown ``average``.
    """
    # BEGIN SOLUTION
    gt = np.asarray(gt.detach().cpu() if isinstance(gt, torch.Tensor) else gt, dtype=np.float64)
    pred = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred, dtype=np.float64)
    valid = np.asarray(valid.detach().cpu() if isinstance(valid, torch.Tensor) else valid, dtype=np.float64)
    if gt.ndim != 2 or gt.shape != pred.shape or gt.shape != valid.shape:
        raise ValueError(f"gt, pred and valid must be 2-D arrays of one shape, got {gt.shape}, "
                         f"{pred.shape} and {valid.shape}")
    if average not in (None, "macro"):
        raise ValueError(f"average must be None or 'macro', got {average!r}")
    n, num_classes = gt.shape
    if n == 0:
        ap = np.full(num_classes, np.nan)
    else:
        # Class by class along the last axis (sorting the columns of an [N, C] array, axis 0, is
        # several times slower). Rows of equal score enter together, so their order does not matter:
        # an unstable sort is enough.
        order = np.argsort(-np.ascontiguousarray(pred.T), axis=1)
        scores = np.take_along_axis(np.ascontiguousarray(pred.T), order, axis=1)
        # 0: ignored, 1: negative, 2: positive.
        kind = np.where(valid.T > 0, 1 + (gt.T > 0), 0).astype(np.int8)
        kind = np.take_along_axis(kind, order, axis=1)
        positive = kind == 2
        tp = np.cumsum(positive, axis=1, dtype=np.int32)
        seen = np.cumsum(kind > 0, axis=1, dtype=np.int32)
        # Every row takes the precision at the last row of its group of equal scores.
        last = np.ones(scores.shape, dtype=bool)
        last[:, :-1] = scores[:, :-1] != scores[:, 1:]
        group_end = np.minimum.accumulate(np.where(last, np.arange(n, dtype=np.int32), n)[:, ::-1], axis=1)[:, ::-1]
        precision = np.take_along_axis(tp, group_end, axis=1) / np.maximum(
            np.take_along_axis(seen, group_end, axis=1), 1)
        num_pos = tp[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            ap = np.where(num_pos > 0, np.where(positive, precision, 0.0).sum(axis=1) / num_pos, np.nan)
    if average == "macro":
        return float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    return ap
    # END SOLUTION


def eval_dataset_map(model, device, test_loader):
    """AP per class and mAP of ``model`` over a whole test set.

    Runs the model (in whatever mode the caller left it, without tracking
    gradients) on every batch ``(data, target, wgt)`` of ``test_loader``, turns
    the logits into probabilities with a sigmoid (the classes are independent:
    not a softmax), gathers the scores, labels and weights of the whole set and
    calls ``compute_ap`` once (not once per batch).

    Args:
        model (nn.Module): maps Tensor[B, 3, H, W] to logits Tensor[B, C].
        device (torch.device | str): where to run the model.
        test_loader (Iterable): yields ``(data, target, wgt)`` batches.

    Returns:
        tuple: ``(ap, mAP)``: ndarray[C] of per-class AP and their mean over the
        classes that have an AP (a float).
    """
    # BEGIN SOLUTION
    scores, labels, weights = [], [], []
    with torch.no_grad():
        for data, target, wgt in test_loader:
            output = model(data.to(device))
            scores.append(torch.sigmoid(output).cpu())
            labels.append(target.cpu())
            weights.append(wgt.cpu())
    ap = compute_ap(torch.cat(labels), torch.cat(scores), torch.cat(weights))
    mean_ap = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    return ap, mean_ap
    # END SOLUTION

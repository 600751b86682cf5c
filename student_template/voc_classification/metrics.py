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
    raise NotImplementedError("TODO: compute_ap")


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
    raise NotImplementedError("TODO: eval_dataset_map")

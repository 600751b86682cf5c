"""Seed 004 P1, model B: mixup and the soft-target cross-entropy that goes with it.

Mixup trains on convex combinations of pairs of images,
``x = lam * x_i + (1 - lam) * x_j``, with the same combination of their one-hot
labels as a soft target, ``lam ~ Beta(alpha, alpha)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def one_hot(labels: Tensor, num_classes: int) -> Tensor:
    """One-hot rows of class indices.

    Args:
        labels (Tensor[N] int64): class indices in ``[0, num_classes)``.
        num_classes (int): number of columns.

    Returns:
        Tensor[N, num_classes] float32 with a single 1 per row.

    Raises:
        ValueError: a label outside ``[0, num_classes)`` (the message quotes it).
    """
    raise NotImplementedError("TODO: one_hot")


def mixup_batch(images: Tensor, labels: Tensor, num_classes: int, lam: float,
                permutation: Tensor) -> tuple[Tensor, Tensor]:
    """Mix every image with the image at ``permutation`` of the same batch.

    ``mixed[n] = lam * images[n] + (1 - lam) * images[permutation[n]]`` and
    ``targets[n] = lam * one_hot(labels[n]) + (1 - lam) * one_hot(labels[permutation[n]])``.

    Args:
        images (Tensor[N, C, H, W]): float images.
        labels (Tensor[N] int64): class indices.
        num_classes (int): number of classes.
        lam (float): mixing weight of the original image, in [0, 1].
        permutation (Tensor[N] int64): a permutation of ``0..N-1``.

    Returns:
        (Tensor[N, C, H, W], Tensor[N, num_classes]): mixed images (dtype of
        ``images``) and soft targets (float32, each row sums to 1).
    """
    raise NotImplementedError("TODO: mixup_batch")


def sample_mixup(images: Tensor, labels: Tensor, num_classes: int, alpha: float = 0.2,
                 seed: int | None = None) -> tuple[Tensor, Tensor, float, Tensor]:
    """Draw ``lam ~ Beta(alpha, alpha)`` and a random permutation, then ``mixup_batch``.

    Draw both from ``numpy.random.default_rng(seed)``: first
    ``lam = rng.beta(alpha, alpha)``, then ``permutation = rng.permutation(N)``
    (``seed=None``: fresh randomness).

    Args:
        images (Tensor[N, C, H, W]), labels (Tensor[N] int64), num_classes (int): as in ``mixup_batch``.
        alpha (float): Beta parameter, > 0 (small alpha: lam mostly near 0 or 1).
        seed (int | None): seed of the random generator.

    Returns:
        (mixed images, soft targets, lam as a Python float, permutation Tensor[N] int64).

    Raises:
        ValueError: ``alpha <= 0``.
    """
    raise NotImplementedError("TODO: sample_mixup")


def soft_target_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy with probability targets, averaged over the batch.

    ``mean_n( -sum_c targets[n, c] * log_softmax(logits[n])[c] )``: equal to
    ``torch.nn.functional.cross_entropy(logits, targets)`` with probability
    targets, and to the usual cross-entropy for one-hot targets. Compute the
    log-softmax stably (subtract the row maximum, or use ``torch.log_softmax``):
    logits of 1000 must give a finite loss.

    Args:
        logits (Tensor[N, C]): raw scores.
        targets (Tensor[N, C]): rows of probabilities (sum to 1).

    Returns:
        Tensor[] (0-dim): the mean loss, differentiable w.r.t. ``logits``.
    """
    raise NotImplementedError("TODO: soft_target_cross_entropy")

"""Per-pixel losses: cross-entropy with an ignore index, and Poly-1 (Leng et al., 2022).

Poly-1 adds ``epsilon * (1 - p_t)`` to the cross-entropy ``-log p_t`` of every
pixel, where ``p_t`` is the softmax probability of the pixel's true class: the
first term of CE's Taylor series ``sum_j (1 - p_t)^j / j`` gets weight
``1 + epsilon`` instead of 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = 255
REDUCTIONS = ("mean", "sum", "none")


def _check(logits: Tensor, target: Tensor, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.dim() < 2 or logits.shape[0] != target.shape[0] or logits.shape[2:] != target.shape[1:]:
        raise ValueError(f"expected logits [N, C, ...] and target [N, ...] of matching sizes, got "
                         f"{list(logits.shape)} and {list(target.shape)}")


def cross_entropy_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX,
                       reduction: str = "mean") -> Tensor:
    """Per-pixel cross-entropy that skips ignored pixels.

    Equals ``F.cross_entropy(logits, target, ignore_index=ignore_index,
    reduction=reduction)``, except that a mean over no valid pixel (every pixel
    ignored) is 0 instead of NaN (so that one such image cannot spoil training).

    Args:
        logits (Tensor[N, C, H, W], float): class scores.
        target (Tensor[N, H, W], int64): class indices or ``ignore_index``.
        ignore_index (int): label of pixels that add nothing.
        reduction (str): ``"mean"`` over valid pixels, ``"sum"``, or ``"none"``
            (``Tensor[N, H, W]``, 0 at ignored pixels).

    Returns:
        Tensor: the loss (a scalar unless ``reduction="none"``).
    """
    # BEGIN SOLUTION
    _check(logits, target, reduction)
    losses = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    return _reduce(losses, target != ignore_index, reduction)
    # END SOLUTION


# BEGIN SOLUTION NO PROMPT
def _reduce(losses: Tensor, valid: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    total = losses.sum()
    if reduction == "sum":
        return total
    return total / valid.sum().clamp(min=1)
# END SOLUTION


def poly1_loss(logits: Tensor, target: Tensor, epsilon: float = 1.0, ignore_index: int = IGNORE_INDEX,
               reduction: str = "mean") -> Tensor:
    """Poly-1 loss per pixel: ``-log p_t + epsilon * (1 - p_t)``.

    ``p_t = softmax(logits)[target]`` along the class dimension. Ignored pixels
    add nothing and are not counted in the mean; a mean over no valid pixel is 0.
    With ``epsilon=0`` it is ``cross_entropy_loss``. Compute it stably (log-softmax,
    ``p_t = exp(-CE)``), so that it stays finite and its gradient correct for
    logits of any size.

    Args:
        logits (Tensor[N, C, H, W], float): class scores.
        target (Tensor[N, H, W], int64): class indices or ``ignore_index``.
        epsilon (float): weight of the ``(1 - p_t)`` term (the paper's best for
            segmentation is often in [-1, 1]; 1.0 by default).
        ignore_index (int): label of ignored pixels.
        reduction (str): ``"mean"`` over valid pixels, ``"sum"``, or ``"none"``
            (``Tensor[N, H, W]``, 0 at ignored pixels).

    Returns:
        Tensor: the loss (a scalar unless ``reduction="none"``).
    """
    # BEGIN SOLUTION
    _check(logits, target, reduction)
    valid = target != ignore_index
    ce = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    pt = torch.exp(-ce)
    losses = torch.where(valid, ce + epsilon * (1 - pt), torch.zeros_like(ce))
    return _reduce(losses, valid, reduction)
    # END SOLUTION


class Poly1Loss(nn.Module):
    """``poly1_loss`` as a module: ``Poly1Loss(epsilon=1.0)(logits, target)``.

    Args:
        epsilon (float): weight of the ``(1 - p_t)`` term.
        ignore_index (int): label of ignored pixels.
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, epsilon: float = 1.0, ignore_index: int = IGNORE_INDEX, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.epsilon = epsilon
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        # BEGIN SOLUTION
        return poly1_loss(logits, target, self.epsilon, self.ignore_index, self.reduction)
        # END SOLUTION

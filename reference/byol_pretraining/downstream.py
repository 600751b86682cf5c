"""The downstream Office-Home classifier: a backbone, dropout and a linear layer to 65 classes.

The backbone is either fine-tuned with the rest (settings A-C) or frozen
(settings D-E). A frozen backbone is frozen for good: its parameters have
``requires_grad = False`` and never change, and it stays in evaluation mode
even when the classifier is in training mode, so that its BatchNorm running
statistics never move either.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from byol import load_backbone, resnet_backbone
from torch import Tensor, nn


class Classifier(nn.Module):
    """``head(dropout(backbone(x)))``.

    Args:
        backbone (nn.Module): maps ``Tensor[B, 3, H, W]`` to ``Tensor[B, feature_dim]``.
        feature_dim (int): size of the backbone's features.
        num_classes (int): outputs of the linear layer (65 for Office-Home).
        dropout (float): drop probability of the ``nn.Dropout`` before the head.
        freeze_backbone (bool): freeze the backbone (see the module docstring).

    Attributes (part of the interface):
        backbone (nn.Module), dropout (nn.Dropout), head (nn.Linear),
        freeze_backbone (bool).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int = 65, dropout: float = 0.5,
                 freeze_backbone: bool = False):
        super().__init__()
        # BEGIN SOLUTION
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            for parameter in self.backbone.parameters():
                parameter.requires_grad_(False)
            self.backbone.eval()
        # END SOLUTION

    def train(self, mode: bool = True) -> Classifier:
        """Set the training mode of every submodule, except that a frozen backbone stays in eval mode.

        Returns:
            Classifier: ``self``.
        """
        # Hint: nn.Module.train(mode) sets every submodule's mode; undo it for a frozen backbone.
        # BEGIN SOLUTION
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self
        # END SOLUTION

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``Tensor[B, num_classes]`` of ``images`` ``Tensor[B, 3, H, W]``."""
        # BEGIN SOLUTION
        if self.freeze_backbone:
            with torch.no_grad():
                features = self.backbone(images)
        else:
            features = self.backbone(images)
        return self.head(self.dropout(features))
        # END SOLUTION


def build_classifier(arch: str = "resnet50", checkpoint: str | Path | None = None, num_classes: int = 65,
                     dropout: float = 0.5, freeze_backbone: bool = False) -> Classifier:
    """A ``Classifier`` on ``resnet_backbone(arch)``, loading ``checkpoint`` (``load_backbone``) if given."""
    backbone, feature_dim = resnet_backbone(arch)
    if checkpoint is not None:
        load_backbone(backbone, checkpoint)
    return Classifier(backbone, feature_dim, num_classes, dropout, freeze_backbone)


def build_optimizer(model: nn.Module, lr: float = 5e-4, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam (the seed's choice, lr 5e-4) over the parameters that require a gradient, and only those.

    Returns:
        torch.optim.Adam: one parameter group; a frozen backbone is not in it.
    """
    # BEGIN SOLUTION
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    # END SOLUTION


def train_one_epoch(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], optimizer: torch.optim.Optimizer,
                    device: str | torch.device = "cpu") -> float:
    """One pass over ``loader`` with cross-entropy, in training mode (``model.train()``).

    Args:
        model: the classifier (moved to ``device`` by the caller).
        loader: yields ``(images Tensor[B, 3, H, W], labels Tensor[B] int64)``.
        optimizer: steps once per batch, after ``zero_grad`` and ``backward``.
        device: where the batches go.

    Returns:
        float: the mean of the batch losses (0.0 for an empty loader).
    """
    # BEGIN SOLUTION
    model.train()
    total, batches = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        batches += 1
    return total / batches if batches else 0.0
    # END SOLUTION


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], device: str | torch.device = "cpu") -> float:
    """Accuracy of ``model`` on ``loader``, in evaluation mode (``model.eval()``).

    Returns:
        float: correct / total over every image (argmax of the logits; 0.0 when empty).
    """
    # BEGIN SOLUTION
    model.eval()
    correct, total = 0, 0
    for images, labels in loader:
        labels = labels.to(device)
        correct += int((model(images.to(device)).argmax(dim=1) == labels).sum())
        total += labels.numel()
    return correct / total if total else 0.0
    # END SOLUTION

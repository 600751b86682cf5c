"""Questions 2.2-2.4 and seed 004 P1: the specified CNN, a fine-tuned ResNet-18 and VGG13.

Every model has the same interface:

* ``forward(x)``: ``Tensor[N, C, H, W]`` -> logits ``Tensor[N, num_classes]``;
* ``forward_features(x)``: the backbone's feature vector of each image,
  ``Tensor[N, D]`` (what the classification head sees), used for t-SNE, PCA
  and class centroids.

No pretrained weights are downloaded: ``weights=None`` everywhere, and
pretrained weights come from a local checkpoint file when one is given.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn


class WildlifeCNN(nn.Module):
    """The CNN of Q2.2(a), trained from scratch.

    ``features`` (an ``nn.Sequential``), in this order:
    Conv2d(in_channels, 32, 3, stride=1, padding=1) -> ReLU -> MaxPool2d(4, 4)
    -> Conv2d(32, 64, 3, 1, 1) -> ReLU -> MaxPool2d(2, 2)
    -> Conv2d(64, 128, 3, 1, 1) -> ReLU -> MaxPool2d(2, 2).
    The maps shrink by 16 in each direction: a ``input_size x input_size``
    image gives ``128 x (input_size // 16) x (input_size // 16)``.

    ``classifier`` (the head): ``nn.Linear(128 * (input_size // 16) ** 2, num_classes)``
    on the flattened maps.

    Args:
        num_classes (int): number of classes.
        in_channels (int): image channels (3 for RGB, 1 for grey).
        input_size (int): side of the (square) input images, at least 16.

    Raises:
        ValueError: ``input_size < 16`` (the message quotes it).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 224):
        super().__init__()
        raise NotImplementedError("TODO: WildlifeCNN.__init__")

    def forward_features(self, x: Tensor) -> Tensor:
        """Flattened output of ``features``: Tensor[N, 128 * (input_size // 16) ** 2]."""
        raise NotImplementedError("TODO: WildlifeCNN.forward_features")

    def forward(self, x: Tensor) -> Tensor:
        """Logits Tensor[N, num_classes] of images Tensor[N, in_channels, input_size, input_size]."""
        raise NotImplementedError("TODO: WildlifeCNN.forward")


class ResNet18Classifier(nn.Module):
    """ResNet-18 with a new ``num_classes``-way head, for fine-tuning, Q2.3(a).

    ``backbone`` is ``torchvision.models.resnet18(weights=None)`` whose ``fc`` is
    replaced by ``nn.Identity()`` (so it returns the 512-d pooled features);
    ``fc`` is a new ``nn.Linear(512, num_classes)``.

    With ``weights_path``, the backbone loads a torchvision ResNet-18 checkpoint
    (a state dict as saved by ``torch.save(model.state_dict(), path)``, e.g.
    the ImageNet file ``resnet18-f37072fd.pth``): every key except the old
    ``fc.weight`` / ``fc.bias`` must be present and is loaded; the new ``fc``
    keeps its fresh initialisation. Nothing is ever downloaded.

    With ``freeze_backbone``, the backbone's parameters get
    ``requires_grad = False`` (only ``fc`` trains).

    Args:
        num_classes (int): number of classes.
        weights_path (str | None): local checkpoint of a torchvision ResNet-18.
        freeze_backbone (bool): train only the new head.

    Raises:
        FileNotFoundError: ``weights_path`` does not exist (message quotes it).
        RuntimeError: the checkpoint lacks backbone keys or has mismatched shapes.
    """

    def __init__(self, num_classes: int = 10, weights_path: str | os.PathLike | None = None,
                 freeze_backbone: bool = False):
        super().__init__()
        raise NotImplementedError("TODO: ResNet18Classifier.__init__")

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled backbone features Tensor[N, 512]."""
        raise NotImplementedError("TODO: ResNet18Classifier.forward_features")

    def forward(self, x: Tensor) -> Tensor:
        """Logits Tensor[N, num_classes]."""
        raise NotImplementedError("TODO: ResNet18Classifier.forward")


VGG13_CHANNELS = (64, 128, 256, 512, 512)


class VGG13(nn.Module):
    """VGG13 from scratch (seed 004 P1, model A).

    ``features`` (an ``nn.Sequential``): five blocks, with ``c`` = 64, 128, 256,
    512, 512; each block is Conv2d(3x3, padding 1) -> [BatchNorm2d] -> ReLU ->
    Conv2d(3x3, padding 1) -> [BatchNorm2d] -> ReLU -> MaxPool2d(2, 2). The
    BatchNorm layers exist only with ``batch_norm=True``. These are exactly the
    layers of ``torchvision.models.vgg13(weights=None).features`` (``vgg13_bn``
    with batch norm), in the same order.

    ``classifier`` (an ``nn.Sequential``, three fully connected layers):
    Linear(512 * (input_size // 32) ** 2, hidden_dim) -> ReLU -> Dropout(dropout)
    -> Linear(hidden_dim, hidden_dim) -> ReLU -> Dropout(dropout)
    -> Linear(hidden_dim, num_classes). There is no adaptive pooling: the
    flattened ``features`` output goes straight into the first Linear.

    Args:
        num_classes (int): number of classes.
        in_channels (int): image channels.
        input_size (int): side of the square input images, at least 32.
        hidden_dim (int): width of the two hidden fully connected layers.
        dropout (float): dropout probability.
        batch_norm (bool): add BatchNorm2d after every convolution.

    Raises:
        ValueError: ``input_size < 32``.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 224,
                 hidden_dim: int = 4096, dropout: float = 0.5, batch_norm: bool = False):
        super().__init__()
        raise NotImplementedError("TODO: VGG13.__init__")

    def forward_features(self, x: Tensor) -> Tensor:
        """Flattened output of ``features`` (the last conv block): Tensor[N, 512 * (input_size // 32) ** 2]."""
        raise NotImplementedError("TODO: VGG13.forward_features")

    def forward(self, x: Tensor) -> Tensor:
        """Logits Tensor[N, num_classes]."""
        raise NotImplementedError("TODO: VGG13.forward")


def build_model(name: str, num_classes: int = 10, input_size: int = 224, in_channels: int = 3,
                weights_path: str | None = None) -> nn.Module:
    """The model called ``name``: ``"cnn"`` (WildlifeCNN), ``"resnet18"`` or ``"vgg13"`` (VGG13 with batch norm, hidden 512).

    Raises:
        ValueError: an unknown name (the message lists the known ones).

    Given (not graded): used by ``train.py``'s report driver.
    """
    if name == "cnn":
        return WildlifeCNN(num_classes, in_channels, input_size)
    if name == "resnet18":
        return ResNet18Classifier(num_classes, weights_path)
    if name == "vgg13":
        return VGG13(num_classes, in_channels, input_size, hidden_dim=512, dropout=0.2, batch_norm=True)
    raise ValueError(f"unknown model {name!r}; expected 'cnn', 'resnet18' or 'vgg13'")

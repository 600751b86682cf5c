"""Segmentation models: FCN32s on a VGG16 trunk (model A) and torchvision's DeepLabv3-ResNet50 (model B).

Nothing is downloaded: models start from random weights or from a local
checkpoint file.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.segmentation import deeplabv3_resnet50

# VGG16's convolution widths ("M" = 2x2 max pooling), as torchvision.models.vgg16().features.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _load_state(path: str | Path) -> dict:
    """A state dict from a checkpoint file (plain, or under "model" / "state_dict"), without "module."."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """Weights of a ``ConvTranspose2d(channels, channels, kernel_size)`` that upsample bilinearly.

    Channel ``c`` is upsampled from channel ``c`` only (as in the FCN paper's
    initialisation).

    Returns:
        Tensor[channels, channels, k, k] (float32).
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    steps = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - (steps - center).abs() / factor
    kernel = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = kernel
    return weight


class FCN32s(nn.Module):
    """FCN32s: a VGG16 trunk, conv6/conv7 as convolutions, and x32 transposed-convolution upsampling.

    Layers (``w`` = ``width``, channel counts rounded down, at least 1):

    * ``self.features``: VGG16's 13 3x3 convolutions (padding 1, ReLU) and 5 2x2
      max-poolings, laid out exactly as ``torchvision.models.vgg16().features``
      (so that at ``width=1`` its state dict loads there and back);
    * ``self.head``: conv6 = ``Conv2d(512w, 4096w, 7, padding=3)``, ReLU, Dropout,
      conv7 = ``Conv2d(4096w, 4096w, 1)``, ReLU, Dropout, score =
      ``Conv2d(4096w, num_classes, 1)``;
    * ``self.upsample``: ``ConvTranspose2d(num_classes, num_classes, 64, stride=32,
      padding=16, bias=False)``, set to bilinear upsampling and, as in the FCN paper,
      not trained (``requires_grad=False``; a learned one is accepted too).

    Initialise the convolutions with Kaiming normal (``mode="fan_in"``, ReLU gain,
    zero biases) and the score layer's weights to zero: with
    PyTorch's default initialisation a 13-layer VGG without batch norm hardly
    trains from scratch.

    ``forward`` returns logits of the input's size for any size: an input whose
    sides are not multiples of 32 is zero-padded at the bottom and right up to
    the next multiple, and the output cropped back.

    Args:
        num_classes (int): output channels (7 for the satellite set).
        width (float): multiplier of every channel count (1.0 = VGG16; smaller for
            quick tests).
        backbone_weights (str | Path | None): a VGG16 checkpoint file (torchvision's
            key names, ``features.*`` and optionally ``classifier.*``); needs
            ``width=1``. ``features`` are loaded as they are; fc6/fc7
            (``classifier.0``, ``classifier.3``) are reshaped into conv6/conv7.
        dropout (float): dropout probability after conv6 and conv7.
        batch_norm (bool): optional, not graded: a BatchNorm2d after each trunk
            convolution, laid out as ``torchvision.models.vgg16_bn().features``
            (a plain VGG16 trunk trains very slowly from scratch; see the README).
    """

    def __init__(self, num_classes: int = 7, width: float = 1.0, backbone_weights: str | Path | None = None,
                 dropout: float = 0.5, batch_norm: bool = False):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        # BEGIN SOLUTION
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = max(1, int(item * width))
                layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                channels = out
        self.features = nn.Sequential(*layers)
        fc = max(1, int(4096 * width))
        self.head = nn.Sequential(
            nn.Conv2d(channels, fc, kernel_size=7, padding=3), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(fc, fc, kernel_size=1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(fc, num_classes, kernel_size=1),
        )
        self.upsample = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=64, stride=32, padding=16,
                                           bias=False)
        for module in self.modules():  # torchvision's VGG initialisation (trainable from scratch)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head[-1].weight)  # the score layer starts at zero, as in the FCN paper
        with torch.no_grad():
            self.upsample.weight.copy_(bilinear_kernel(num_classes, 64))
        self.upsample.weight.requires_grad_(False)  # the paper keeps FCN32s' final upsampling bilinear
        if backbone_weights is not None:
            if width != 1:
                raise ValueError(f"VGG16 weights need width=1, got width={width}")
            self._load_vgg16(backbone_weights)
        # END SOLUTION

    # BEGIN SOLUTION NO PROMPT
    def _load_vgg16(self, path: str | Path) -> None:
        state = _load_state(path)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        if not features:
            raise ValueError(f"{path}: no 'features.*' keys; is it a torchvision VGG16 checkpoint?")
        self.features.load_state_dict(features)
        conv6, conv7 = self.head[0], self.head[3]
        with torch.no_grad():
            if "classifier.0.weight" in state:
                conv6.weight.copy_(state["classifier.0.weight"].reshape(conv6.weight.shape))
                conv6.bias.copy_(state["classifier.0.bias"])
            if "classifier.3.weight" in state:
                conv7.weight.copy_(state["classifier.3.weight"].reshape(conv7.weight.shape))
                conv7.bias.copy_(state["classifier.3.bias"])
    # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """Per-pixel class scores.

        Args:
            x (Tensor[N, 3, H, W], float32): normalised images, any ``H, W >= 1``.

        Returns:
            Tensor[N, num_classes, H, W] (float32): logits.
        """
        # BEGIN SOLUTION
        height, width = x.shape[-2:]
        pad_h, pad_w = (-height) % 32, (-width) % 32
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        scores = self.upsample(self.head(self.features(x)))
        return scores[..., :height, :width]
        # END SOLUTION


def deeplabv3(num_classes: int = 7, checkpoint: str | Path | None = None, aux_loss: bool = False) -> nn.Module:
    """DeepLabv3-ResNet50 from torchvision, random or from a local checkpoint (never downloaded).

    The model is ``torchvision.models.segmentation.deeplabv3_resnet50(weights=None,
    weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)``; its
    forward returns a dict whose ``"out"`` is ``Tensor[N, num_classes, H, W]``
    (see ``segmentation_logits``).

    Args:
        num_classes (int): output classes.
        checkpoint (str | Path | None): a file saved with ``torch.save`` holding a
            state dict of such a model (plain, or under ``"model"`` or
            ``"state_dict"``, with or without DataParallel's ``"module."``
            prefix). Load it with ``weights_only=True``. The final 1x1 convolutions
            of the heads (``classifier.4``, ``aux_classifier.4``) are skipped when
            their shapes differ (a checkpoint trained for another number of
            classes); auxiliary-head weights are dropped when ``aux_loss`` is False.
        aux_loss (bool): build the auxiliary FCN head.

    Returns:
        nn.Module: the model.

    Raises:
        RuntimeError: for any other missing or mismatched weight.
    """
    # BEGIN SOLUTION
    model = deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux_loss)
    if checkpoint is not None:
        state = _load_state(checkpoint)
        if not aux_loss:
            state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
        own = model.state_dict()
        skipped = {k for k, v in state.items()
                   if k.startswith(("classifier.4.", "aux_classifier.4.")) and k in own and own[k].shape != v.shape}
        state = {k: v for k, v in state.items() if k not in skipped}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k not in skipped]
        if missing or unexpected:
            raise RuntimeError(f"{checkpoint}: missing weights {missing[:5]}, unexpected weights {unexpected[:5]}")
    return model
    # END SOLUTION


def segmentation_logits(model: nn.Module, images: Tensor) -> Tensor:
    """Run a segmentation model and return its logits, whatever its output type.

    Args:
        model: an ``FCN32s`` (returns a tensor) or a torchvision segmentation model
            (returns a dict with ``"out"``).
        images (Tensor[N, 3, H, W]): normalised images.

    Returns:
        Tensor[N, C, H, W]: the logits.
    """
    output = model(images)
    if isinstance(output, dict):
        output = output["out"]
    return output


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fcn32s_num_parameters(num_classes: int, width: float = 1.0) -> int:
    """Parameters of ``FCN32s(num_classes, width)``, from the layer list (for checks)."""
    total, channels = 0, 3
    for item in VGG16_CFG:
        if item != "M":
            out = max(1, int(item * width))
            total += channels * out * 9 + out
            channels = out
    fc = max(1, int(4096 * width))
    total += channels * fc * 49 + fc + fc * fc + fc + fc * num_classes + num_classes
    return total + num_classes * num_classes * 64 * 64


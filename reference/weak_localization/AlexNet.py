"""Fully convolutional AlexNet localizers (16-824 Fall 2022 ``AlexNet.py``, after Oquab et al. 2015).

``LocalizerAlexNet`` keeps AlexNet's convolutional trunk up to conv5 (with its ReLU,
without the last max-pool) and replaces the fully connected layers by convolutions,
so that it outputs one score map per class::

    features:   conv 11x11/4 (64, pad 2) ReLU maxpool 3/2  conv 5x5 (192, pad 2) ReLU maxpool 3/2
                conv 3x3 (384, pad 1) ReLU  conv 3x3 (256, pad 1) ReLU  conv 3x3 (256, pad 1) ReLU
    classifier: conv 3x3 (256, no pad) ReLU  conv 1x1 (256) ReLU  conv 1x1 (num_classes)

A 512 x 512 image (the handout's size) gives 29 x 29 maps; 224 x 224 gives 11 x 11.
The layer indices match ``torchvision.models.alexnet().features`` so that ImageNet
weights load by name. Nothing is downloaded: weights come from a local file.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

DEFAULT_ALEXNET_WEIGHTS = "pretrained_alexnet.pth"
"""Where ``pretrained=True`` looks first for AlexNet's ImageNet weights (a state dict in the current folder)."""
ALEXNET_CHECKPOINTS = ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth")
"""File names under which torchvision (current and old URL) caches AlexNet's weights in
``torch.hub.get_dir()/checkpoints``; ``pretrained=True`` looks there next."""


class LocalizerAlexNet(nn.Module):
    """AlexNet conv1-conv5 followed by a convolutional classifier; outputs class score maps.

    Args:
        num_classes (int): number of output maps.

    Attributes:
        features (nn.Sequential): the 12 layers of ``torchvision.models.alexnet().features[:12]``
            (conv1 .. conv5 with their ReLUs and the first two max-pools), same indices.
        classifier (nn.Sequential): conv 3x3 (256 -> 256, no padding), ReLU, conv 1x1
            (256 -> 256), ReLU, conv 1x1 (256 -> num_classes).

    ``forward(x)``: x (Tensor[B, 3, H, W]) -> score maps (Tensor[B, num_classes, h, w]),
    raw scores (no sigmoid, no pooling); h = w = 29 for H = W = 512.
    """

    def __init__(self, num_classes: int = 20):
        super().__init__()
        # BEGIN SOLUTION
        self.features = _alexnet_features()
        self.classifier = nn.Sequential(
            nn.Conv2d(256, 256, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, num_classes, kernel_size=1),
        )
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        return self.classifier(self.features(x))
        # END SOLUTION


class LocalizerAlexNetRobust(nn.Module):
    """``LocalizerAlexNet`` with dropout in the classifier, so that the max-pooled score does not rest on one location.

    During training, dropout (p = 0.5) on the classifier's hidden activations makes the
    score at every location noisy, so the global max lands on different parts of the
    object from one step to the next and the whole object learns to score high. In
    ``eval()`` mode the model is deterministic and has the outputs of a
    ``LocalizerAlexNet`` with the same weights.

    Args:
        num_classes (int): number of output maps.

    Attributes:
        features (nn.Sequential): as in ``LocalizerAlexNet``.
        classifier (nn.Sequential): conv 3x3 (256 -> 256, no padding), ReLU, Dropout,
            conv 1x1 (256 -> 256), ReLU, Dropout, conv 1x1 (256 -> num_classes).

    ``forward(x)``: x (Tensor[B, 3, H, W]) -> score maps (Tensor[B, num_classes, h, w]),
    the same size as ``LocalizerAlexNet``'s.
    """

    def __init__(self, num_classes: int = 20, dropout: float = 0.5):
        super().__init__()
        # BEGIN SOLUTION
        self.features = _alexnet_features()
        self.classifier = nn.Sequential(
            nn.Conv2d(256, 256, kernel_size=3),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Conv2d(256, 256, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Conv2d(256, num_classes, kernel_size=1),
        )
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION
        return self.classifier(self.features(x))
        # END SOLUTION


# BEGIN SOLUTION NO PROMPT
def _alexnet_features() -> nn.Sequential:
    """AlexNet's conv1 .. conv5 (with ReLUs and the first two max-pools), torchvision's layer indices."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
    )
# END SOLUTION


def find_alexnet_weights() -> Path:
    """The local file of AlexNet's ImageNet weights: ``DEFAULT_ALEXNET_WEIGHTS``, else torch's cache.

    Raises:
        FileNotFoundError: when none exists (nothing is downloaded); the message lists the places.
    """
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    candidates = [Path(DEFAULT_ALEXNET_WEIGHTS)] + [checkpoints / name for name in ALEXNET_CHECKPOINTS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("no AlexNet weights found at " + ", ".join(repr(str(c)) for c in candidates)
                            + " (this code never downloads; put torchvision's alexnet state dict there)")


def load_alexnet_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict of AlexNet (or of any model whose trunk is named ``features.*``) from a local file.

    Reads ``torch.save`` files safely (``weights_only=True``); a ``.pkl`` file (as the
    handout's ``task_2.py`` writes with ``pickle.dump``) is unpickled, so only load files
    you trust. A checkpoint dict with a ``state_dict`` entry is unwrapped.

    Raises:
        FileNotFoundError: when the file does not exist (nothing is downloaded).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no AlexNet weights at {str(path)!r}; save torchvision's alexnet state dict "
                                "there (this code never downloads)")
    if path.suffix == ".pkl":
        with open(path, "rb") as handle:
            state = pickle.load(handle)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    # Models wrapped in DataParallel save "features.module.0.weight"; undo that.
    return {key.replace("features.module.", "features."): value for key, value in state.items()}


# BEGIN SOLUTION NO PROMPT
def _init_weights(model: nn.Module, pretrained: Any) -> nn.Module:
    """Xavier-initialise every conv (zero bias); then copy ``features.*`` from AlexNet weights if asked."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    if pretrained is not False and pretrained is not None:
        path = find_alexnet_weights() if pretrained is True else pretrained
        state = load_alexnet_state_dict(path)
        features = {key[len("features."):]: value for key, value in state.items() if key.startswith("features.")}
        own = model.features.state_dict()
        missing = sorted(set(own) - set(features))
        if missing:
            raise ValueError(f"the weights in {str(path)!r} have no features.{missing[0]} (AlexNet conv1-conv5 expected)")
        model.features.load_state_dict({key: features[key] for key in own})
    return model
# END SOLUTION


def localizer_alexnet(pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> LocalizerAlexNet:
    r"""A ``LocalizerAlexNet``, initialised.

    Every convolution of the classifier is Xavier-initialised (``xavier_uniform_`` or
    ``xavier_normal_``: weights with standard deviation ``sqrt(2 / (fan_in + fan_out))``),
    biases zero. The ``features`` get AlexNet's ImageNet weights when ``pretrained`` asks
    for them, else they are Xavier-initialised too.

    Args:
        pretrained: ``False`` (no pretrained weights), ``True`` (AlexNet's ImageNet weights
            from a local file: ``pretrained_alexnet.pth`` in the current folder, else torch's
            cache ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` or
            ``alexnet-owt-4df8aa71.pth``, where ``torchvision`` and ``model_zoo.load_url`` keep
            them), or the path of a file holding AlexNet's state dict (torchvision's names,
            ``features.0.weight`` ...). Only the ``features.*`` entries are used. Nothing is
            ever downloaded.
        **kwargs: passed to ``LocalizerAlexNet`` (``num_classes``).

    Raises:
        FileNotFoundError: when the weights file does not exist.
    """
    model = LocalizerAlexNet(**kwargs)
    # BEGIN SOLUTION
    _init_weights(model, pretrained)
    # END SOLUTION
    return model


def localizer_alexnet_robust(pretrained: bool | str | os.PathLike = False, **kwargs: Any) -> LocalizerAlexNetRobust:
    r"""A ``LocalizerAlexNetRobust``, initialised exactly as ``localizer_alexnet`` does.

    Args:
        pretrained: ``False``, ``True`` or a path, as for ``localizer_alexnet``.
        **kwargs: passed to ``LocalizerAlexNetRobust``.
    """
    model = LocalizerAlexNetRobust(**kwargs)
    # BEGIN SOLUTION
    _init_weights(model, pretrained)
    # END SOLUTION
    return model

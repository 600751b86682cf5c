"""CaffeNet (the 2020 edition's task 2) and loading weights whose names do not match (task 4).

CaffeNet is AlexNet as trained in Caffe: five convolutions, three max-pools and
three fully connected layers, here without local response normalisation and
without grouped convolutions.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from simple_cnn import get_fc

# Checkpoint-name prefixes of torchvision's AlexNet and the CaffeNet layers they
# correspond to (for ``load_pretrained_weights``). Only the tensors whose shapes
# agree (fc1, fc2 and the conv3 and conv5 biases) can actually be copied:
# AlexNet's convolutions are narrower than CaffeNet's.
ALEXNET_TO_CAFFENET = {
    "features.0.": "conv1.",
    "features.3.": "conv2.",
    "features.6.": "conv3.",
    "features.8.": "conv4.",
    "features.10.": "conv5.",
    "classifier.1.": "fc1.0.",
    "classifier.4.": "fc2.0.",
    "classifier.6.": "fc3.0.",
}


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class CaffeNet(nn.Module):
    """CaffeNet for multi-label classification.

    Layers (ReLU after every convolution and after fc1 and fc2)::

        conv1 11x11, stride 4, 96, no padding ("valid") -> max-pool 3, stride 2
        conv2 5x5, 256, padding 2 ("same")             -> max-pool 3, stride 2
        conv3 3x3, 384, padding 1
        conv4 3x3, 384, padding 1
        conv5 3x3, 256, padding 1                      -> max-pool 3, stride 2
        flatten -> fc1 (flat_dim -> 4096) -> dropout 0.5
                -> fc2 (4096 -> 4096)     -> dropout 0.5
                -> fc3 (4096 -> num_classes), no non-linearity

    Args:
        num_classes (int): outputs.
        inp_size (int): side of the square input images (227 in the handout).
        c_dim (int): input channels.

    Attributes:
        conv1 ... conv5 (nn.Conv2d), fc1, fc2, fc3 (nn.Sequential from ``get_fc``).
        flat_dim (int): features entering fc1; ``256 * 6 * 6 = 9216`` for 227 x 227
            inputs. In general each layer maps a side ``s`` to
            ``(s + 2 * padding - kernel) // stride + 1``.
    """

    def __init__(self, num_classes=20, inp_size=227, c_dim=3):
        super().__init__()
        self.num_classes = num_classes
        # BEGIN SOLUTION
        self.conv1 = nn.Conv2d(c_dim, 96, 11, stride=4, padding=0)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1)
        self.nonlinear = nn.ReLU()
        self.pool1 = nn.MaxPool2d(3, 2)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.pool3 = nn.MaxPool2d(3, 2)
        side = _conv_out(inp_size, 11, stride=4)
        side = _conv_out(side, 3, stride=2)
        side = _conv_out(side, 3, stride=2)
        side = _conv_out(side, 3, stride=2)
        if side < 1:
            raise ValueError(f"inp_size {inp_size!r} is too small for CaffeNet (at least 67 pixels)")
        self.flat_dim = 256 * side * side
        self.fc1 = nn.Sequential(*get_fc(self.flat_dim, 4096, "relu"))
        self.dropout1 = nn.Dropout(0.5)
        self.fc2 = nn.Sequential(*get_fc(4096, 4096, "relu"))
        self.dropout2 = nn.Dropout(0.5)
        self.fc3 = nn.Sequential(*get_fc(4096, num_classes, "none"))
        # END SOLUTION

    def features(self, x):
        """The pool5 features of ``x`` (Tensor[N, c_dim, H, W]) as Tensor[N, 256, s, s]."""
        # BEGIN SOLUTION
        x = self.pool1(self.nonlinear(self.conv1(x)))
        x = self.pool2(self.nonlinear(self.conv2(x)))
        x = self.nonlinear(self.conv3(x))
        x = self.nonlinear(self.conv4(x))
        return self.pool3(self.nonlinear(self.conv5(x)))
        # END SOLUTION

    def forward(self, x):
        """Class scores.

        Args:
            x (Tensor[N, c_dim, inp_size, inp_size]): images.

        Returns:
            Tensor[N, num_classes]: logits. Dropout is active in training mode
            only (``model.train()`` / ``model.eval()``).
        """
        # BEGIN SOLUTION
        flat_x = self.features(x).reshape(x.size(0), self.flat_dim)
        out = self.dropout1(self.fc1(flat_x))
        out = self.dropout2(self.fc2(out))
        return self.fc3(out)
        # END SOLUTION


def rename_key(key: str, name_map: dict | None) -> str:
    """``key`` with its longest prefix found in ``name_map`` replaced (unchanged when none matches)."""
    # BEGIN SOLUTION
    if not name_map:
        return key
    matches = [prefix for prefix in name_map if key.startswith(prefix)]
    if not matches:
        return key
    prefix = max(matches, key=len)
    return name_map[prefix] + key[len(prefix):]
    # END SOLUTION


def load_pretrained_weights(model, state_dict, name_map=None):
    """Copy the tensors of a checkpoint whose names do not match the model's.

    Every checkpoint key is first renamed with ``rename_key(key, name_map)``
    (e.g. ``{"module.": ""}`` drops DataParallel's prefix,
    ``ALEXNET_TO_CAFFENET`` maps torchvision AlexNet names onto CaffeNet's).
    A renamed key that names a parameter or buffer of ``model`` with the same
    shape is copied into it in place (without tracking gradients); the rest of
    the model is left as it was.

    Args:
        model (nn.Module): the model to fill.
        state_dict (dict[str, Tensor]): the checkpoint's tensors.
        name_map (dict[str, str] | None): checkpoint prefix -> model prefix.

    Returns:
        dict[str, list[str]]: sorted lists of names:

        * ``"loaded"``: model keys that received a tensor;
        * ``"missing"``: model keys that did not;
        * ``"unexpected"``: renamed checkpoint keys that are not model keys;
        * ``"mismatched"``: renamed checkpoint keys that are model keys of
          another shape (not copied).

    Raises:
        ValueError: when two checkpoint keys are renamed onto the same model key
            (the message names both).
    """
    # BEGIN SOLUTION
    target = model.state_dict()
    renamed: dict[str, str] = {}
    for key in state_dict:
        new = rename_key(key, name_map)
        if new in renamed:
            raise ValueError(f"checkpoint keys {renamed[new]!r} and {key!r} are both renamed to {new!r}")
        renamed[new] = key
    loaded, unexpected, mismatched = [], [], []
    with torch.no_grad():
        for new, old in renamed.items():
            if new not in target:
                unexpected.append(new)
            elif tuple(target[new].shape) != tuple(state_dict[old].shape):
                mismatched.append(new)
            else:
                target[new].copy_(state_dict[old])
                loaded.append(new)
    done = set(loaded)
    return {
        "loaded": sorted(loaded),
        "missing": sorted(k for k in target if k not in done),
        "unexpected": sorted(unexpected),
        "mismatched": sorted(mismatched),
    }
    # END SOLUTION

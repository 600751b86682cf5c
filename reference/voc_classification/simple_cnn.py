"""A small CNN: the MNIST warm-up network, reused for VOC.

Mirrors ``q1_q2_classification/simple_cnn.py`` of CMU 16-824 (Spring 2024).
"""

from __future__ import annotations

import torch.nn as nn


def get_fc(inp_dim, out_dim, non_linear="relu"):
    """A fully connected layer and its non-linearity, as a list of modules.

    Args:
        inp_dim (int): input features.
        out_dim (int): output features.
        non_linear (str): ``"relu"`` (an ``nn.ReLU`` follows the linear layer),
            ``"softmax"`` (an ``nn.Softmax(dim=1)`` follows) or ``"none"``
            (the linear layer alone).

    Returns:
        list[nn.Module]: ``[nn.Linear(inp_dim, out_dim)]`` followed by the
        non-linearity's module, if any.

    Raises:
        ValueError: for any other ``non_linear``; the message quotes it.
    """
    # BEGIN SOLUTION
    layers = [nn.Linear(inp_dim, out_dim)]
    if non_linear == "relu":
        layers.append(nn.ReLU())
    elif non_linear == "softmax":
        layers.append(nn.Softmax(dim=1))
    elif non_linear != "none":
        raise ValueError(f"non_linear must be 'relu', 'softmax' or 'none', got {non_linear!r}")
    return layers
    # END SOLUTION


class SimpleCNN(nn.Module):
    """conv 5x5 (32, pad 2) -> ReLU -> avgpool 2 -> conv 5x5 (64, pad 2) -> ReLU -> avgpool 2 -> fc 128 -> ReLU -> fc.

    Args:
        num_classes (int): outputs (10 for MNIST, 20 for VOC).
        inp_size (int): side of the square input images.
        c_dim (int): input channels (1 for MNIST, 3 for VOC).

    Attributes:
        flat_dim (int): features entering ``fc1``: ``64 * (inp_size // 4) ** 2``
            (each average pooling halves the side, rounding down). For MNIST
            (28 x 28, one channel, 10 classes) it is 3136 and the network has
            454,922 parameters.
    """

    def __init__(self, num_classes=10, inp_size=28, c_dim=1):
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(c_dim, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.nonlinear = nn.ReLU()
        self.pool1 = nn.AvgPool2d(2, 2)
        self.pool2 = nn.AvgPool2d(2, 2)

        # TODO: the number of features after the second pooling, and the two fc layers
        # (fc1: flat_dim -> 128 with ReLU, fc2: 128 -> num_classes without non-linearity; use get_fc).
        # BEGIN SOLUTION
        self.flat_dim = 64 * (inp_size // 4) ** 2
        self.fc1 = nn.Sequential(*get_fc(self.flat_dim, 128, "relu"))
        self.fc2 = nn.Sequential(*get_fc(128, num_classes, "none"))
        # END SOLUTION

    def forward(self, x):
        """Class scores.

        Args:
            x (Tensor[N, c_dim, inp_size, inp_size]): images.

        Returns:
            Tensor[N, num_classes]: logits (no softmax or sigmoid).
        """
        # BEGIN SOLUTION
        n = x.size(0)
        x = self.pool1(self.nonlinear(self.conv1(x)))
        x = self.pool2(self.nonlinear(self.conv2(x)))
        flat_x = x.reshape(n, self.flat_dim)
        return self.fc2(self.fc1(flat_x))
        # END SOLUTION

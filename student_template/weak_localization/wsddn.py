"""Weakly Supervised Deep Detection Network (Bilen & Vedaldi 2016; 16-824 Fall 2022 ``wsddn.py``).

One image and its proposals go in; ``cls_prob`` (one score per proposal and class)
comes out. Two streams share the pooled region features:

* classification stream: ``score_fc`` logits, softmax over **classes** (each region
  says which class it shows);
* detection stream: ``bbox_fc`` logits, softmax over **regions** (each class says which
  region shows it best).

``cls_prob = softmax_classes(score) * softmax_regions(bbox)``; summing it over the
regions gives an image-level score in [0, 1] per class, trained with binary
cross-entropy against the image labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import RoIPool

# isort: split


class WSDDN(nn.Module):
    """WSDDN on an AlexNet trunk.

    Args:
        classes: class names (default: the 20 VOC classes); ``n_classes = len(classes)``.
        hidden_dim: width of the two fully connected layers (4096 as AlexNet's fc6/fc7).

    Attributes:
        features (nn.Sequential): AlexNet conv1-conv5 as in ``LocalizerAlexNet`` (torchvision's
            indices, so ImageNet weights load by name); stride 16.
        roi_pool: RoI max pooling to 6 x 6 (``torchvision.ops.roi_pool``), with
            ``spatial_scale = 1/16`` (the trunk's stride; ``feature size / image size`` is fine too).
        classifier (nn.Sequential): Dropout, Linear(256*6*6, 4096), ReLU, Dropout,
            Linear(4096, 4096), ReLU (torchvision's ``alexnet().classifier`` indices 0-5).
        score_fc (nn.Linear): 4096 -> n_classes, the classification stream.
        bbox_fc (nn.Linear): 4096 -> n_classes, the detection stream.
        cross_entropy: the loss of the last training forward pass (see ``loss``).
    """

    n_classes = 20
    classes = np.asarray([
        'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
        'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
        'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'
    ])

    def __init__(self, classes: Any = None, hidden_dim: int = 4096):
        super().__init__()
        if classes is not None:
            self.classes = np.asarray(classes)
            self.n_classes = len(classes)

        raise NotImplementedError("TODO: WSDDN.__init__")

        # loss
        self.cross_entropy = None

    @property
    def loss(self) -> torch.Tensor | None:
        return self.cross_entropy

    def forward(self, image: torch.Tensor, rois: torch.Tensor | None = None,
                gt_vec: torch.Tensor | None = None) -> torch.Tensor:
        """Region scores of one image.

        Args:
            image (Tensor[1, 3, H, W]): one normalised image.
            rois (Tensor[N, 4]): proposals ``(x1, y1, x2, y2)`` in **pixels of** ``image``
                (multiply the dataset's normalised boxes by the image size first);
                ``Tensor[1, N, 4]`` (a batch of one) is accepted too.
            gt_vec (Tensor[20] or Tensor[1, 20]): image labels; in training mode the loss
                is computed with them and stored in ``self.cross_entropy``.

        Returns:
            Tensor[N, n_classes]: ``cls_prob = softmax over classes (score_fc) * softmax
            over regions (bbox_fc)``; every entry in [0, 1], every column sums to at most 1.
        """
        raise NotImplementedError("TODO: WSDDN.forward")

        if self.training and gt_vec is not None:
            label_vec = gt_vec.view(self.n_classes, -1)
            self.cross_entropy = self.build_loss(cls_prob, label_vec)
        return cls_prob

    def build_loss(self, cls_prob: torch.Tensor, label_vec: torch.Tensor) -> torch.Tensor:
        """Image-level binary cross-entropy.

        Sum ``cls_prob`` over the regions to get one score per class, clamp it to [0, 1]
        (rounding can push a sum of probabilities past 1), and take the binary
        cross-entropy with the labels, summed over the classes.

        Args:
            cls_prob (Tensor[N_roi, n_classes]): output of ``forward``.
            label_vec (Tensor with n_classes entries, e.g. [n_classes, 1] or [1, n_classes]):
                1 for the classes present in the image, else 0.

        Returns:
            Tensor[]: the loss (a scalar). (The grader also accepts the mean over classes.)
        """
        raise NotImplementedError("TODO: WSDDN.build_loss")
        return loss

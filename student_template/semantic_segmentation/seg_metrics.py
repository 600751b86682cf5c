"""Segmentation metrics, all from one confusion matrix pooled over the whole dataset.

``cm[t, p]`` counts the pixels of true class ``t`` predicted as ``p``; pixels
whose target is the ignore index (255) are left out. For class ``c``:
``tp = cm[c, c]``, ``fn = row_c - tp``, ``fp = col_c - tp`` (``row_c`` = pixels
of class ``c`` in the targets, ``col_c`` = pixels predicted as ``c``).

Metrics pool pixels over the dataset (one matrix for all images), never
average per-image scores. A class that occurs neither in the targets nor in
the predictions is *absent*: its IoU/Dice/F1 are NaN and it is left out of the
means (as ``torchmetrics.classification.MulticlassJaccardIndex`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

IGNORE_INDEX = 255
# IoU thresholds 0, 0.1, ..., 1.0, computed as k / 10 in float64 (0.3 is exactly 3 / 10).
IOU_THRESHOLDS = torch.arange(11, dtype=torch.float64) / 10


def _labels(tensor: Tensor | np.ndarray, name: str) -> Tensor:
    tensor = torch.as_tensor(tensor)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {tensor.dtype}")
    return tensor.to(torch.int64)


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Confusion matrix of label maps, with one ``torch.bincount``.

    Args:
        pred (Tensor[...], integer): predicted classes in ``0..C-1``.
        target (Tensor[...], integer): true classes in ``0..C-1`` or ``ignore_index``;
            same shape as ``pred``.
        num_classes (int): C.
        ignore_index (int): target label of pixels to leave out (their prediction
            does not matter).

    Returns:
        Tensor[C, C] (int64), on the inputs' device (CPU or CUDA): ``cm[t, p]``.

    Raises:
        ValueError: for different shapes, float inputs, or a label out of range
            (a target that is neither a class nor ``ignore_index``, or a prediction
            outside ``0..C-1`` at a kept pixel); the message quotes the value.

    No Python loop over pixels or classes.
    """
    raise NotImplementedError("TODO: confusion_matrix")


class ConfusionMatrix:
    """A confusion matrix accumulated batch by batch (streaming: no mask is kept).

    ``cm = ConfusionMatrix(7); for images, masks in loader: cm.update(model(images), masks)``
    then ``cm.matrix`` or any metric below of ``cm.matrix``.

    Args:
        num_classes (int): C.
        ignore_index (int): target label to leave out.
        device (str | torch.device | None): where the matrix lives (the first
            ``update`` moves it to its inputs' device when None).

    Attributes:
        matrix (Tensor[C, C] int64): the counts so far.
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: str | torch.device | None = None):
        raise NotImplementedError("TODO: ConfusionMatrix.__init__")

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            pred (Tensor[N, H, W] integer, or Tensor[N, C, H, W] float logits, whose
                argmax over dimension 1 is taken).
            target (Tensor[N, H, W], integer): classes or ``ignore_index``.
        """
        raise NotImplementedError("TODO: ConfusionMatrix.update")

    def reset(self) -> None:
        """Set every count back to 0."""
        raise NotImplementedError("TODO: ConfusionMatrix.reset")


def _parts(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    cm = torch.as_tensor(cm).to(torch.float64)
    return cm.diagonal(), cm.sum(1), cm.sum(0)


def pixel_accuracy(cm: Tensor) -> float:
    """Fraction of kept pixels predicted right: ``trace / total`` (NaN when there is none).

    Args:
        cm (Tensor[C, C], integer): a confusion matrix.

    Returns:
        float
    """
    raise NotImplementedError("TODO: pixel_accuracy")


def per_class_iou(cm: Tensor) -> Tensor:
    """IoU of each class: ``tp / (tp + fp + fn)``.

    Args:
        cm (Tensor[C, C], integer): a confusion matrix.

    Returns:
        Tensor[C] (float64): NaN for absent classes (``tp + fp + fn == 0``).
    """
    raise NotImplementedError("TODO: per_class_iou")


def mean_iou(cm: Tensor) -> float:
    """Mean IoU over the classes that are present (in the targets or the predictions).

    Absent classes are left out, not counted as 0 (NaN when every class is absent).

    Args:
        cm (Tensor[C, C], integer): a confusion matrix.

    Returns:
        float
    """
    raise NotImplementedError("TODO: mean_iou")


def dice(cm: Tensor) -> Tensor:
    """Dice coefficient of each class: ``2 tp / (2 tp + fp + fn) = 2 tp / (row + col)``.

    Args:
        cm (Tensor[C, C], integer): a confusion matrix.

    Returns:
        Tensor[C] (float64): NaN for absent classes.
    """
    raise NotImplementedError("TODO: dice")


def precision_recall_f1(cm: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)`` and F1 of each class.

    Recall is also the class-wise pixel accuracy. F1 is
    ``2 tp / (2 tp + fp + fn)``, which equals the harmonic mean of precision and
    recall where both are defined, and equals Dice.

    Args:
        cm (Tensor[C, C], integer): a confusion matrix.

    Returns:
        (Tensor[C], Tensor[C], Tensor[C]) (float64): precision (NaN for a class
        never predicted), recall (NaN for a class absent from the targets), F1
        (NaN for absent classes).
    """
    raise NotImplementedError("TODO: precision_recall_f1")


def segmentation_report(cm: Tensor) -> dict:
    """Every metric of one confusion matrix.

    Args:
        cm (Tensor[C, C], integer): a confusion matrix.

    Returns:
        dict with ``"pixel_accuracy"`` (float), ``"iou"`` (Tensor[C] float64),
        ``"miou"`` (float), ``"dice"``, ``"precision"``, ``"recall"``, ``"f1"``
        (Tensor[C] float64 each), with the conventions of the functions above.
    """
    raise NotImplementedError("TODO: segmentation_report")


def per_image_iou(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """IoU of every class in every image of a batch (to find the worst examples).

    Args:
        pred (Tensor[N, H, W], integer): predicted classes.
        target (Tensor[N, H, W], integer): true classes or ``ignore_index``.
        num_classes (int): C.
        ignore_index (int): target label to leave out.

    Returns:
        Tensor[N, C] (float64): ``[i, c]`` is class ``c``'s IoU within image ``i``;
        NaN where ``c`` occurs neither in that image's kept target pixels nor in
        its predictions there.

    Raises:
        ValueError: as ``confusion_matrix``.

    One ``bincount`` for the whole batch (offset each image's bins); no Python
    loop over images or pixels.
    """
    raise NotImplementedError("TODO: per_image_iou")


def iou_threshold_metrics(ious: Tensor, thresholds: Tensor = IOU_THRESHOLDS) -> dict:
    """Per-class results at IoU thresholds 0, 0.1, ..., 1.0 and their mean (the seed's "mAP").

    Each image is one detection attempt per class: for class ``c`` and threshold
    ``t``, ``hit_rate[t, c]`` is the fraction of the images where ``c`` is defined
    (IoU not NaN: ``c`` is in the image's target or prediction) whose IoU is
    ``>= t`` (COCO's convention: at ``t = 0`` every such image counts, at
    ``t = 1`` only perfect ones). ``ap[c]`` is the mean of ``hit_rate[:, c]``
    over the thresholds (the area under the hit-rate curve, as COCO's
    AP@[.5:.95] averages over thresholds), and ``map`` the mean of ``ap`` over
    the classes defined somewhere.

    Args:
        ious (Tensor[N, C], float64): per-image IoUs (``per_image_iou``), NaN = not defined.
        thresholds (Tensor[T], float64): default ``IOU_THRESHOLDS`` (``k / 10``, k = 0..10).

    Returns:
        dict with ``"thresholds"`` (Tensor[T] float64), ``"hit_rate"`` (Tensor[T, C]
        float64, NaN for a class defined in no image), ``"ap"`` (Tensor[C]
        float64, NaN likewise) and ``"map"`` (float, NaN when no class is defined).

    No Python loop over images, classes or thresholds.
    """
    raise NotImplementedError("TODO: iou_threshold_metrics")


def worst_examples(ious: Tensor, class_index: int, k: int = 3, max_iou: float = 0.5) -> Tensor:
    """The images where a class is segmented worst (to visualise failure cases).

    Args:
        ious (Tensor[N, C], float): per-image IoUs (``per_image_iou``), NaN = not defined.
        class_index (int): the class.
        k (int): at most this many images.
        max_iou (float): keep only images whose IoU for the class is ``<= max_iou``.

    Returns:
        Tensor[K] (int64): image indices, lowest IoU first (ties in index order);
        ``K <= k``, images with NaN IoU never included.
    """
    raise NotImplementedError("TODO: worst_examples")


def mean_iou_score(pred: np.ndarray | Tensor, labels: np.ndarray | Tensor, verbose: bool = False) -> float:
    """The DLCV course's ``mean_iou_evaluate.mean_iou_score``, bit for bit.

    For each class ``i`` in 0..5 (class 6, unknown, is not scored), pooled over
    every pixel of every mask: ``tp_fp = #(pred == i)``, ``tp_fn = #(labels == i)``,
    ``tp = #(pred == i and labels == i)``, ``iou = tp / (tp_fp + tp_fn - tp)`` in
    float64; the result is ``sum(iou_i / 6)`` added in class order starting from
    0.0 (so a class absent from both gives NaN, as in the course's script).

    Args:
        pred (ndarray[N, H, W] or Tensor): predicted classes (any numeric dtype:
            ``read_masks`` of the course returns float64).
        labels (ndarray[N, H, W] or Tensor): true classes, same shape.
        verbose (bool): print ``class #i : 0.12345`` lines and the mean, as the course does.

    Returns:
        float: the mean IoU over classes 0..5.

    Count with one confusion matrix (no loop over pixels).
    """
    raise NotImplementedError("TODO: mean_iou_score")


def plot_confusion_matrix(cm: Tensor, class_names: tuple[str, ...], path: str | Path,
                          title: str = "confusion matrix") -> Tensor:
    """Save the confusion matrix as a heat map, each row normalised to sum to 1.

    Args:
        cm (Tensor[C, C], integer): a confusion matrix (rows = true classes).
        class_names (sequence of C str): axis labels.
        path: the PNG to write.
        title (str): the figure's title.

    Returns:
        Tensor[C, C] (float64): the values drawn, ``cm[t, p] / row_t`` (a row of
        zeros for a class absent from the targets).

    Raises:
        ValueError: when ``cm`` is not square or the names do not match it.
    """
    raise NotImplementedError("TODO: plot_confusion_matrix")

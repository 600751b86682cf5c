"""Helpers of the FCOS detector: box overlap and non-maximum suppression.

Mirrors ``detection/detection_utils.py`` of CMU 16-824 (Spring 2024). Boxes are
``(x1, y1, x2, y2)`` in absolute pixel coordinates.
"""

from __future__ import annotations

import torch
from torch import Tensor


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1 (Tensor[N, 4]): boxes ``(x1, y1, x2, y2)``, float.
        boxes2 (Tensor[M, 4]): boxes ``(x1, y1, x2, y2)``, float.

    Returns:
        Tensor[N, M]: IoU of ``boxes1[i]`` and ``boxes2[j]``, in the dtype of the
        inputs. Boxes that do not overlap have IoU 0 (clamp the intersection's
        width and height at 0). No Python loop over boxes.
    """
    raise NotImplementedError("TODO: box_iou")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Greedy non-maximum suppression.

    Visit boxes from the highest score down; keep a box unless its IoU with an
    already kept box is strictly greater than ``iou_threshold``. Equal scores
    are visited in index order (a stable sort), as ``torchvision.ops.nms`` does.

    Args:
        boxes (Tensor[N, 4]): boxes ``(x1, y1, x2, y2)``, float.
        scores (Tensor[N]): one score per box.
        iou_threshold (float): suppress when IoU > this value.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, highest score first.
        Empty input gives an empty int64 tensor.

    The greedy loop may run over kept boxes, but IoU computations must be
    vectorized (no Python loop over pairs of boxes).
    """
    # Hint: sort once; compare blocks of candidates against all boxes kept so far.
    raise NotImplementedError("TODO: nms")


def class_spec_nms(boxes: Tensor, scores: Tensor, class_ids: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Non-maximum suppression within each class only.

    Boxes of different classes never suppress each other; no Python loop over
    classes. (A common trick shifts each class's boxes by an offset larger than
    every coordinate and runs one ``nms``; the grader accepts it, up to
    floating-point rounding at the threshold.)

    Args:
        boxes (Tensor[N, 4]): boxes ``(x1, y1, x2, y2)``, float.
        scores (Tensor[N]): one score per box.
        class_ids (Tensor[N]): integer class of each box.
        iou_threshold (float): suppress when IoU > this value.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, highest score first.
    """
    raise NotImplementedError("TODO: class_spec_nms")

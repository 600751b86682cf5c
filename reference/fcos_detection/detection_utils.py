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
    # BEGIN SOLUTION
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    width = torch.minimum(boxes1[:, None, 2], boxes2[:, 2]) - torch.maximum(boxes1[:, None, 0], boxes2[:, 0])
    height = torch.minimum(boxes1[:, None, 3], boxes2[:, 3]) - torch.maximum(boxes1[:, None, 1], boxes2[:, 1])
    inter = width.clamp(min=0) * height.clamp(min=0)
    return inter / ((area1[:, None] + area2) - inter)
    # END SOLUTION


# BEGIN SOLUTION NO PROMPT
def _overlap_above(coords: Tensor, area: Tensor, rows: Tensor, cols: Tensor, threshold: float,
                   class_ids: Tensor | None) -> Tensor:
    """``IoU(box[rows[i]], box[cols[j]]) > threshold`` (same class only), in torchvision's float arithmetic."""
    x1, y1, x2, y2 = coords
    width = (torch.minimum(x2[rows, None], x2[cols]) - torch.maximum(x1[rows, None], x1[cols])).clamp_(min=0)
    height = (torch.minimum(y2[rows, None], y2[cols]) - torch.maximum(y1[rows, None], y1[cols])).clamp_(min=0)
    inter = width.mul_(height)
    union = (area[rows, None] + area[cols]) - inter
    above = inter.div_(union) > threshold
    if class_ids is not None:
        above &= class_ids[rows, None] == class_ids[cols]
    return above


def _greedy_nms(boxes: Tensor, scores: Tensor, iou_threshold: float, class_ids: Tensor | None = None,
                block: int = 128) -> Tensor:
    """Exact greedy NMS, vectorized over blocks of candidates (see ``nms``)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    coords = boxes[order].t().contiguous()
    area = (coords[2] - coords[0]) * (coords[3] - coords[1])
    classes = class_ids[order] if class_ids is not None else None
    count = order.numel()
    kept = torch.empty(count, dtype=torch.long, device=boxes.device)
    num_kept = 0
    for start in range(0, count, block):
        candidates = torch.arange(start, min(start + block, count), device=boxes.device)
        if num_kept:
            suppressed = _overlap_above(coords, area, kept[:num_kept], candidates, iou_threshold, classes).any(0)
            candidates = candidates[~suppressed]
        if candidates.numel() == 0:
            continue
        # Inside the block the greedy result is the fixed point of
        # keep[j] = not any(keep[i] and overlap[i, j] for i < j); it is reached
        # in at most (longest chain of suppressions) steps.
        overlap = _overlap_above(coords, area, candidates, candidates, iou_threshold, classes).triu_(diagonal=1)
        keep = torch.ones(candidates.numel(), dtype=torch.bool, device=boxes.device)
        while True:
            new_keep = ~(overlap & keep[:, None]).any(0)
            if torch.equal(new_keep, keep):
                break
            keep = new_keep
        candidates = candidates[keep]
        kept[num_kept:num_kept + candidates.numel()] = candidates
        num_kept += candidates.numel()
    return order[kept[:num_kept]]
# END SOLUTION


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
    # BEGIN SOLUTION
    return _greedy_nms(boxes, scores, iou_threshold)
    # END SOLUTION


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
    # BEGIN SOLUTION
    return _greedy_nms(boxes, scores, iou_threshold, class_ids)
    # END SOLUTION

"""Helpers of the FCOS detector: FPN locations, GT matching, box deltas, centerness, NMS and mAP.

Mirrors ``detection/detection_utils.py`` of CMU 16-824 (Spring 2024), which comes
from UMich EECS 498 A4. Boxes are ``(x1, y1, x2, y2)`` in absolute, continuous
pixel coordinates of the (resized) input image; a ground-truth box may carry its
class as a fifth column ``(x1, y1, x2, y2, C)``. A "background" box is the row
``(-1, -1, -1, -1, -1)``: it is what a location matched to no object gets, and
what the data loader pads its box tensor with.

Every function here works on whole tensors at once: no Python loop over
locations, boxes, detections or classes (a loop over the three FPN levels, or
over the boxes NMS keeps, is fine).
"""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor

# Short hand type notation:
TensorDict = dict[str, Tensor]


def get_fpn_location_coords(
    shape_per_fpn_level: dict[str, tuple],
    strides_per_fpn_level: dict[str, int],
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> TensorDict:
    """Map every location of every FPN feature map to a point of the input image.

    Location ``(i, j)`` (row ``i``, column ``j``) of a level with stride ``s``
    is the centre of its receptive field, ``(xc, yc) = (s * (j + 0.5), s * (i + 0.5))``.

    Order of the rows: they must follow the order in which the prediction
    network flattens its ``(B, C, H, W)`` maps into ``(B, H * W, C)``. The
    reference flattens row by row (``x`` varies fastest), so for a 224 x 224
    input ``p3`` starts ``[[4, 4], [12, 4], [20, 4], ...]``. The course's own
    test lists the transposed order ``[[4, 4], [4, 12], [4, 20], ...]`` (``y``
    varies fastest), which is right only for a prediction network that
    flattens column by column; the grader accepts either order as long as your
    locations and your predictions agree.

    Args:
        shape_per_fpn_level (dict[str, tuple]): level name (``"p3"``, ``"p4"``,
            ``"p5"``) to the shape ``(B, C, H, W)`` of its feature map (only
            ``H`` and ``W``, the last two entries, are used).
        strides_per_fpn_level (dict[str, int]): level name to its stride.
        dtype (torch.dtype): dtype of the result.
        device (str | torch.device): device of the result.

    Returns:
        dict[str, Tensor[H * W, 2]]: same keys as ``shape_per_fpn_level``;
        ``(xc, yc)`` of every location of the level, in ``dtype`` on ``device``.
    """
    location_coords = {}
    for level_name, feat_shape in shape_per_fpn_level.items():
        level_stride = strides_per_fpn_level[level_name]
        raise NotImplementedError("TODO: get_fpn_location_coords")
    return location_coords


@torch.no_grad()
def fcos_match_locations_to_gt(
    locations_per_fpn_level: TensorDict,
    strides_per_fpn_level: dict[str, int],
    gt_boxes: Tensor,
) -> TensorDict:
    """Assign one ground-truth box (or background) to every FPN location of one image.

    Provided by the course (16-824 S24 hands it out complete): students do not
    write it, and the course profile grades it nowhere.

    FCOS's rules, applied to every (location, box) pair at once:

    1. The location lies strictly inside the box: its distances to the four
       edges ``(l, t, r, b) = (xc - x1, yc - y1, x2 - xc, y2 - yc)`` are all > 0.
    2. The box's size suits the level: ``max(l, t, r, b)`` lies strictly between
       the level's bounds ``(lower, upper)``, with ``lower = 4 * stride`` and
       ``upper = 8 * stride``, except ``lower = 0`` for ``"p3"`` and
       ``upper = inf`` for ``"p5"``. With strides 8/16/32 this gives
       ``p3: (0, 64)``, ``p4: (64, 128)``, ``p5: (128, inf)``; a location whose
       ``max(l, t, r, b)`` is exactly 64 or 128 matches that box at no level.
    3. Among several boxes that pass 1 and 2, the one with the smallest area
       ``(x2 - x1) * (y2 - y1)`` wins; equal areas go to the box that comes
       first in ``gt_boxes``.

    Padding rows ``(-1, -1, -1, -1, -1)`` in ``gt_boxes`` never match (no
    location lies strictly inside them). This function is NOT batched: call it
    once per image.

    Args:
        locations_per_fpn_level (dict[str, Tensor[N_l, 2]]): ``(xc, yc)`` of the
            locations of each level (``get_fpn_location_coords``).
        strides_per_fpn_level (dict[str, int]): stride of each level.
        gt_boxes (Tensor[M, 5]): ``(x1, y1, x2, y2, C)`` of one image, float; ``M``
            may be 0.

    Returns:
        dict[str, Tensor[N_l, 5]]: same keys as ``locations_per_fpn_level``; row
        ``k`` is a copy of the box matched to location ``k``, or ``-1`` in every
        column for background. Same dtype and device as ``gt_boxes``.
    """
    matched_gt_boxes = {}
    columns = gt_boxes.shape[1] if gt_boxes.dim() == 2 else 5
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    for level_name, centers in locations_per_fpn_level.items():
        stride = strides_per_fpn_level[level_name]
        if gt_boxes.shape[0] == 0:
            matched_gt_boxes[level_name] = gt_boxes.new_full((centers.shape[0], columns), -1)
            continue
        x, y = centers[:, 0, None], centers[:, 1, None]
        # (N, M, 4): distances of every location to the four edges of every box.
        dist = torch.stack([x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=2)
        reach = dist.amax(dim=2)
        lower = 0.0 if level_name == "p3" else 4.0 * stride
        upper = math.inf if level_name == "p5" else 8.0 * stride
        candidate = (dist.amin(dim=2) > 0) & (reach > lower) & (reach < upper)
        # Smallest area wins; min() returns the first index among equal areas.
        cost = torch.where(candidate, areas.to(dist.dtype), torch.full_like(reach, math.inf))
        best_cost, best = cost.min(dim=1)
        matched = gt_boxes[best]
        matched[torch.isinf(best_cost)] = -1
        matched_gt_boxes[level_name] = matched
    return matched_gt_boxes


def fcos_get_deltas_from_locations(locations: Tensor, gt_boxes: Tensor, stride: int) -> Tensor:
    """Distances from locations to the edges of their boxes, in units of the stride.

    ``deltas = (xc - x1, yc - y1, x2 - xc, y2 - yc) / stride`` (``LTRB``). A
    background box (all of its first four coordinates are -1) gets the deltas
    ``(-1, -1, -1, -1)``. The class column, when present, is not used.

    Example (the course's test): box ``(1, 2, 40, 50)`` seen from location
    ``(32, 32)`` with stride 32 gives ``(0.96875, 0.9375, 0.25, 0.5625)``.

    Args:
        locations (Tensor[N, 2]): ``(xc, yc)`` of N locations, float.
        gt_boxes (Tensor[N, 4] or Tensor[N, 5]): the box matched to each
            location, ``(x1, y1, x2, y2)`` with an optional class column.
        stride (int): stride of the FPN level of these locations.

    Returns:
        Tensor[N, 4]: ``(l, t, r, b)`` deltas, in the dtype of the inputs.
    """
    raise NotImplementedError("TODO: fcos_get_deltas_from_locations")


def fcos_apply_deltas_to_locations(deltas: Tensor, locations: Tensor, stride: int) -> Tensor:
    """The inverse of ``fcos_get_deltas_from_locations``: boxes from ``LTRB`` deltas.

    Deltas are in units of the stride: multiply by ``stride`` first. A predicted
    delta may be negative, which would put the location outside its box: clamp
    every delta to be at least 0 (so background deltas ``-1`` give the empty
    box ``(xc, yc, xc, yc)``).

    Args:
        deltas (Tensor[N, 4]): ``(l, t, r, b)`` deltas, float.
        locations (Tensor[N, 2]): ``(xc, yc)`` of the locations.
        stride (int): stride of the FPN level.

    Returns:
        Tensor[N, 4]: boxes ``(xc - l*s, yc - t*s, xc + r*s, yc + b*s)`` in
        absolute image coordinates.
    """
    raise NotImplementedError("TODO: fcos_apply_deltas_to_locations")


def fcos_make_centerness_targets(deltas: Tensor) -> Tensor:
    """Centerness of every location from its ``LTRB`` deltas (FCOS paper, eq. 3).

    ``centerness = sqrt(min(l, r) * min(t, b) / (max(l, r) * max(t, b)))``, 1 at
    the centre of a box and falling to 0 at its edges. Background deltas
    ``(-1, -1, -1, -1)`` get centerness ``-1``.

    Example (the course's test): boxes ``(10, 15, 100, 115)`` and
    ``(30, 20, 40, 30)`` seen from ``(30, 40)`` and ``(32, 29)``, and a
    background row, give ``(0.30860671, 0.16666667, -1)``.

    Args:
        deltas (Tensor[N, 4]): ``(l, t, r, b)`` deltas, float.

    Returns:
        Tensor[N]: centerness targets, in the dtype of ``deltas``.
    """
    raise NotImplementedError("TODO: fcos_make_centerness_targets")


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
    (torchvision compares the float32 IoU with the threshold in float64; with
    thresholds that are exact in float32, such as 0.5, that is the same as
    comparing in float32.)

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

    Provided by the course, as 16-824 S24 hands it out: each class's boxes are
    shifted by an offset larger than every coordinate, so that boxes of
    different classes never overlap, and ``torchvision.ops.nms`` runs once.

    Args:
        boxes (Tensor[N, 4]): boxes ``(x1, y1, x2, y2)``, float.
        scores (Tensor[N]): one score per box.
        class_ids (Tensor[N]): integer class of each box.
        iou_threshold (float): suppress when IoU > this value.

    Returns:
        Tensor[K] (int64): indices of the kept boxes, highest score first.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = class_ids.to(boxes) * (boxes.max() + 1)
    return torchvision.ops.nms(boxes + offsets[:, None], scores, iou_threshold)


def compute_map(
    detections: list[Tensor],
    ground_truths: list[Tensor],
    num_classes: int,
    iou_threshold: float = 0.5,
    use_07_metric: bool = False,
    difficult: list[Tensor] | None = None,
) -> tuple[Tensor, float]:
    """PASCAL VOC detection mAP: average precision per class at one IoU threshold, and its mean.

    The rules of the VOC devkit (and of the Cartucho ``mAP`` tool the course uses):

    * Detections of a class are visited from the highest score down, over all
      images at once; equal scores keep their input order (image order, then
      row order).
    * A detection is compared with every ground-truth box of its class in its
      image (difficult ones included) and takes the one of highest IoU (the
      first such box on ties). If that IoU is ``>= iou_threshold``: a
      difficult box makes the detection neither TP nor FP (ignored); otherwise
      it is a TP if the box is still unclaimed (and claims it), else a FP
      (a duplicate). If the IoU is below the threshold (or there is no box of
      its class in its image) it is a FP.
    * ``npos`` of a class counts its non-difficult ground-truth boxes. Recall
      ``= TP / npos`` and precision ``= TP / (TP + FP)`` after each detection.
    * All-point AP (VOC 2010+, the default): area under the precision envelope
      ``p(r) = max precision at recall >= r``, i.e. the sum over TP detections
      of ``envelope / npos``. 11-point AP (``use_07_metric=True``, VOC 2007):
      mean over ``t in {0, 0.1, ..., 1}`` of the highest precision at recall
      ``>= t`` (0 when no recall reaches ``t``).
    * A class without non-difficult ground truth has AP ``NaN`` and does not
      count in the mean.

    IoU uses continuous coordinates (``torchvision.ops.box_iou``), not the
    devkit's "+1 pixel" convention for integer pixel boxes. No Python loop over
    images, detections or classes.

    Args:
        detections (list[Tensor[N_i, 6]]): per image, ``(x1, y1, x2, y2, class,
            score)`` rows. Rows with a negative class are ignored.
        ground_truths (list[Tensor[M_i, 5]]): per image, ``(x1, y1, x2, y2,
            class)`` rows (as served by the data loader); rows with a negative
            class are padding and are ignored.
        num_classes (int): number of classes ``C``; classes are ``0 .. C-1``.
        iou_threshold (float): minimum IoU of a true positive.
        use_07_metric (bool): 11-point AP of VOC 2007 instead of all-point AP.
        difficult (list[Tensor[M_i]] | None): per image, True for ground-truth
            boxes marked ``difficult``; None means none is.

    Returns:
        tuple[Tensor[C], float]: AP of every class (float64, NaN for classes
        without ground truth) and their mean over the classes that have ground
        truth (NaN when none has).

    Raises:
        ValueError: when the lists differ in length, a tensor has the wrong
            shape, or a class id is ``>= num_classes``.
    """
    raise NotImplementedError("TODO: compute_map")

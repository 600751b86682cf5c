"""Box utilities for WSDDN (IoU, non-maximum suppression) and logging helpers.

Mirrors ``utils.py`` of CMU 16-824 (Fall 2022) ``object-localization``. Boxes are
``(x_min, y_min, x_max, y_max)`` in any one unit: the dataset gives them
normalised to [0, 1], the network takes pixels, and IoU is the same in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision.transforms as transforms
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# BEGIN SOLUTION NO PROMPT
def _as_boxes(value: Any, name: str, *, single_ok: bool = True) -> Tensor:
    """``value`` as a float tensor of boxes, shape [4] or [N, 4]; ValueError quoting the shape otherwise."""
    boxes = torch.as_tensor(value)
    if not boxes.is_floating_point():
        boxes = boxes.to(torch.get_default_dtype())
    dims = (1, 2) if single_ok else (2,)
    if boxes.dim() not in dims or boxes.shape[-1] != 4:
        wanted = "[4] or [N, 4]" if single_ok else "[N, 4]"
        raise ValueError(f"{name} must have shape {wanted}, got {list(boxes.shape)}")
    return boxes


def _pairwise_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of every pair of rows of ``boxes1`` [N, 4] and ``boxes2`` [M, 4] (both float, one dtype)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    width = (torch.minimum(boxes1[:, None, 2], boxes2[:, 2]) - torch.maximum(boxes1[:, None, 0], boxes2[:, 0])).clamp(min=0)
    height = (torch.minimum(boxes1[:, None, 3], boxes2[:, 3]) - torch.maximum(boxes1[:, None, 1], boxes2[:, 1])).clamp(min=0)
    inter = width * height
    union = (area1[:, None] + area2) - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def _greedy_keep(boxes: Tensor, scores: Tensor, iou_threshold: float, labels: Tensor | None = None) -> Tensor:
    """Indices of the boxes that greedy NMS keeps (within each label when ``labels`` is given), best first.

    The greedy result is the unique solution of ``keep[j] = not any(keep[i] and over[i, j] for i < j)``
    (boxes in score order); iterating it from "keep all" fixes one more box per step at least, and
    stops at that solution. Memory is quadratic in the number of boxes.
    """
    if scores.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=scores.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    ordered = boxes[order]
    # Compare in float64, as torchvision does (its float IoU against a double threshold).
    over = _pairwise_iou(ordered, ordered).to(torch.float64) > iou_threshold
    if labels is not None:
        ordered_labels = labels[order]
        over &= ordered_labels[:, None] == ordered_labels[None, :]
    over = over.triu(diagonal=1)
    keep = torch.ones(order.numel(), dtype=torch.bool, device=scores.device)
    while True:
        new_keep = ~(over & keep[:, None]).any(0)
        if torch.equal(new_keep, keep):
            break
        keep = new_keep
    return order[keep]
# END SOLUTION


def nms(bounding_boxes: Tensor, confidence_score: Tensor, threshold: float = 0.05,
        iou_threshold: float = 0.3) -> tuple[Tensor, Tensor]:
    """Greedy non-maximum suppression of the boxes of one class, after a confidence threshold.

    First drop every box whose score is not above ``threshold`` (keep ``score > threshold``).
    Then visit the remaining boxes from the highest score down (equal scores in index
    order: a stable sort, as ``torchvision.ops.nms`` does) and keep a box unless its IoU
    with a box kept before it is greater than ``iou_threshold`` (strictly).

    Args:
        bounding_boxes (Tensor[N, 4]): boxes ``(x1, y1, x2, y2)``, float.
        confidence_score (Tensor[N]): one score per box.
        threshold (float): confidence threshold; the handout's 0.05.
        iou_threshold (float): suppress when IoU > this value; the handout's 0.3.

    Returns:
        tuple[Tensor[K, 4], Tensor[K]]: the kept boxes and their scores, highest score
        first, in the dtypes of the inputs. ``K`` may be 0 (shapes ``[0, 4]`` and ``[0]``).

    Raises:
        ValueError: when the boxes are not ``[N, 4]`` or the scores do not have ``N`` entries.

    The greedy loop may run over kept boxes, but IoU computations must be vectorized
    (no Python loop over pairs of boxes).
    """
    # Hint: filter by score, sort once, compute the IoU matrix of the survivors with `iou`.
    # BEGIN SOLUTION
    boxes = _as_boxes(bounding_boxes, "bounding_boxes", single_ok=False)
    scores = torch.as_tensor(confidence_score, device=boxes.device).reshape(-1)
    if scores.numel() != boxes.shape[0]:
        raise ValueError(f"confidence_score must have one entry per box ({boxes.shape[0]}), "
                         f"got {scores.numel()}")
    candidates = torch.nonzero(scores > threshold).flatten()
    keep = candidates[_greedy_keep(boxes[candidates], scores[candidates], iou_threshold)]
    return boxes[keep], scores[keep]
    # END SOLUTION


def iou(box1: Tensor, box2: Tensor) -> Tensor:
    """Intersection over union of boxes ``(x_min, y_min, x_max, y_max)``.

    Works on single boxes and on sets of boxes: the result has shape
    ``box1.shape[:-1] + box2.shape[:-1]``, that is

    * ``iou(Tensor[4], Tensor[4])`` -> 0-d tensor,
    * ``iou(Tensor[4], Tensor[M, 4])`` -> ``Tensor[M]``,
    * ``iou(Tensor[N, 4], Tensor[M, 4])`` -> ``Tensor[N, M]`` (every pair).

    Args:
        box1 (Tensor[4] or Tensor[N, 4]): boxes with ``x_min <= x_max``, ``y_min <= y_max``.
        box2 (Tensor[4] or Tensor[M, 4]): the same.

    Returns:
        Tensor: IoU in [0, 1], in the floating dtype of the inputs. Boxes that do not
        overlap have IoU 0 (clamp the intersection's width and height at 0); so do two
        boxes whose union is empty (degenerate boxes), never NaN.

    Raises:
        ValueError: when a last dimension is not 4.

    No Python loop over boxes.
    """
    # BEGIN SOLUTION
    boxes1 = _as_boxes(box1, "box1")
    boxes2 = _as_boxes(box2, "box2")
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    result = _pairwise_iou(boxes1.reshape(-1, 4).to(dtype), boxes2.reshape(-1, 4).to(dtype))
    return result.reshape(boxes1.shape[:-1] + boxes2.shape[:-1])
    # END SOLUTION


def tensor_to_PIL(image: Tensor) -> Any:
    """Undo the ImageNet normalisation of one image and return it as a PIL RGB image.

    Args:
        image (Tensor[3, H, W]): normalised with ``IMAGENET_MEAN`` / ``IMAGENET_STD``
            (squeeze a batch of one first).

    Returns:
        PIL.Image.Image: the RGB image. (The handout's version divides the blue channel
        by 0.255 instead of 0.225; this one uses the right value.)
    """
    inv_normalize = transforms.Normalize(mean=[-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)],
                                         std=[1 / s for s in IMAGENET_STD])
    inv_tensor = torch.clamp(inv_normalize(image), 0, 1)
    return transforms.ToPILImage()(inv_tensor).convert("RGB")


def get_box_data(classes: Any, bbox_coordinates: Any) -> list[dict]:
    """Boxes in the format of wandb's box plotter.

    Args:
        classes: class index of each box (a tensor or a list).
        bbox_coordinates: ``[[xmin, ymin, xmax, ymax], ...]`` (N x 4), normalised to [0, 1].

    Returns:
        list[dict]: ``{"position": {"minX", "minY", "maxX", "maxY"}, "class_id"}`` per box.
    """
    classes = torch.as_tensor(classes).reshape(-1).tolist()
    coords = torch.as_tensor(bbox_coordinates, dtype=torch.float64).reshape(-1, 4).tolist()
    return [{"position": {"minX": box[0], "minY": box[1], "maxX": box[2], "maxY": box[3]},
             "class_id": int(cls)} for cls, box in zip(classes, coords)]


class ExperimentLogger:
    """Log scalars, histograms and images to TensorBoard and, optionally, to wandb offline.

    wandb runs with ``mode="offline"``: nothing leaves the machine; ``wandb sync DIR``
    uploads a run later. Both back ends are imported only when enabled.

    Args:
        log_dir: folder of the TensorBoard event files (and of the wandb run).
        use_tensorboard: write TensorBoard event files.
        use_wandb: also log to wandb (offline).
        project: wandb project name.
        config: hyper-parameters recorded with the wandb run.
    """

    def __init__(self, log_dir: str | Path = "runs", use_tensorboard: bool = True, use_wandb: bool = False,
                 project: str = "vlr-hw1", config: dict | None = None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = None
        self.run = None
        if use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir))
        if use_wandb:
            import wandb

            self.run = wandb.init(project=project, dir=str(self.log_dir), mode="offline", config=config or {})

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)
        if self.run is not None:
            self.run.log({tag: float(value)}, step=step)

    def histogram(self, tag: str, values: Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_histogram(tag, values.detach().float().cpu(), step)
        if self.run is not None:
            import wandb

            self.run.log({tag: wandb.Histogram(values.detach().float().cpu().numpy())}, step=step)

    def image(self, tag: str, image: Tensor, step: int, boxes: list[dict] | None = None,
              class_labels: dict[int, str] | None = None) -> None:
        """``image`` (Tensor[3, H, W], floats in [0, 1]); ``boxes`` as from ``get_box_data``."""
        image = image.detach().float().cpu().clamp(0, 1)
        if self.writer is not None:
            if boxes:
                height, width = image.shape[-2:]
                xyxy = torch.tensor([[b["position"]["minX"] * width, b["position"]["minY"] * height,
                                      b["position"]["maxX"] * width, b["position"]["maxY"] * height]
                                     for b in boxes])
                self.writer.add_image_with_boxes(tag, image, xyxy, step)
            else:
                self.writer.add_image(tag, image, step)
        if self.run is not None:
            import wandb

            kwargs = {}
            if boxes:
                kwargs["boxes"] = {"predictions": {"box_data": boxes, "class_labels": class_labels or {}}}
            self.run.log({tag: wandb.Image(image.permute(1, 2, 0).numpy(), **kwargs)}, step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.run is not None:
            self.run.finish()

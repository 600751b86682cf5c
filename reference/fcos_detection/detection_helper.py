"""Course code for the FCOS assignment: data loading, the training loop, inference and evaluation.

Students do not change this file (the grader uses the course's copy). It reads
the PASCAL VOC 2007 detection data in two layouts:

* the handout's JSON layout (``VOC2007DetectionTiny`` of EECS 498 / 16-824):
  ``voc07_{split}.json`` in ``dataset_dir``, a list of
  ``[image_path, [{"xyxy": [x1, y1, x2, y2], "name": "dog"}, ...]]``;
* the VOC devkit layout: ``Annotations/*.xml``, ``ImageSets/Main/{split}.txt``
  and ``JPEGImages/`` in ``dataset_dir`` (or in ``dataset_dir/VOCdevkit/VOC2007``),
  whose 1-based inclusive pixel boxes become continuous ``(xmin - 1, ymin - 1,
  xmax, ymax)`` boxes, with their ``difficult`` flags.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import detection_utils
import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import optim
from torchvision import transforms

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
JSON_URL = "https://web.eecs.umich.edu/~justincj/data/voc07_{split}.json"
LOSS_KEYS = ("loss_cls", "loss_box", "loss_ctr")


class VOC2007DetectionTiny(torch.utils.data.Dataset):
    """PASCAL VOC 2007 detection, resized and centre-cropped to square images.

    Each item is ``(image_path, image, gt_boxes)``: the path of the JPEG, the
    normalised image ``FloatTensor[3, S, S]`` and ``FloatTensor[max_boxes, 5]``
    rows ``(x1, y1, x2, y2, class)`` in pixels of the resized image, padded
    with rows of -1. Boxes that the crop removes become -1 rows.

    Args:
        dataset_dir (str): folder of the JSON files and images, or a VOC2007 folder.
        split (str): ``"train"``, ``"val"``, ``"trainval"`` or ``"test"``.
        download (bool): fetch the course's JSON files first (needs internet).
        image_size (int): side ``S`` of the square images; the shorter side is
            resized to ``S``, then the centre is cropped.
        keep_difficult (bool): keep objects marked ``difficult`` (VOC XML only;
            evaluation needs them, training usually drops them).
        max_boxes (int): rows of ``gt_boxes``.

    Raises:
        FileNotFoundError: when neither layout is found in ``dataset_dir``.
    """

    def __init__(self, dataset_dir: str, split: str = "train", download: bool = False, image_size: int = 224,
                 keep_difficult: bool = False, max_boxes: int = 40):
        super().__init__()
        self.image_size = image_size
        self.max_boxes = max_boxes
        self.split = split
        if download:
            self._attempt_download(dataset_dir)
        self.class_to_idx = {name: index for index, name in enumerate(VOC_CLASSES)}
        self.idx_to_class = dict(enumerate(VOC_CLASSES))
        root = Path(dataset_dir)
        json_path = root / f"voc07_{split}.json"
        voc_root = next((p for p in (root, root / "VOCdevkit" / "VOC2007", root / "VOC2007")
                         if (p / "Annotations").is_dir() and (p / "ImageSets" / "Main" / f"{split}.txt").is_file()),
                        None)
        if json_path.is_file():
            self.instances = _read_json_layout(json_path, root)
        elif voc_root is not None:
            self.instances = _read_voc_layout(voc_root, split, keep_difficult, root)
        else:
            raise FileNotFoundError(f"no voc07_{split}.json and no VOC2007 folder with ImageSets/Main/{split}.txt "
                                    f"in {dataset_dir!r}")
        for path, objects in self.instances:
            unknown = sorted({o["name"] for o in objects} - set(self.class_to_idx))
            if unknown:
                raise ValueError(f"{path}: unknown class names {unknown}; known: {list(VOC_CLASSES)}")
            if len(objects) > max_boxes:
                raise ValueError(f"{path} has {len(objects)} objects, more than max_boxes={max_boxes}")
        self.dataset_dir = str(root)
        self.image_transform = transforms.Compose([
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ])

    @staticmethod
    def _attempt_download(dataset_dir: str) -> None:
        """Fetch the course's ``voc07_train.json`` and ``voc07_val.json`` (images come separately)."""
        import urllib.request

        os.makedirs(dataset_dir, exist_ok=True)
        for split in ("train", "val"):
            target = os.path.join(dataset_dir, f"voc07_{split}.json")
            if not os.path.exists(target):
                try:
                    urllib.request.urlretrieve(JSON_URL.format(split=split), target)
                except OSError as exc:
                    raise RuntimeError(f"could not download {JSON_URL.format(split=split)}: {exc}") from exc

    def __len__(self) -> int:
        return len(self.instances)

    def _boxes(self, index: int, original_width: int, original_height: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes (M, 5) in resized-and-cropped pixels and their difficult flags (M,)."""
        _, objects = self.instances[index]
        boxes = torch.tensor([o["xyxy"] for o in objects], dtype=torch.float32).reshape(-1, 4)
        classes = torch.tensor([self.class_to_idx[o["name"]] for o in objects], dtype=torch.float32)
        difficult = torch.tensor([bool(o.get("difficult", False)) for o in objects], dtype=torch.bool)
        size = self.image_size
        # The sizes torchvision's Resize(size) gives (the longer side is truncated) and
        # the offsets of its CenterCrop(size).
        if original_width <= original_height:
            new_width, new_height = size, int(size * original_height / original_width)
        else:
            new_width, new_height = int(size * original_width / original_height), size
        left = int(round((new_width - size) / 2.0))
        top = int(round((new_height - size) / 2.0))
        scale = torch.tensor([new_width / original_width, new_height / original_height] * 2, dtype=torch.float32)
        boxes = boxes * scale - torch.tensor([left, top, left, top], dtype=torch.float32)
        boxes[:, :2] = boxes[:, :2].clamp(min=0)
        boxes[:, 2:] = boxes[:, 2:].clamp(max=size)
        boxes = torch.cat([boxes, classes[:, None]], dim=1)
        invalid = (boxes[:, 0] >= boxes[:, 2]) | (boxes[:, 1] >= boxes[:, 3])
        boxes[invalid] = -1
        return boxes, difficult

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        relative, _ = self.instances[index]
        image_path = os.path.join(self.dataset_dir, relative.replace("./here/", ""))
        image = Image.open(image_path).convert("RGB")
        original_width, original_height = image.size
        boxes, _ = self._boxes(index, original_width, original_height)
        image = self.image_transform(image)
        padding = torch.full((self.max_boxes - len(boxes), 5), -1.0)
        return image_path, image, torch.cat([boxes, padding])

    def difficult_flags(self, index: int) -> torch.Tensor:
        """``BoolTensor[max_boxes]``: which rows of item ``index``'s ``gt_boxes`` are difficult objects."""
        flags = torch.zeros(self.max_boxes, dtype=torch.bool)
        _, objects = self.instances[index]
        flags[: len(objects)] = torch.tensor([bool(o.get("difficult", False)) for o in objects], dtype=torch.bool)
        return flags


def _read_json_layout(path: Path, root: Path) -> list[tuple[str, list[dict]]]:
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of [image_path, annotations], got {type(data).__name__}")
    instances = []
    for number, entry in enumerate(data):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
            raise ValueError(f"{path}: entry {number} is not [image_path, [annotations]]: {str(entry)[:80]}")
        objects = [{"xyxy": [float(v) for v in o["xyxy"]], "name": o["name"]} for o in entry[1]]
        instances.append((str(entry[0]), objects))
    return instances


def _read_voc_layout(root: Path, split: str, keep_difficult: bool, dataset_dir: Path) -> list[tuple[str, list[dict]]]:
    ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
    instances = []
    for image_id in ids:
        tree = ET.parse(root / "Annotations" / f"{image_id}.xml").getroot()
        objects = []
        for node in tree.findall("object"):
            difficult = node.find("difficult")
            is_difficult = difficult is not None and difficult.text is not None and int(difficult.text) == 1
            if is_difficult and not keep_difficult:
                continue
            box = node.find("bndbox")
            xmin, ymin, xmax, ymax = (float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
            objects.append({"xyxy": [xmin - 1, ymin - 1, xmax, ymax], "name": node.find("name").text.strip(),
                            "difficult": is_difficult})
        filename = tree.find("filename")
        name = filename.text.strip() if filename is not None and filename.text else f"{image_id}.jpg"
        instances.append((os.path.relpath(root / "JPEGImages" / name, dataset_dir), objects))
    return instances


def infinite_loader(loader: torch.utils.data.DataLoader) -> Iterator:
    """Get an infinite stream of batches from a data loader."""
    while True:
        yield from loader


def train_step(detector: torch.nn.Module, optimizer: optim.Optimizer, images: torch.Tensor,
               gt_boxes: torch.Tensor) -> dict[str, float]:
    """One optimisation step: forward in training mode, sum the losses, backward, step.

    Returns:
        dict[str, float]: every ``loss_*`` value and their sum under ``"total"``.
    """
    detector.train()
    losses = detector(images, gt_boxes)
    losses = {k: v for k, v in losses.items() if "loss" in k}
    optimizer.zero_grad()
    total = sum(losses.values())
    total.backward()
    optimizer.step()
    result = {k: float(v.detach()) for k, v in losses.items()}
    result["total"] = float(total.detach())
    return result


def grad_norms(module: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradient of every parameter (``nan`` when it has none)."""
    return {name: float(p.grad.norm()) if p.grad is not None else math.nan for name, p in module.named_parameters()}


def _writer(log_dir: str | None):
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir)


def train_detector(detector: torch.nn.Module, train_loader: torch.utils.data.DataLoader,
                   learning_rate: float = 5e-3, weight_decay: float = 1e-4, max_iters: int = 5000,
                   log_period: int = 20, overfit: bool = False, device: str = "cpu",
                   log_dir: str | None = "detection_logs", checkpoint_path: str | None = None,
                   checkpoint_period: int | None = None, progress: bool = True, optimizer: str = "sgd",
                   eval_fn: Callable[[torch.nn.Module], float] | None = None,
                   eval_period: int | None = None) -> list[dict[str, float]]:
    """Train the detector, with step decay of the learning rate at 60% and 90% of the iterations.

    The optimizer is SGD with momentum 0.9 (the course's choice) or Adam
    (``optimizer="adam"``, which fits a small set from random weights much faster).
    Logs ``train/loss_cls``, ``train/loss_box``, ``train/loss_ctr``,
    ``train/total_loss`` and ``train/lr`` to TensorBoard every iteration, shows
    a progress bar, saves ``detector.state_dict()`` to ``checkpoint_path`` every
    ``checkpoint_period`` iterations and at the end, and every ``eval_period``
    iterations records ``eval_fn(detector)`` (e.g. an mAP) as ``train/mAP``.

    Returns:
        list[dict[str, float]]: the losses (and ``"iter"``, and ``"mAP"`` when
        evaluated) every ``log_period`` iterations and at each evaluation.
    """
    from tqdm import tqdm

    writer = _writer(log_dir)
    detector.to(device=device)
    trainable = [p for p in detector.parameters() if p.requires_grad]
    if optimizer == "sgd":
        optimizer = optim.SGD(trainable, momentum=0.9, lr=learning_rate, weight_decay=weight_decay)
    elif optimizer == "adam":
        optimizer = optim.Adam(trainable, lr=learning_rate, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    lr_scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=[int(0.6 * max_iters), int(0.9 * max_iters)])
    history: list[dict[str, float]] = []
    batches = infinite_loader(train_loader)
    tag = "overfit" if overfit else "full"
    bar = tqdm(range(max_iters), desc=f"training ({tag})", disable=not progress, dynamic_ncols=True)
    for iteration in bar:
        _, images, gt_boxes = next(batches)
        losses = train_step(detector, optimizer, images.to(device), gt_boxes.to(device))
        lr_scheduler.step()
        if writer is not None:
            for key, value in losses.items():
                writer.add_scalar("train/total_loss" if key == "total" else f"train/{key}", value, iteration)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], iteration)
        bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in losses.items()})
        record = {"iter": iteration, **losses}
        if eval_fn is not None and eval_period and ((iteration + 1) % eval_period == 0 or iteration == max_iters - 1):
            record["mAP"] = float(eval_fn(detector))
            if writer is not None:
                writer.add_scalar("train/mAP", record["mAP"], iteration)
        if iteration % log_period == 0 or iteration == max_iters - 1 or "mAP" in record:
            history.append(record)
        if checkpoint_path and checkpoint_period and (iteration + 1) % checkpoint_period == 0:
            torch.save(detector.state_dict(), checkpoint_path)
    if checkpoint_path:
        torch.save(detector.state_dict(), checkpoint_path)
    if writer is not None:
        writer.close()
    return history


def inverse_normalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation of a ``(3, H, W)`` image, back to ``[0, 1]`` RGB."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device)[:, None, None]
    return (image * std + mean).clamp(0, 1)


def detection_visualizer(image: torch.Tensor, idx_to_class: dict[int, str], bbox: torch.Tensor | None = None,
                         pred: torch.Tensor | None = None) -> np.ndarray:
    """Draw ground-truth (green) and predicted (red, with score) boxes on an image.

    Args:
        image (Tensor[3, H, W]): RGB in ``[0, 1]``.
        idx_to_class (dict[int, str]): class names.
        bbox (Tensor[M, 5] | None): ground-truth ``(x1, y1, x2, y2, class)``.
        pred (Tensor[N, 6] | None): predictions ``(x1, y1, x2, y2, class, score)``.

    Returns:
        ndarray uint8 ``(3, H, W)``, ready for ``torchvision.utils.make_grid``.
    """
    array = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    canvas = Image.fromarray(array)
    draw = ImageDraw.Draw(canvas)
    for rows, colour, with_score in ((bbox, (0, 200, 0), False), (pred, (230, 30, 30), True)):
        if rows is None:
            continue
        for row in rows.detach().cpu().tolist():
            x1, y1, x2, y2, cls = row[:5]
            if cls < 0:
                continue
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
            label = idx_to_class.get(int(cls), str(int(cls)))
            if with_score:
                label += f" {row[5]:.2f}"
            draw.text((x1 + 2, y1 + 1), label, fill=colour)
    return np.asarray(canvas).transpose(2, 0, 1).copy()


@torch.no_grad()
def inference_with_detector(detector: torch.nn.Module, test_loader: torch.utils.data.DataLoader,
                            idx_to_class: dict[int, str], score_thresh: float, nms_thresh: float,
                            output_dir: str | None = None, dtype: torch.dtype = torch.float32, device: str = "cpu",
                            log_dir: str | None = "detection_logs", max_logged: int = 16,
                            progress: bool = True) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Run the detector on every image of a loader (batch size 1).

    With ``output_dir``, writes the files of the Cartucho ``mAP`` tool
    (``ground-truth/`` and ``detection-results/``, one ``.txt`` per image).
    Otherwise logs up to ``max_logged`` images with ground-truth and predicted
    boxes to TensorBoard (``test/detections``).

    Returns:
        list of ``(image_path, predictions[N, 6], ground_truth[M, 5])`` on the CPU.
    """
    from torchvision.utils import make_grid
    from tqdm import tqdm

    detector.to(dtype=dtype, device=device)
    detector.eval()
    start = time.time()
    if output_dir is not None:
        det_dir, gt_dir = os.path.join(output_dir, "detection-results"), os.path.join(output_dir, "ground-truth")
        for folder in (det_dir, gt_dir):
            shutil.rmtree(folder, ignore_errors=True)
            os.makedirs(folder)
    results, images_logged = [], []
    for image_paths, images, gt_boxes in tqdm(test_loader, desc="inference", disable=not progress):
        images = images.to(dtype=dtype, device=device)
        pred_boxes, pred_classes, pred_scores = detector(images, test_score_thresh=score_thresh,
                                                         test_nms_thresh=nms_thresh)
        gt = gt_boxes[0][gt_boxes[0][:, 4] != -1].cpu()
        valid = pred_classes != -1
        preds = torch.cat([pred_boxes[valid], pred_classes[valid, None].to(pred_boxes.dtype),
                           pred_scores[valid, None]], dim=1).cpu().float()
        results.append((image_paths[0], preds, gt))
        if output_dir is not None:
            name = os.path.splitext(os.path.basename(image_paths[0]))[0] + ".txt"
            with open(os.path.join(gt_dir, name), "w") as f_gt:
                for b in gt.tolist():
                    f_gt.write(f"{idx_to_class[int(b[4])]} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f}\n")
            with open(os.path.join(det_dir, name), "w") as f_det:
                for b in preds.tolist():
                    f_det.write(f"{idx_to_class[int(b[4])]} {b[5]:.6f} {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f}\n")
        elif len(images_logged) < max_logged:
            picture = detection_visualizer(inverse_normalize(images[0].float()).cpu(), idx_to_class, gt, preds)
            images_logged.append(torch.from_numpy(picture))
    writer = _writer(log_dir) if output_dir is None and images_logged else None
    if writer is not None:
        writer.add_image("test/detections", make_grid(images_logged, nrow=4))
        writer.close()
    if progress:
        print(f"Total inference time: {time.time() - start:.1f}s")
    return results


@torch.no_grad()
def evaluate_detector(detector: torch.nn.Module, dataset: torch.utils.data.Dataset, num_classes: int,
                      score_thresh: float = 0.05, nms_thresh: float = 0.5, iou_threshold: float = 0.5,
                      use_07_metric: bool = False, device: str = "cpu",
                      progress: bool = True) -> tuple[torch.Tensor, float]:
    """VOC mAP of a detector on a dataset (``compute_map`` of ``detection_utils``).

    ``dataset`` is a ``VOC2007DetectionTiny`` (or a ``Subset`` of one); its
    ``difficult_flags`` are honoured when it has them.

    Returns:
        (Tensor[num_classes], float): AP per class (NaN without ground truth) and mAP.
    """
    from tqdm import tqdm

    base, indices = dataset, list(range(len(dataset)))
    if isinstance(dataset, torch.utils.data.Subset):
        base, indices = dataset.dataset, [int(i) for i in dataset.indices]
    detector.to(device=device)
    detector.eval()
    detections, ground_truths, difficult = [], [], []
    for index in tqdm(indices, desc="evaluating", disable=not progress):
        _, image, gt_boxes = base[index]
        boxes, classes, scores = detector(image[None].to(device), test_score_thresh=score_thresh,
                                          test_nms_thresh=nms_thresh)
        detections.append(torch.cat([boxes, classes[:, None].to(boxes.dtype), scores[:, None]], dim=1).cpu())
        ground_truths.append(gt_boxes)
        flags = base.difficult_flags(index) if hasattr(base, "difficult_flags") else \
            torch.zeros(gt_boxes.shape[0], dtype=torch.bool)
        difficult.append(flags)
    return detection_utils.compute_map(detections, ground_truths, num_classes, iou_threshold=iou_threshold,
                       use_07_metric=use_07_metric, difficult=difficult)

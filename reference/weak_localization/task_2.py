"""Task 2: train and test WSDDN (16-824 Fall 2022 ``task_2.py``).

Run (TensorBoard logs in ``--log-dir``; ``--wandb`` also logs to wandb, offline)::

    python task_2.py --data-dir data/VOCdevkit/VOC2007 --pretrained pretrained_alexnet.pth --epochs 5

Testing (``test_model``): for every test image, the network scores each proposal for
each class; per class, proposals scoring above 0.05 go through NMS at IoU 0.3; the
surviving boxes of the whole test set give one AP per class at IoU 0.5
(``calculate_map``), and their mean is the detection mAP.
"""

from __future__ import annotations

import argparse
import os
import random
from typing import Any

import numpy as np
import torch
from torch import Tensor

# isort: split
from AlexNet import load_alexnet_state_dict
from utils import ExperimentLogger, get_box_data, nms, tensor_to_PIL  # noqa: F401
from voc_dataset import VOCDataset
from wsddn import WSDDN

# BEGIN SOLUTION NO PROMPT
from utils import _greedy_keep, _pairwise_iou  # isort: skip
# END SOLUTION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train WSDDN')
    parser.add_argument('--lr', default=0.0001, type=float, help='learning rate')
    parser.add_argument('--lr-decay-steps', default=150000, type=int, help='interval at which the lr is decayed')
    parser.add_argument('--lr-decay', default=0.1, type=float, help='decay rate of the lr')
    parser.add_argument('--momentum', default=0.9, type=float, help='momentum of the optimizer')
    parser.add_argument('--weight-decay', default=0.0005, type=float, help='weight decay')
    parser.add_argument('--epochs', default=5, type=int, help='number of epochs')
    parser.add_argument('--val-interval', default=5000, type=int, help='iterations between evaluations')
    parser.add_argument('--disp-interval', default=500, type=int, help='iterations between loss logs')
    parser.add_argument('--use-wandb', action='store_true', help='also log to wandb (offline mode)')
    parser.add_argument('--no-tensorboard', dest='tensorboard', action='store_false')
    parser.add_argument('--data-dir', default='data/VOCdevkit/VOC2007/', help='the VOC2007 folder')
    parser.add_argument('--train-split', default='trainval')
    parser.add_argument('--val-split', default='test')
    parser.add_argument('--image-size', default=512, type=int)
    parser.add_argument('--top-n', default=300, type=int, help='proposals per image')
    parser.add_argument('--hidden-dim', default=4096, type=int, help='width of fc6 / fc7')
    parser.add_argument('--pretrained', default='pretrained_alexnet.pth',
                        help='AlexNet state dict (features.* and classifier.*) to start from, if the file exists')
    parser.add_argument('--freeze', default='features', choices=['none', 'conv1', 'features'],
                        help='layers kept fixed when starting from pretrained weights')
    parser.add_argument('--workers', default=4, type=int)
    parser.add_argument('--seed', default=1024, type=int)
    parser.add_argument('--device', default='auto')
    parser.add_argument('--log-dir', default='runs/task_2')
    parser.add_argument('--vis-images', default=10, type=int, help='test images drawn with their boxes')
    return parser


def get_detections(cls_prob: Tensor, rois: Tensor, thresh: float = 0.05,
                   nms_threshold: float = 0.3) -> tuple[Tensor, Tensor, Tensor]:
    """Detections of one image: per-class score threshold, then per-class NMS.

    For every class ``c``: keep the regions with ``cls_prob[:, c] > thresh``, then run
    greedy NMS among them (suppress a box when its IoU with a kept, higher-scoring box
    of the same class is ``> nms_threshold``; equal scores in region order). Boxes of
    different classes never suppress each other.

    Args:
        cls_prob (Tensor[N, C]): region scores from ``WSDDN.forward``.
        rois (Tensor[N, 4]): the regions ``(x1, y1, x2, y2)`` (any unit; the result keeps it).
        thresh (float): score threshold (the handout's 0.05).
        nms_threshold (float): IoU threshold of NMS (the handout's 0.3).

    Returns:
        tuple[Tensor[K, 4], Tensor[K], Tensor[K]]: boxes (float), scores (float) and class
        indices (int64) of the kept detections, in any order.

    No Python loop over classes is needed (suppression only between boxes of one class).
    """
    # BEGIN SOLUTION
    cls_prob = cls_prob.detach()
    rois = rois.detach().reshape(-1, 4).to(cls_prob)
    if cls_prob.dim() != 2 or cls_prob.shape[0] != rois.shape[0]:
        raise ValueError(f"cls_prob must be [N, C] with one row per roi ({rois.shape[0]}), got "
                         f"{list(cls_prob.shape)}")
    region, label = torch.nonzero(cls_prob > thresh, as_tuple=True)
    boxes, scores = rois[region], cls_prob[region, label]
    keep = _greedy_keep(boxes, scores, nms_threshold, labels=label)
    return boxes[keep], scores[keep], label[keep]
    # END SOLUTION


def calculate_map(detections: list, ground_truths: list, num_classes: int = 20,
                  iou_threshold: float = 0.5) -> tuple[np.ndarray, float]:
    """Class-wise average precision of detections at IoU ``iou_threshold`` (PASCAL VOC style), and their mean.

    For each class, take its detections over all images, from the highest score down
    (equal scores: in image order, then in the order given). A detection is a true
    positive when the ground-truth box of its class, in its image, that it overlaps
    most has ``IoU >= iou_threshold`` and was not matched by an earlier detection;
    otherwise it is a false positive (a detection whose best box is taken does not fall
    back to another box). With ``precision`` and ``recall`` after each detection, AP is
    the area under the interpolated precision-recall curve (all points, VOC 2010+):
    ``AP = sum over true positives of max(precision at rank >= this one) / #ground truths``.

    Every ground-truth box counts (the dataset does not keep VOC's ``difficult`` flag).

    Args:
        detections: one entry per image, ``(boxes Tensor[K, 4], scores Tensor[K], labels Tensor[K])``
            as ``get_detections`` returns.
        ground_truths: one entry per image, ``(boxes Tensor[G, 4], labels Tensor[G])``.
        num_classes (int): number of classes.
        iou_threshold (float): overlap needed for a match.

    Returns:
        tuple[numpy.ndarray, float]: AP of each class (float64 [num_classes]; NaN for a
        class without ground-truth boxes, 0 for one with boxes but no detections), and
        the mean over the classes that have ground truth (0.0 when none has).

    Raises:
        ValueError: when the two lists have different lengths.
    """
    # BEGIN SOLUTION
    if len(detections) != len(ground_truths):
        raise ValueError(f"detections cover {len(detections)} images but ground_truths {len(ground_truths)}")
    det_labels, det_scores, best_gt = [], [], []
    gt_labels = []
    gt_offset = 0
    # Per image: the ground-truth box of the same class that each detection overlaps most.
    for (boxes, scores, labels), (gt_boxes, gt_classes) in zip(detections, ground_truths):
        boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
        labels = torch.as_tensor(labels).reshape(-1).long()
        gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float64).reshape(-1, 4)
        gt_classes = torch.as_tensor(gt_classes).reshape(-1).long()
        match = torch.full((boxes.shape[0],), -1, dtype=torch.long)
        if boxes.shape[0] and gt_boxes.shape[0]:
            overlap = _pairwise_iou(boxes, gt_boxes)
            overlap = torch.where(labels[:, None] == gt_classes[None, :], overlap, -1.0)
            best, which = overlap.max(dim=1)
            match = torch.where(best >= iou_threshold, which + gt_offset, match)
        det_labels.append(labels)
        det_scores.append(torch.as_tensor(scores, dtype=torch.float64).reshape(-1))
        best_gt.append(match)
        gt_labels.append(gt_classes)
        gt_offset += gt_boxes.shape[0]
    labels = torch.cat(det_labels) if det_labels else torch.zeros(0, dtype=torch.long)
    scores = torch.cat(det_scores) if det_scores else torch.zeros(0, dtype=torch.float64)
    matched = torch.cat(best_gt) if best_gt else torch.zeros(0, dtype=torch.long)
    gt_all = torch.cat(gt_labels) if gt_labels else torch.zeros(0, dtype=torch.long)
    if ((labels < 0) | (labels >= num_classes)).any() or ((gt_all < 0) | (gt_all >= num_classes)).any():
        raise ValueError(f"class indices must be in [0, {num_classes})")
    num_gt = torch.bincount(gt_all, minlength=num_classes).to(torch.float64)

    # Class by class (contiguous), highest score first.
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(labels[order], stable=True).indices]
    labels, matched = labels[order], matched[order]
    position = torch.arange(labels.numel())
    # A detection is a true positive when it is the first (best-scored) one to claim its box.
    slot = torch.where(matched >= 0, matched, gt_offset)
    first = torch.full((gt_offset + 1,), labels.numel(), dtype=torch.long)
    first = first.scatter_reduce(0, slot, position, reduce='amin')
    tp = ((matched >= 0) & (first[slot] == position)).to(torch.float64)
    # Cumulative counts restart at each class.
    start = torch.searchsorted(labels, labels, right=False)
    cum_tp = tp.cumsum(0)
    cum_tp = cum_tp - torch.cat([torch.zeros(1, dtype=torch.float64), cum_tp])[start]
    precision = cum_tp / (position - start + 1).to(torch.float64)
    # Interpolated precision: the best precision at this rank or below, within the class.
    shifted = precision + 2.0 * (num_classes - labels).to(torch.float64)
    envelope = shifted.flip(0).cummax(0).values.flip(0) - 2.0 * (num_classes - labels).to(torch.float64)
    area = torch.zeros(num_classes, dtype=torch.float64).scatter_add(0, labels, tp * envelope)
    aps = torch.where(num_gt > 0, area / num_gt.clamp(min=1), torch.tensor(float('nan'), dtype=torch.float64))
    valid = num_gt > 0
    mean_ap = float(aps[valid].mean()) if bool(valid.any()) else 0.0
    return aps.numpy(), mean_ap
    # END SOLUTION


def test_model(model: torch.nn.Module, val_loader: Any = None, thresh: float = 0.05,
               logger: ExperimentLogger | None = None, step: int = 0, vis_images: int = 0) -> tuple[np.ndarray, float]:
    """Detection AP of ``model`` on a test set.

    For every batch (one image: ``batch_size=1``), run the model in eval mode on the
    image and its proposals **in pixels** (the dataset's normalised ``rois`` times the
    image's width and height), keep per class the proposals scoring above ``thresh``
    and apply NMS at IoU 0.3 (``get_detections``), then compute the AP of each class
    at IoU 0.5 over the whole set (``calculate_map``) against ``gt_boxes`` /
    ``gt_classes``. The model's train/eval mode is restored afterwards.

    Args:
        model: a ``WSDDN`` (anything called as ``model(image, rois)`` that returns ``cls_prob``).
        val_loader: iterable of batches of one image, dicts as ``VOCDataset`` items collated by
            a ``DataLoader`` (``image`` [1, 3, H, W], ``rois`` [1, N, 4], ``gt_boxes`` [1, G, 4],
            ``gt_classes`` [1, G]).
        thresh (float): score threshold.
        logger, step, vis_images: draw the boxes of the first ``vis_images`` images.

    Returns:
        tuple[numpy.ndarray, float]: the class-wise APs and the mAP, as ``calculate_map``.
    """
    # BEGIN SOLUTION
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    detections, ground_truths = [], []
    num_classes = int(getattr(model, 'n_classes', 20))
    with torch.no_grad():
        for index, data in enumerate(val_loader):
            image = data['image'].to(device)
            rois = torch.as_tensor(data['rois']).reshape(-1, 4).float()
            height, width = image.shape[-2:]
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            cls_prob = model(image, (rois * scale).to(device)).cpu()
            num_classes = cls_prob.shape[1]
            boxes, scores, labels = get_detections(cls_prob, rois, thresh, 0.3)
            detections.append((boxes, scores, labels))
            ground_truths.append((torch.as_tensor(data['gt_boxes']).reshape(-1, 4),
                                  torch.as_tensor(data['gt_classes']).reshape(-1)))
            if logger is not None and index < vis_images:
                names = {i: str(n) for i, n in enumerate(getattr(model, 'classes', VOCDataset.CLASS_NAMES))}
                rgb = torch.from_numpy(np.asarray(tensor_to_PIL(image[0].cpu()), dtype=np.float32) / 255)
                logger.image(f'test/boxes_{index}', rgb.permute(2, 0, 1), step,
                             boxes=get_box_data(labels, boxes.clamp(0, 1)), class_labels=names)
    model.train(was_training)
    return calculate_map(detections, ground_truths, num_classes=num_classes)
    # END SOLUTION


def train_model(model: torch.nn.Module, train_loader: Any = None, val_loader: Any = None,
                optimizer: torch.optim.Optimizer | None = None, args: Any = None,
                logger: ExperimentLogger | None = None) -> dict:
    """Train WSDDN one image at a time; evaluate every ``val_interval`` iterations and after each epoch.

    Returns:
        dict: ``loss`` (average loss of each ``disp_interval`` window), ``map`` (test mAP
        after each evaluation) and ``aps`` (class-wise APs of the last evaluation).
    """
    device = next(model.parameters()).device
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_decay_steps, gamma=args.lr_decay)
    history: dict[str, Any] = {'loss': [], 'map': [], 'aps': None}
    train_loss, step_cnt, step = 0.0, 0, 0
    model.train()
    for epoch in range(args.epochs):
        for data in train_loader:
            # BEGIN SOLUTION
            image = data['image'].to(device)
            target = data['label'].to(device)
            rois = torch.as_tensor(data['rois']).reshape(-1, 4).float()
            height, width = image.shape[-2:]
            scale = torch.tensor([width, height, width, height], dtype=torch.float32)
            model(image, (rois * scale).to(device), target)
            # END SOLUTION

            loss = model.loss
            train_loss += loss.item()
            step_cnt += 1
            optimizer.zero_grad()
            loss.backward()
            if logger is not None and step % args.disp_interval == 0:
                for name, param in model.named_parameters():
                    if param.grad is not None and any(k in name for k in ('features.3.', 'classifier.4.')):
                        logger.histogram(f'grad/{name}', param.grad, step)
            optimizer.step()
            scheduler.step()
            step += 1

            if step % args.disp_interval == 0:
                history['loss'].append(train_loss / step_cnt)
                if logger is not None:
                    logger.scalar('train/loss', train_loss / step_cnt, step)
                train_loss, step_cnt = 0.0, 0
            if args.val_interval and step % args.val_interval == 0:
                _evaluate(model, val_loader, history, logger, step, 0)
        _evaluate(model, val_loader, history, logger, step,
                  args.vis_images if epoch in (0, args.epochs - 1) else 0)
        print(f'epoch {epoch}: test mAP {history["map"][-1]:.4f}')
    return history


def _evaluate(model: torch.nn.Module, val_loader: Any, history: dict, logger: ExperimentLogger | None, step: int,
              vis_images: int) -> None:
    aps, mean_ap = test_model(model, val_loader, logger=logger, step=step, vis_images=vis_images)
    history['map'].append(mean_ap)
    history['aps'] = aps
    if logger is not None:
        logger.scalar('test/mAP', mean_ap, step)
        names = getattr(model, 'classes', VOCDataset.CLASS_NAMES)
        for cls, ap in enumerate(aps):
            if not np.isnan(ap):
                logger.scalar(f'test/AP_{names[cls]}', float(ap), step)


def load_pretrained(net: torch.nn.Module, path: str) -> list[str]:
    """Copy the entries of a state dict whose names and shapes match ``net``'s; returns the copied names."""
    state = load_alexnet_state_dict(path)
    own = net.state_dict()
    copied = [name for name, value in state.items() if name in own and own[name].shape == value.shape]
    own.update({name: state[name] for name in copied})
    net.load_state_dict(own)
    return copied


def main(argv: list[str] | None = None) -> dict:
    """Create the data loaders and the network, then train and test; returns the history and the model."""
    args = build_parser().parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device)

    train_dataset = VOCDataset(args.train_split, image_size=args.image_size, top_n=args.top_n, data_dir=args.data_dir)
    val_dataset = VOCDataset(args.val_split, image_size=args.image_size, top_n=args.top_n, data_dir=args.data_dir)
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=1, shuffle=True, num_workers=args.workers,
                                               generator=torch.Generator().manual_seed(args.seed))
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=1, shuffle=False, num_workers=args.workers)

    net = WSDDN(classes=train_dataset.CLASS_NAMES, hidden_dim=args.hidden_dim)
    copied = load_pretrained(net, args.pretrained) if args.pretrained and os.path.isfile(args.pretrained) else []
    if copied and args.freeze != 'none':
        frozen = ('features.0.',) if args.freeze == 'conv1' else ('features.',)
        for name, param in net.named_parameters():
            if name.startswith(frozen):
                param.requires_grad_(False)
    net.to(device)
    net.train()
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=args.lr,
                                momentum=args.momentum, weight_decay=args.weight_decay)
    logger = ExperimentLogger(args.log_dir, use_tensorboard=args.tensorboard, use_wandb=args.use_wandb,
                              project='vlr-hw1-wsddn', config=vars(args)) if (args.tensorboard or args.use_wandb) else None
    history = train_model(net, train_loader, val_loader, optimizer, args, logger)
    if logger is not None:
        logger.close()
    if history['aps'] is not None:
        for cls, ap in enumerate(history['aps']):
            print(f'AP for {net.classes[cls]} = {ap:.4f}')
        print(f'Mean AP = {history["map"][-1]:.4f}')
    return {'history': history, 'model': net}


if __name__ == '__main__':
    main()

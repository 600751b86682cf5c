"""Task 1: is object localization for free? (16-824 Fall 2022 ``task_1.py``, after Oquab et al. 2015).

A fully convolutional ``LocalizerAlexNet`` outputs one score map per class. Trained
only with image labels: global max pooling of each map gives an image-level score,
a sigmoid makes it a probability, and binary cross-entropy compares it with the
labels. The maps then show where the network finds each class.

Run (TensorBoard logs in ``--log-dir``; ``--wandb`` also logs to wandb, offline)::

    python task_1.py --data-dir data/VOCdevkit/VOC2007 --pretrained pretrained_alexnet.pth \\
        --epochs 30 -b 32 --lr 0.01 --image-size 512

Metrics (logged as ``train/metric1`` ... and ``validation/metric1`` ...):

* ``metric1``: mean average precision over the classes that have at least one
  positive (multi-label classification mAP, as scikit-learn's ``average_precision_score``);
* ``metric2``: recall at probability 0.5, micro-averaged over every (image, class)
  pair whose label is 1 (the fraction of present classes the model finds).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

# isort: split
from AlexNet import localizer_alexnet, localizer_alexnet_robust
from utils import ExperimentLogger, tensor_to_PIL  # noqa: F401  (tensor_to_PIL: for your own plots)
from voc_dataset import VOCDataset


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Weakly supervised localization with LocalizerAlexNet')
    parser.add_argument('--arch', default='localizer_alexnet', choices=['localizer_alexnet', 'localizer_alexnet_robust'])
    parser.add_argument('-j', '--workers', default=4, type=int, metavar='N', help='data loading workers')
    parser.add_argument('--epochs', default=30, type=int, metavar='N', help='number of epochs to run')
    parser.add_argument('--start-epoch', default=0, type=int, metavar='N', help='epoch to start from (restarts)')
    parser.add_argument('-b', '--batch-size', default=32, type=int, metavar='N', help='mini-batch size')
    parser.add_argument('--lr', '--learning-rate', default=0.01, type=float, metavar='LR', help='initial learning rate')
    parser.add_argument('--momentum', default=0.9, type=float, metavar='M', help='momentum')
    parser.add_argument('--weight-decay', '--wd', default=1e-4, type=float, metavar='W', help='weight decay')
    parser.add_argument('--lr-step', default=30, type=int, help='divide the learning rate by 10 every N epochs')
    parser.add_argument('--print-freq', '-p', default=10, type=int, metavar='N', help='print frequency (batches)')
    parser.add_argument('--eval-freq', default=2, type=int, metavar='N', help='evaluate every N epochs')
    parser.add_argument('--vis-freq', default=15, type=int, metavar='N', help='log heat maps every N epochs')
    parser.add_argument('--resume', default='', type=str, metavar='PATH', help='checkpoint to resume from')
    parser.add_argument('-e', '--evaluate', dest='evaluate', action='store_true', help='only evaluate')
    parser.add_argument('--pretrained', nargs='?', const=True, default=False,
                        help='initialise conv1-conv5 from AlexNet weights: a local file, or the default path')
    parser.add_argument('--data-dir', default='data/VOCdevkit/VOC2007/', help='the VOC2007 folder')
    parser.add_argument('--train-split', default='trainval')
    parser.add_argument('--val-split', default='test')
    parser.add_argument('--image-size', default=512, type=int, help='images are resized to this square size')
    parser.add_argument('--seed', default=0, type=int)
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto'")
    parser.add_argument('--log-dir', default='runs/task_1', help='TensorBoard / wandb folder')
    parser.add_argument('--checkpoint-dir', default='.', help='where checkpoints are written')
    parser.add_argument('--no-tensorboard', dest='tensorboard', action='store_false')
    parser.add_argument('--wandb', action='store_true', help='also log to wandb (offline mode)')
    parser.add_argument('--vis', action='store_true', help='log heat maps')
    return parser


def image_level_scores(output: Tensor) -> Tensor:
    """Global max pooling of class score maps.

    Args:
        output (Tensor[B, C, h, w]): score maps (raw scores).

    Returns:
        Tensor[B, C]: the largest score of each map (still raw: no sigmoid).
    """
    # BEGIN SOLUTION
    if output.dim() != 4:
        raise ValueError(f"expected score maps of shape [B, C, h, w], got {list(output.shape)}")
    return output.amax(dim=(2, 3))
    # END SOLUTION


def localization_loss(output: Tensor, target: Tensor) -> Tensor:
    """The training loss of Task 1: max-pool each map, sigmoid, binary cross-entropy.

    ``loss = mean over b, c of BCE(sigmoid(max_{y,x} output[b, c, y, x]), target[b, c])``.

    Args:
        output (Tensor[B, C, h, w]): score maps of the network.
        target (Tensor[B, C]): image labels, 1 when the class is present, else 0.

    Returns:
        Tensor[]: the loss, averaged over the ``B * C`` image-class pairs (differentiable).
    """
    # BEGIN SOLUTION
    return F.binary_cross_entropy_with_logits(image_level_scores(output), target.to(output.dtype))
    # END SOLUTION


def metric1(output: Tensor, target: Tensor) -> float:
    """Mean average precision of multi-label scores (the standard multi-label metric).

    For each class, rank the images by score and compute average precision as
    scikit-learn's ``average_precision_score`` does: ``AP = sum_n (R_n - R_{n-1}) P_n``
    over the distinct score thresholds (images with equal scores enter together, so
    all-equal scores give AP = fraction of positives). Average over the classes.

    Boundary cases:

    * a class with no positive image has no AP; it is left out of the mean;
    * when no class has a positive, the result is 0.0;
    * a class whose images are all positive has AP 1.

    Args:
        output (Tensor[B, C]): image-level scores (probabilities or raw scores: AP only
            depends on their order).
        target (Tensor[B, C]): labels, 1 (present) or 0.

    Returns:
        float: the mean AP in [0, 1].

    No Python loop over classes or images.
    """
    # BEGIN SOLUTION
    scores = torch.as_tensor(output).detach().to(torch.float64).cpu()
    labels = (torch.as_tensor(target).detach().cpu() > 0.5).to(torch.float64)
    if scores.dim() != 2 or scores.shape != labels.shape:
        raise ValueError(f"output and target must both be [B, C], got {list(scores.shape)} and {list(labels.shape)}")
    positives = labels.sum(dim=0)
    valid = positives > 0
    if not bool(valid.any()):
        return 0.0
    order = torch.sort(scores, dim=0, descending=True, stable=True).indices
    sorted_scores = scores.gather(0, order)
    sorted_labels = labels.gather(0, order)
    tp = sorted_labels.cumsum(dim=0)
    rank = torch.arange(1, scores.shape[0] + 1, dtype=torch.float64)[:, None]
    precision = tp / rank
    # A threshold sits at the last image of each run of equal scores; every image of the
    # run gets the precision measured there.
    run_end = torch.ones_like(sorted_scores, dtype=torch.bool)
    run_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    index = torch.where(run_end, torch.arange(scores.shape[0])[:, None], scores.shape[0])
    end = index.flip(0).cummin(dim=0).values.flip(0)
    ap = (sorted_labels * precision.gather(0, end)).sum(dim=0) / positives.clamp(min=1)
    return float(ap[valid].mean())
    # END SOLUTION


def metric2(output: Tensor, target: Tensor, threshold: float = 0.5) -> float:
    """Recall at probability ``threshold``, micro-averaged.

    A class is predicted present when its probability is at least ``threshold``
    (``output >= threshold``). ``metric2 = (number of (image, class) pairs with label 1
    that are predicted present) / (number of pairs with label 1)``, pooled over every
    image and class (scikit-learn's ``recall_score(target, output >= threshold,
    average='micro')``). When no label is 1 the result is 0.0.

    Args:
        output (Tensor[B, C]): probabilities in [0, 1] (after the sigmoid).
        target (Tensor[B, C]): labels, 1 (present) or 0.
        threshold (float): decision threshold.

    Returns:
        float: the recall in [0, 1].
    """
    # BEGIN SOLUTION
    scores = torch.as_tensor(output).detach().cpu()
    labels = torch.as_tensor(target).detach().cpu() > 0.5
    if scores.shape != labels.shape:
        raise ValueError(f"output and target must have the same shape, got {list(scores.shape)} and "
                         f"{list(labels.shape)}")
    positives = int(labels.sum())
    if positives == 0:
        return 0.0
    found = int((labels & (scores >= threshold)).sum())
    return found / positives
    # END SOLUTION


def upsample_heatmap(score_map: Tensor, size: tuple[int, int]) -> Tensor:
    """A class score map as a heat map at image resolution, with values in [0, 1].

    Resize with bilinear interpolation (``align_corners=False``) to ``size``, then
    rescale linearly so that the smallest value becomes 0 and the largest 1
    (min-max). A constant map (or a constant result, e.g. of size 1 x 1) gives all
    zeros (not the noise of rounding errors).

    Args:
        score_map (Tensor[h, w]): raw scores of one class.
        size (tuple[int, int]): ``(H, W)`` of the image.

    Returns:
        Tensor[H, W] (float32): the heat map.
    """
    # BEGIN SOLUTION
    if score_map.dim() != 2:
        raise ValueError(f"expected one score map of shape [h, w], got {list(score_map.shape)}")
    height, width = int(size[0]), int(size[1])
    values = score_map.detach().to(torch.float64)
    if float(values.max() - values.min()) == 0:  # constant: interpolation rounding is not a signal
        return torch.zeros(height, width, dtype=torch.float32, device=score_map.device)
    up = F.interpolate(values[None, None], size=(height, width), mode='bilinear', align_corners=False)[0, 0]
    low, high = up.min(), up.max()
    if float(high - low) == 0:  # e.g. a 1 x 1 result
        return torch.zeros(height, width, dtype=torch.float32, device=score_map.device)
    return ((up - low) / (high - low)).to(torch.float32)
    # END SOLUTION


def overlay_heatmap(image: Tensor, heatmap: Tensor, alpha: float = 0.5, cmap: str = 'jet') -> Tensor:
    """Blend a heat map, coloured with a matplotlib colour map, over an image.

    ``result = (1 - alpha) * image + alpha * colours`` where ``colours`` is the RGB of
    ``matplotlib.colormaps[cmap](heatmap)`` (the alpha channel of the colour map is dropped).

    Args:
        image (Tensor[3, H, W]): RGB in [0, 1] (undo the normalisation first).
        heatmap (Tensor[H, W]): values in [0, 1].
        alpha (float): weight of the heat map.
        cmap (str): a matplotlib colour map name.

    Returns:
        Tensor[3, H, W] (float32): the blended image, in [0, 1].
    """
    # BEGIN SOLUTION
    import matplotlib

    if image.dim() != 3 or image.shape[0] != 3 or image.shape[1:] != heatmap.shape:
        raise ValueError(f"expected image [3, H, W] and heatmap [H, W], got {list(image.shape)} and "
                         f"{list(heatmap.shape)}")
    colours = matplotlib.colormaps[cmap](heatmap.detach().cpu().numpy())[..., :3]
    colours = torch.from_numpy(np.ascontiguousarray(colours)).permute(2, 0, 1).to(torch.float32)
    return ((1 - alpha) * image.detach().cpu().float() + alpha * colours).clamp(0, 1)
    # END SOLUTION


def boxes_from_heatmap(heatmap: Tensor, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """Boxes around the blobs of a heat map: one box per connected region above a threshold.

    Pixels with ``heatmap >= threshold`` are grouped into connected components
    (8-connectivity: diagonal neighbours connect). Each component gives the box that
    just covers it, ``(x1, y1, x2, y2) = (min col, min row, max col + 1, max row + 1)``
    in pixel units (a pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``),
    scored by the largest heat-map value inside the component. A map with two separate
    blobs therefore gives two boxes.

    Args:
        heatmap (Tensor[H, W]): values in [0, 1] (see ``upsample_heatmap``).
        threshold (float): the level that separates object from background.

    Returns:
        tuple[Tensor[K, 4], Tensor[K]] (float32): boxes and scores, highest score first
        (equal scores: the component whose first pixel comes first in row-major order
        first). ``K = 0`` gives shapes ``[0, 4]`` and ``[0]``.

    No Python loop over pixels or components.
    """
    # BEGIN SOLUTION
    import scipy.ndimage

    if heatmap.dim() != 2:
        raise ValueError(f"expected a heat map of shape [H, W], got {list(heatmap.shape)}")
    values = heatmap.detach().cpu().float()
    components, count = scipy.ndimage.label((values >= threshold).numpy(), structure=np.ones((3, 3), dtype=int))
    if count == 0:
        return torch.zeros(0, 4), torch.zeros(0)
    components = torch.from_numpy(components)
    rows, cols = torch.nonzero(components, as_tuple=True)
    which = components[rows, cols].long() - 1

    def reduce(source: Tensor, how: str, start: float) -> Tensor:
        out = torch.full((count,), start, dtype=torch.float32)
        return out.scatter_reduce(0, which, source.float(), reduce=how, include_self=False)

    boxes = torch.stack([reduce(cols, 'amin', 0), reduce(rows, 'amin', 0),
                         reduce(cols, 'amax', 0) + 1, reduce(rows, 'amax', 0) + 1], dim=1)
    scores = reduce(values[rows, cols], 'amax', 0)
    order = torch.sort(scores, descending=True, stable=True).indices
    return boxes[order], scores[order]
    # END SOLUTION


class AverageMeter:
    """Computes and stores the average and current value."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.val = 0.0
        self.avg = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


def save_checkpoint(state: dict, is_best: bool, filename: str = 'checkpoint.pth.tar') -> None:
    torch.save(state, filename)
    if is_best:
        shutil.copyfile(filename, os.path.join(os.path.dirname(filename) or '.', 'model_best.pth.tar'))


def log_heatmaps(logger: ExperimentLogger | None, model: torch.nn.Module, images: Tensor, labels: Tensor,
                 step: int, tag: str) -> None:
    """Log each image and the heat map of its first ground-truth class (same images every time)."""
    if logger is None:
        return
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        maps = model(images.to(device)).cpu()
    model.train(was_training)
    for i in range(images.shape[0]):
        present = torch.nonzero(labels[i] > 0.5).flatten()
        cls = int(present[0]) if present.numel() else int(maps[i].amax(dim=(1, 2)).argmax())
        rgb = torch.from_numpy(np.asarray(tensor_to_PIL(images[i]), dtype=np.float32) / 255).permute(2, 0, 1)
        heat = upsample_heatmap(maps[i, cls], tuple(rgb.shape[1:]))
        logger.image(f'{tag}/image_{i}', rgb, step)
        logger.image(f'{tag}/image_{i}_heatmap_{VOCDataset.get_class_name(cls)}', overlay_heatmap(rgb, heat), step)


def train(train_loader: Any, model: torch.nn.Module, criterion: Any, optimizer: torch.optim.Optimizer, epoch: int,
          logger: ExperimentLogger | None = None, print_freq: int = 10) -> dict:
    """One epoch of training; returns the average loss, metric1 and metric2 of the epoch."""
    batch_time, data_time, losses, avg_m1, avg_m2 = (AverageMeter() for _ in range(5))
    device = next(model.parameters()).device
    model.train()
    end = time.time()
    for i, data in enumerate(train_loader):
        data_time.update(time.time() - end)
        # BEGIN SOLUTION
        input = data['image'].to(device)
        target = data['label'].to(device)
        output = model(input)
        imoutput = torch.sigmoid(image_level_scores(output))
        loss = criterion(output, target)
        # END SOLUTION

        m1 = metric1(imoutput.detach(), target)
        m2 = metric2(imoutput.detach(), target)
        losses.update(loss.item(), input.size(0))
        avg_m1.update(m1)
        avg_m2.update(m2)

        # BEGIN SOLUTION
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # END SOLUTION

        batch_time.update(time.time() - end)
        end = time.time()
        step = epoch * len(train_loader) + i
        if logger is not None:
            logger.scalar('train/loss', loss.item(), step)
            logger.scalar('train/metric1', m1, step)
            logger.scalar('train/metric2', m2, step)
        if print_freq and i % print_freq == 0:
            print(f'Epoch: [{epoch}][{i}/{len(train_loader)}]\t'
                  f'Time {batch_time.val:.3f} ({batch_time.avg:.3f})\t'
                  f'Data {data_time.val:.3f} ({data_time.avg:.3f})\t'
                  f'Loss {losses.val:.4f} ({losses.avg:.4f})\t'
                  f'Metric1 {avg_m1.val:.3f} ({avg_m1.avg:.3f})\t'
                  f'Metric2 {avg_m2.val:.3f} ({avg_m2.avg:.3f})')
    return {'loss': losses.avg, 'metric1': avg_m1.avg, 'metric2': avg_m2.avg}


def validate(val_loader: Any, model: torch.nn.Module, criterion: Any, epoch: int = 0,
             logger: ExperimentLogger | None = None, step: int | None = None) -> tuple[float, float]:
    """Loss, metric1 and metric2 on a whole split.

    Unlike the handout (which averages per-batch values), the metrics are computed once
    on the scores of every image, so they do not depend on the batch size.

    Returns:
        tuple[float, float]: (metric1, metric2).
    """
    device = next(model.parameters()).device
    model.eval()
    losses = AverageMeter()
    scores, targets = [], []
    with torch.no_grad():
        for data in val_loader:
            input = data['image'].to(device)
            target = data['label'].to(device)
            output = model(input)
            loss = criterion(output, target)
            losses.update(loss.item(), input.size(0))
            scores.append(torch.sigmoid(image_level_scores(output)).cpu())
            targets.append(target.cpu())
    scores_all, targets_all = torch.cat(scores), torch.cat(targets)
    m1, m2 = metric1(scores_all, targets_all), metric2(scores_all, targets_all)
    if logger is not None:
        step = epoch if step is None else step
        logger.scalar('validation/loss', losses.avg, step)
        logger.scalar('validation/metric1', m1, step)
        logger.scalar('validation/metric2', m2, step)
    print(f' * Loss {losses.avg:.4f} Metric1 {m1:.3f} Metric2 {m2:.3f}')
    return m1, m2


def _device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(name)


def main(argv: list[str] | None = None) -> dict:
    """Train (or evaluate) a localizer; returns the final metrics and the model."""
    args = build_parser().parse_args(argv)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = _device(args.device)

    factory = localizer_alexnet if args.arch == 'localizer_alexnet' else localizer_alexnet_robust
    model = factory(pretrained=args.pretrained).to(device)
    criterion = localization_loss
    optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step, gamma=0.1)

    best_score = 0.0
    if args.resume:
        checkpoint = torch.load(args.resume, map_location=device, weights_only=True)
        args.start_epoch = checkpoint['epoch']
        best_score = checkpoint['best_prec1']
        model.load_state_dict(checkpoint['state_dict'])
        optimizer.load_state_dict(checkpoint['optimizer'])

    train_dataset = VOCDataset(args.train_split, image_size=args.image_size, data_dir=args.data_dir)
    val_dataset = VOCDataset(args.val_split, image_size=args.image_size, data_dir=args.data_dir)
    generator = torch.Generator().manual_seed(args.seed)
    loader_options = {'batch_size': args.batch_size, 'num_workers': args.workers,
                      'pin_memory': device.type == 'cuda', 'collate_fn': collate_images}
    train_loader = torch.utils.data.DataLoader(train_dataset, shuffle=True, drop_last=True, generator=generator,
                                               **loader_options)
    val_loader = torch.utils.data.DataLoader(val_dataset, shuffle=False, drop_last=False, **loader_options)

    if args.evaluate:
        m1, m2 = validate(val_loader, model, criterion)
        return {'metric1': m1, 'metric2': m2, 'model': model}

    logger = ExperimentLogger(args.log_dir, use_tensorboard=args.tensorboard, use_wandb=args.wandb,
                              project='vlr-hw1', config=vars(args)) if (args.tensorboard or args.wandb) else None
    # The same images are shown at every logged epoch.
    vis_train = collate_images([train_dataset[i] for i in range(min(2, len(train_dataset)))])
    history: dict[str, list] = {'train': [], 'validation': []}
    m1 = m2 = 0.0
    for epoch in range(args.start_epoch, args.epochs):
        stats = train(train_loader, model, criterion, optimizer, epoch, logger, args.print_freq)
        scheduler.step()
        history['train'].append(stats)
        step = (epoch + 1) * len(train_loader)
        if args.vis and (epoch == 0 or (epoch + 1) % args.vis_freq == 0 or epoch == args.epochs - 1):
            log_heatmaps(logger, model, vis_train['image'], vis_train['label'], step, 'train_heatmaps')
        if epoch % args.eval_freq == 0 or epoch == args.epochs - 1:
            m1, m2 = validate(val_loader, model, criterion, epoch, logger, step)
            history['validation'].append({'epoch': epoch, 'metric1': m1, 'metric2': m2})
            score = m1 * m2
            is_best = score > best_score
            best_score = max(score, best_score)
            os.makedirs(args.checkpoint_dir, exist_ok=True)
            save_checkpoint({'epoch': epoch + 1, 'arch': args.arch, 'state_dict': model.state_dict(),
                             'best_prec1': best_score, 'optimizer': optimizer.state_dict()}, is_best,
                            os.path.join(args.checkpoint_dir, 'checkpoint.pth.tar'))
    if args.vis and len(val_dataset):
        picks = random.Random(args.seed).sample(range(len(val_dataset)), min(3, len(val_dataset)))
        vis_val = collate_images([val_dataset[i] for i in picks])
        log_heatmaps(logger, model, vis_val['image'], vis_val['label'], args.epochs, 'validation_heatmaps')
    if logger is not None:
        logger.close()
    return {'metric1': m1, 'metric2': m2, 'history': history, 'model': model}


def collate_images(items: list[dict]) -> dict:
    """Batch the image-level entries of ``VOCDataset`` items (boxes differ in number per image)."""
    return {'image': torch.stack([item['image'] for item in items]),
            'label': torch.stack([item['label'] for item in items]),
            'wgt': torch.stack([item['wgt'] for item in items])}


if __name__ == '__main__':
    main()

"""Train FCN32s (model A) or DeepLabv3 (model B) on the satellite set (provided by the course).

    python train.py --train_dir hw1_data/p3_data/train --val_dir hw1_data/p3_data/validation \
        --arch fcn32s --epochs 50 --batch_size 4 --lr 1e-3 --loss poly1 --out fcn32s.pt

Uses your ``seg_models``, ``seg_losses``, ``seg_metrics`` and ``seg_dataset``:
each epoch trains with Adam, then evaluates the pooled mIoU on the validation
folder and keeps the best checkpoint (``{"arch", "num_classes", "width", "model"}``,
which ``inference.py --checkpoint`` reads). ``--batch_norm`` trains FCN32s on a
VGG16-BN trunk: from random weights a plain VGG16 trunk trains very slowly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from mask_utils import SAT_CLASSES
from seg_dataset import JointTransform, SatelliteDataset
from seg_losses import cross_entropy_loss, poly1_loss
from seg_metrics import ConfusionMatrix, mean_iou
from seg_models import FCN32s, deeplabv3, segmentation_logits
from torch.utils.data import DataLoader


def build_model(arch: str, num_classes: int, width: float = 1.0, backbone_weights: str | None = None,
                batch_norm: bool = False):
    if arch == "fcn32s":
        return FCN32s(num_classes=num_classes, width=width, backbone_weights=backbone_weights, batch_norm=batch_norm)
    if arch == "deeplabv3":
        return deeplabv3(num_classes=num_classes, checkpoint=backbone_weights)
    raise ValueError(f"unknown arch {arch!r}; expected 'fcn32s' or 'deeplabv3'")


@torch.no_grad()
def validate(model, loader, num_classes: int, device: str) -> float:
    """Pooled mIoU of ``model`` over ``loader``."""
    model.eval()
    matrix = ConfusionMatrix(num_classes, device=device)
    for images, masks in loader:
        matrix.update(segmentation_logits(model, images.to(device)), masks.to(device))
    return mean_iou(matrix.matrix)


def fit(train_dir: str | Path, val_dir: str | Path, arch: str = "fcn32s", epochs: int = 10, batch_size: int = 4,
        lr: float = 1e-3, width: float = 1.0, loss: str = "poly1", epsilon: float = 1.0,
        image_size: tuple[int, int] | None = None, hflip: float = 0.5, seed: int = 0, device: str = "cpu",
        out: str | Path | None = None, backbone_weights: str | None = None, batch_norm: bool = False,
        lr_policy: str = "poly", log=print) -> dict:
    """Train and validate; return the history ``{"loss": [...], "miou": [...], "best_miou", "seconds"}``.

    ``lr_policy``: ``"poly"`` decays the learning rate every step as ``lr * (1 - step / steps) ** 0.9``
    (DeepLab's schedule); ``"constant"`` keeps it.
    """
    if lr_policy not in ("poly", "constant"):
        raise ValueError(f"lr_policy must be 'poly' or 'constant', got {lr_policy!r}")
    torch.manual_seed(seed)
    num_classes = len(SAT_CLASSES)
    generator = torch.Generator().manual_seed(seed)
    train_set = SatelliteDataset(train_dir, JointTransform(image_size, hflip=hflip, generator=generator))
    val_set = SatelliteDataset(val_dir, JointTransform(image_size))
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
    val_loader = DataLoader(val_set, batch_size=batch_size)
    model = build_model(arch, num_classes, width, backbone_weights, batch_norm).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps = max(1, epochs * len(train_loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, (lambda step: (1 - min(step, steps) / steps) ** 0.9) if lr_policy == "poly" else (lambda step: 1.0))
    history: dict = {"loss": [], "miou": [], "best_miou": float("nan")}
    start = time.perf_counter()
    best = -1.0
    for epoch in range(epochs):
        model.train()
        total, batches = 0.0, 0
        for images, masks in train_loader:
            logits = segmentation_logits(model, images.to(device))
            masks = masks.to(device)
            value = poly1_loss(logits, masks, epsilon) if loss == "poly1" else cross_entropy_loss(logits, masks)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            scheduler.step()
            total += float(value.detach())
            batches += 1
        miou = validate(model, val_loader, num_classes, device)
        history["loss"].append(total / max(batches, 1))
        history["miou"].append(miou)
        if miou > best:
            best = miou
            if out is not None:
                torch.save({"arch": arch, "num_classes": num_classes, "width": width, "batch_norm": batch_norm,
                            "model": model.state_dict()}, out)
        log(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}  val mIoU {miou:.4f}")
    history["best_miou"] = best
    history["seconds"] = time.perf_counter() - start
    history["model"] = model
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_dir", required=True)
    parser.add_argument("--val_dir", required=True)
    parser.add_argument("--arch", choices=("fcn32s", "deeplabv3"), default="fcn32s")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--loss", choices=("poly1", "ce"), default="poly1")
    parser.add_argument("--batch_norm", action="store_true", help="FCN32s on a VGG16-BN trunk")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--lr_policy", choices=("poly", "constant"), default="poly")
    parser.add_argument("--image_size", type=int, default=None, help="resize to a square of this side")
    parser.add_argument("--backbone_weights", default=None, help="local VGG16 / DeepLabv3 checkpoint")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="model.pt")
    args = parser.parse_args(argv)
    size = (args.image_size, args.image_size) if args.image_size else None
    history = fit(args.train_dir, args.val_dir, args.arch, args.epochs, args.batch_size, args.lr, args.width,
                  args.loss, args.epsilon, size, seed=args.seed, device=args.device, out=args.out,
                  backbone_weights=args.backbone_weights, batch_norm=args.batch_norm,
                  lr_policy=args.lr_policy)
    print(f"best val mIoU {history['best_miou']:.4f} in {history['seconds']:.0f} s; saved {args.out}")


if __name__ == "__main__":
    main()

"""The downstream settings A-E on Office-Home, as one table, with one command.

======= ===================================== ======================
setting pre-training on mini-ImageNet          fine-tuning on Office
======= ===================================== ======================
A       none (random initialisation)           full model
B       with labels (supervised backbone)      full model
C       without labels (BYOL backbone)         full model
D       with labels (supervised backbone)      frozen backbone
E       without labels (BYOL backbone)         frozen backbone
======= ===================================== ======================

    python settings_table.py --office hw1_data/p2_data/office --ssl-checkpoint byol_run/backbone_last.pth \\
        --supervised-checkpoint ta_backbone.pth --epochs 150 --out settings.md

Without ``--supervised-checkpoint`` (the TA's backbone), one is trained first on
the labels of ``--mini`` (``mini/train.csv``). The seed's downstream settings:
ResNet-50 + dropout + linear to 65 classes, the BYOL augmentation for training,
batch 64, Adam with lr 5e-4, cross-entropy, 150 epochs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from augmentations import byol_augmentation, eval_transform
from byol import resnet_backbone
from downstream import Classifier, build_classifier, build_optimizer, evaluate, train_one_epoch
from officehome import OfficeHomeDataset, read_office_csv
from torch.utils.data import DataLoader
from train_byol import save_backbone


@dataclass(frozen=True)
class Setting:
    """One row of the table: which backbone to start from and whether to freeze it."""

    name: str
    pretraining: str | None  # None, "supervised" or "ssl"
    freeze: bool
    description: str


SETTINGS = {
    "A": Setting("A", None, False, "no pre-training, train full model"),
    "B": Setting("B", "supervised", False, "w/ label (supervised backbone), train full model"),
    "C": Setting("C", "ssl", False, "w/o label (BYOL backbone), train full model"),
    "D": Setting("D", "supervised", True, "w/ label (supervised backbone), fix the backbone"),
    "E": Setting("E", "ssl", True, "w/o label (BYOL backbone), fix the backbone"),
}


def run_setting(name: str, office_root: str | Path, checkpoints: Mapping[str, str | Path], arch: str = "resnet50",
                epochs: int = 150, batch_size: int = 64, lr: float = 5e-4, image_size: int = 128,
                num_classes: int = 65, device: str = "cpu", seed: int = 0, workers: int = 0
                ) -> tuple[float, Classifier]:
    """Fine-tune and evaluate one setting of ``SETTINGS``.

    Seeds torch with ``seed``, then builds ``build_classifier(arch,
    checkpoint, num_classes, freeze_backbone=setting.freeze)`` where
    ``checkpoint`` is None for setting A and ``checkpoints[setting.pretraining]``
    otherwise (keys ``"supervised"`` and ``"ssl"``). Trains ``epochs`` epochs
    of ``train_one_epoch`` on ``office_root/train.csv`` (images in
    ``office_root/train``, transform ``byol_augmentation(image_size)``,
    shuffled batches of ``batch_size``) with ``build_optimizer(model, lr)``,
    then returns ``evaluate`` on ``office_root/val.csv`` (images in
    ``office_root/val``, transform ``eval_transform(image_size)``).
    ``epochs=0`` evaluates the classifier as built.

    Returns:
        tuple[float, Classifier]: the validation accuracy and the trained classifier.

    Raises:
        ValueError: for an unknown setting name (quoting it), or a missing
            checkpoint for the setting's pre-training (naming the key).
    """
    # BEGIN SOLUTION
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; expected one of {', '.join(SETTINGS)}")
    setting = SETTINGS[name]
    checkpoint = None
    if setting.pretraining is not None:
        checkpoint = checkpoints.get(setting.pretraining)
        if checkpoint is None:
            raise ValueError(f"setting {name} needs a {setting.pretraining!r} checkpoint; got keys "
                             f"{sorted(checkpoints)}")
    torch.manual_seed(seed)
    office_root = Path(office_root)
    model = build_classifier(arch, checkpoint, num_classes, freeze_backbone=setting.freeze).to(device)
    train_set = OfficeHomeDataset(office_root / "train.csv", office_root / "train", byol_augmentation(image_size),
                                  num_classes)
    val_set = OfficeHomeDataset(office_root / "val.csv", office_root / "val", eval_transform(image_size),
                                num_classes)
    train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, num_workers=workers,
                              drop_last=len(train_set) >= batch_size)
    val_loader = DataLoader(val_set, batch_size=batch_size, num_workers=workers)
    optimizer = build_optimizer(model, lr)
    for _ in range(epochs):
        train_one_epoch(model, train_loader, optimizer, device)
    return evaluate(model, val_loader, device), model
    # END SOLUTION


def pretrain_supervised(mini_root: str | Path, out_path: str | Path, arch: str = "resnet50", epochs: int = 30,
                        batch_size: int = 64, lr: float = 5e-4, image_size: int = 128, device: str = "cpu",
                        seed: int = 0, workers: int = 0) -> Path:
    """Train a backbone with the labels of ``mini_root/train.csv`` (a stand-in for the TA's backbone).

    Returns:
        Path: the saved backbone state dict (``save_backbone``).
    """
    torch.manual_seed(seed)
    mini_root = Path(mini_root)
    labels = [r.label for r in read_office_csv(mini_root / "train.csv", num_classes=10**9)]
    dataset = OfficeHomeDataset(mini_root / "train.csv", mini_root / "train", byol_augmentation(image_size),
                                num_classes=max(labels) + 1)
    backbone, feature_dim = resnet_backbone(arch)
    model = Classifier(backbone, feature_dim, max(labels) + 1).to(device)
    optimizer = build_optimizer(model, lr)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) >= batch_size,
                        num_workers=workers)
    for _ in range(epochs):
        train_one_epoch(model, loader, optimizer, device)
    return save_backbone(model.backbone, out_path)


def format_table(accuracies: Mapping[str, float]) -> str:
    """The settings' validation accuracies as a Markdown table, in the order A-E."""
    lines = ["| setting | pre-training (mini) | fine-tuning (office) | valid accuracy |",
             "| --- | --- | --- | --- |"]
    pretraining = {None: "none", "supervised": "w/ label (supervised)", "ssl": "w/o label (BYOL)"}
    for name, setting in SETTINGS.items():
        if name in accuracies:
            lines.append(f"| {name} | {pretraining[setting.pretraining]} | "
                         f"{'fix the backbone' if setting.freeze else 'train full model'} | {accuracies[name]:.4f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Office-Home settings A-E")
    parser.add_argument("--office", required=True, help="folder with train.csv, val.csv, train/ and val/")
    parser.add_argument("--ssl-checkpoint", required=True, help="BYOL backbone (train_byol.py's backbone_last.pth)")
    parser.add_argument("--supervised-checkpoint", help="supervised backbone (the TA's); trained if omitted")
    parser.add_argument("--mini", help="mini-ImageNet folder (train.csv, train/) to train the supervised backbone")
    parser.add_argument("--supervised-epochs", type=int, default=30)
    parser.add_argument("--settings", default="ABCDE")
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--num-classes", type=int, default=65)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="settings.md", help="where to write the Markdown table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    supervised = args.supervised_checkpoint
    if supervised is None and any(SETTINGS[s].pretraining == "supervised" for s in args.settings):
        if args.mini is None:
            raise SystemExit("settings B and D need --supervised-checkpoint or --mini to train one")
        supervised = pretrain_supervised(args.mini, Path(args.out).with_suffix(".supervised.pth"), args.arch,
                                         args.supervised_epochs, args.batch_size, args.lr, args.image_size,
                                         args.device, args.seed, args.workers)
    checkpoints = {"ssl": args.ssl_checkpoint, "supervised": supervised}
    accuracies = {}
    for name in args.settings:
        start = time.perf_counter()
        accuracies[name], _ = run_setting(name, args.office, checkpoints, args.arch, args.epochs, args.batch_size,
                                          args.lr, args.image_size, args.num_classes, args.device, args.seed,
                                          args.workers)
        print(f"setting {name}: valid accuracy {accuracies[name]:.4f} ({time.perf_counter() - start:.0f} s)")
    table = format_table(accuracies)
    Path(args.out).write_text(table, encoding="utf-8")
    print(table)
    return accuracies


if __name__ == "__main__":
    main()

"""Questions 2.2(b), 2.3(a), 2.4(b) and seed 004 P1: training, evaluation, logging, and the full report.

Train with Adam and cross-entropy (soft-target cross-entropy under mixup), log
loss and accuracy per epoch to TensorBoard and, optionally, to Weights & Biases
in *offline* mode (no account and no network needed; ``wandb sync`` uploads a
run later), then evaluate on the test split and write every plot of the report.

Run from this folder::

    python train.py --data-root data/russian-wildlife --model cnn --epochs 10 --image-size 224 --out runs/cnn
    python train.py --data-root ... --model resnet18 --weights resnet18-f37072fd.pth --out runs/resnet18
    python train.py --data-root ... --model resnet18 --augment --mixup-alpha 0.2 --out runs/resnet18_aug
    python train.py --data-root ... --model vgg13 --image-size 64 --augment --out runs/vgg13

TensorBoard: ``tensorboard --logdir runs``. The offline wandb run lives in
``<out>/wandb/offline-run-*``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence

import torch
from metrics import (
    accuracy,
    centroid_distances,
    class_centroids,
    confusion_matrix,
    f1_score,
    misclassified_per_class,
)
from mixup import sample_mixup, soft_target_cross_entropy
from models import build_model
from torch import Tensor, nn
from torch.utils.data import DataLoader
from visualize import (
    confusion_matrix_figure,
    pca,
    plot_class_distribution,
    plot_confusion_matrix,
    plot_embedding,
    plot_misclassified,
    plot_training_curves,
    tsne,
)
from wildlife_dataset import (
    CLASS_NAMES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    NUM_CLASSES,
    WildlifeDataset,
    build_transforms,
    class_counts,
    make_loaders,
)

SCALAR_TAGS = ("Loss/train", "Loss/val", "Accuracy/train", "Accuracy/val")
WANDB_KEYS = ("train/loss", "val/loss", "train/accuracy", "val/accuracy")


def get_device(name: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; any other name is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: str | torch.device = "cpu", mixup_alpha: float | None = None,
                    num_classes: int = NUM_CLASSES) -> dict[str, float]:
    """One pass over ``loader`` in training mode, one optimizer step per batch.

    Put the model in training mode; for each batch ``(images, labels)``: move it
    to ``device``, zero the gradients, compute the logits, the loss, backward,
    ``optimizer.step()``. The loss is ``nn.CrossEntropyLoss()`` (batch mean); with
    ``mixup_alpha`` the batch is first mixed with ``sample_mixup(images, labels,
    num_classes, mixup_alpha)`` and the loss is ``soft_target_cross_entropy``
    against the soft targets.

    Returns:
        ``{"loss": float, "accuracy": float}``: the loss averaged over samples
        (each batch's mean loss weighted by its size) and the fraction of samples
        whose arg-max logit equals their (un-mixed) label, both measured on the
        fly during the epoch.
    """
    raise NotImplementedError("TODO: train_one_epoch")


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu") -> dict:
    """Loss, accuracy and predictions of ``model`` on ``loader``, in evaluation mode without gradients.

    Returns:
        dict with ``"loss"`` (float: cross-entropy averaged over samples),
        ``"accuracy"`` (float), ``"preds"`` (Tensor[N] int64, arg-max of the
        logits, on the CPU) and ``"targets"`` (Tensor[N] int64, on the CPU), in
        the loader's order.
    """
    raise NotImplementedError("TODO: evaluate")


@torch.no_grad()
def extract_features(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu") -> tuple[Tensor, Tensor]:
    """Backbone features (``model.forward_features``) of every sample, in evaluation mode without gradients.

    Returns:
        (Tensor[N, D] float32, Tensor[N] int64): features and labels on the CPU, in the loader's order.
    """
    raise NotImplementedError("TODO: extract_features")


def fit(model: nn.Module, loaders: Mapping[str, DataLoader], epochs: int = 10, lr: float = 1e-3,
        device: str | torch.device = "cpu", log_dir: str | os.PathLike | None = None, use_wandb: bool = False,
        run_name: str = "run", mixup_alpha: float | None = None, num_classes: int = NUM_CLASSES,
        class_names: Sequence[str] = CLASS_NAMES, weight_decay: float = 0.0) -> dict[str, list[float]]:
    """Train ``model`` with Adam for ``epochs`` epochs; log every epoch, Q2.2(b).

    The optimizer is ``torch.optim.Adam`` over the parameters that require
    gradients (``lr``, ``weight_decay``). Each epoch: ``train_one_epoch`` on
    ``loaders["train"]``, then ``evaluate`` on ``loaders["val"]``.

    Logging, when ``log_dir`` is given:

    * TensorBoard (``torch.utils.tensorboard.SummaryWriter(log_dir)``): scalars
      ``Loss/train``, ``Loss/val``, ``Accuracy/train``, ``Accuracy/val`` at
      steps ``1..epochs``, and after the last epoch the validation confusion
      matrix as a figure under the tag ``confusion_matrix`` (``add_figure``);
    * with ``use_wandb``: an offline wandb run (``wandb.init(mode="offline",
      dir=log_dir, name=run_name)``; set the environment variables
      ``WANDB_MODE=offline`` and ``WANDB_ERROR_REPORTING=false`` before importing
      wandb, or it still sends telemetry) with ``train/loss``, ``val/loss``,
      ``train/accuracy``, ``val/accuracy`` and ``epoch`` per epoch and the
      validation confusion matrix (``wandb.plot.confusion_matrix``) at the end;
      the run is finished before returning.

    Returns:
        dict of lists (one value per epoch): ``train_loss``, ``train_accuracy``,
        ``val_loss``, ``val_accuracy`` (the values that were logged).
    """
    raise NotImplementedError("TODO: fit")


# ---------------------------------------------------------------------------
# The report: everything Q2 asks for, from one command (provided, not graded)
# ---------------------------------------------------------------------------

def _eval_loader(dataset: WildlifeDataset, size: int, batch_size: int) -> DataLoader:
    return DataLoader(WildlifeDataset(dataset.samples, build_transforms(False, size)), batch_size=batch_size)


def run_report(args: argparse.Namespace) -> dict:
    """Train one model and write the metrics and every figure of the report under ``args.out``."""
    torch.manual_seed(args.seed)
    device = get_device(args.device)
    out = args.out
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    loaders = make_loaders(args.data_root, args.batch_size, args.image_size, args.seed, augment=args.augment)
    counts = {name: class_counts(loader.dataset.targets) for name, loader in loaders.items()}
    plot_class_distribution(counts, CLASS_NAMES, os.path.join(out, "class_distribution.png"))
    model = build_model(args.model, NUM_CLASSES, args.image_size, weights_path=args.weights).to(device)
    history = fit(model, loaders, args.epochs, args.lr, device, os.path.join(out, "logs"), args.wandb,
                  run_name=f"{args.model}{'_aug' if args.augment else ''}", mixup_alpha=args.mixup_alpha)
    plot_training_curves(history, os.path.join(out, "curves.png"))
    train_time = time.perf_counter() - started

    test = evaluate(model, loaders["test"], device)
    preds, targets = test["preds"], test["targets"]
    cm = confusion_matrix(preds, targets, NUM_CLASSES)
    plot_confusion_matrix(cm, CLASS_NAMES, os.path.join(out, "confusion_matrix_test.png"))
    wrong = misclassified_per_class(preds, targets, NUM_CLASSES, k=3)
    chosen = [i for indices in wrong.values() for i in indices]
    test_set = loaders["test"].dataset
    if chosen:
        images = torch.stack([test_set[i][0] for i in chosen])
        plot_misclassified(images, targets[chosen], preds[chosen], CLASS_NAMES,
                           os.path.join(out, "misclassified.png"), IMAGENET_MEAN, IMAGENET_STD)

    train_features, train_labels = extract_features(model, _eval_loader(loaders["train"].dataset, args.image_size,
                                                                         args.batch_size), device)
    val_features, val_labels = extract_features(model, loaders["val"], device)
    test_features, _ = extract_features(model, loaders["test"], device)
    centroids = class_centroids(train_features, train_labels, NUM_CLASSES)
    distances = centroid_distances(test_features[chosen], targets[chosen], preds[chosen], centroids) \
        if chosen else torch.zeros(0, 2)
    with open(os.path.join(out, "centroid_distances.csv"), "w") as fh:
        fh.write("test_index,true_class,predicted_class,distance_to_true_centroid,distance_to_predicted_centroid\n")
        for index, row in zip(chosen, distances.tolist()):
            to_pred = "NA" if row[1] != row[1] else f"{row[1]:.4f}"
            fh.write(f"{index},{CLASS_NAMES[int(targets[index])]},{CLASS_NAMES[int(preds[index])]},"
                     f"{row[0]:.4f},{to_pred}\n")

    limit = args.tsne_samples
    both = torch.cat([train_features, val_features])[:limit]
    both_labels = torch.cat([train_labels, val_labels])[:limit]
    plot_embedding(tsne(both, 2, args.seed), both_labels, CLASS_NAMES, os.path.join(out, "tsne_train_val_2d.png"),
                   "t-SNE of train + val features (2-D)")
    plot_embedding(tsne(val_features[:limit], 3, args.seed), val_labels[:limit], CLASS_NAMES,
                   os.path.join(out, "tsne_val_3d.png"), "t-SNE of val features (3-D)")
    plot_embedding(pca(val_features, 2), val_labels, CLASS_NAMES, os.path.join(out, "pca_val_2d.png"),
                   "PCA of val features")

    report = {
        "model": args.model, "epochs": args.epochs, "augment": args.augment, "mixup_alpha": args.mixup_alpha,
        "history": history, "test_accuracy": test["accuracy"],
        "test_f1_macro": f1_score(preds, targets, NUM_CLASSES, "macro"),
        "test_f1_weighted": f1_score(preds, targets, NUM_CLASSES, "weighted"),
        "confusion_matrix": cm.tolist(), "train_seconds": round(train_time, 1),
        "total_seconds": round(time.perf_counter() - started, 1), "device": str(device),
    }
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(report, fh, indent=2)
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder with one sub-folder per class")
    parser.add_argument("--model", choices=("cnn", "resnet18", "vgg13"), default="cnn")
    parser.add_argument("--weights", default=None, help="local torchvision ResNet-18 checkpoint (resnet18 only)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--mixup-alpha", type=float, default=None)
    parser.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=False,
                        help="also log to an offline Weights & Biases run")
    parser.add_argument("--tsne-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/wildlife")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    report = run_report(parse_args(argv))
    print(json.dumps({k: v for k, v in report.items() if k not in ("history", "confusion_matrix")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

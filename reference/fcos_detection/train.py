"""Train and evaluate your FCOS detector.

Usage (from the ``detection`` folder)::

    python train.py --visualize_gt            # GT boxes of a few training images -> TensorBoard
    python train.py --overfit                 # overfit a small subset (the default; loss curve)
    python train.py --overfit=False           # full training (same as --no-overfit)
    python train.py --inference --test_inference   # train, then log example detections
    python train.py --overfit=False --inference    # train, then compute VOC mAP on val

Boolean flags are real: ``--overfit``, ``--overfit=true``, ``--overfit false``
and ``--no-overfit`` all do what they say (the original script's
``type=bool`` turned ``--overfit=False`` into True).

No network is needed: ``--synthetic`` writes a small VOC-format dataset of
coloured shapes into ``--data_dir`` when it has no data (needs the ``cvgrade``
package), and ``--backbone_weights`` takes a local RegNet checkpoint.

Logs go to TensorBoard (``--log_dir``): ``train/loss_cls``, ``train/loss_box``,
``train/loss_ctr``, ``train/total_loss``, ``train/lr``, ``train/gt_images`` and
``test/detections``; the loss curve is saved as ``loss.png``, the class-wise AP
as ``mAP.png`` and the weights as ``--checkpoint``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field

import torch
from detection_helper import (
    VOC2007DetectionTiny,
    detection_visualizer,
    evaluate_detector,
    inference_with_detector,
    inverse_normalize,
    train_detector,
)
from one_stage_detector import FCOS

NUM_CLASSES = 20
BATCH_SIZE = 16
IMAGE_SHAPE = (224, 224)
NUM_WORKERS = 0
DATASET_PATH = "../data"


@dataclass
class HyperParameters:
    """Hyperparameters for training."""

    num_classes: int = NUM_CLASSES
    batch_size: int = BATCH_SIZE
    num_workers: int = NUM_WORKERS
    image_shape: tuple = IMAGE_SHAPE
    lr: float = 8e-3
    log_period: int = 100
    max_iters: int = 9000
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    fpn_channels: int = 64
    stem_channels: list = field(default_factory=lambda: [64, 64])


def str2bool(value: str | bool) -> bool:
    """``"true"``/``"false"`` (and yes/no, 1/0, on/off) as a bool; argparse's ``type`` for flags."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes", "y", "on"):
        return True
    if text in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    """``--name`` (True), ``--name=VALUE`` / ``--name VALUE`` (parsed by ``str2bool``) and ``--no-name`` (False)."""
    dest = name.replace("-", "_")
    parser.add_argument(f"--{name}", dest=dest, type=str2bool, nargs="?", const=True, default=default,
                        metavar="BOOL", help=f"{help} (default: {default})")
    parser.add_argument(f"--no-{name}", dest=dest, action="store_false", help=f"same as --{name}=false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_bool_flag(parser, "overfit", True, "train on a small subset of the training set")
    add_bool_flag(parser, "visualize_gt", False, "log a few training images with their GT boxes, then stop")
    add_bool_flag(parser, "inference", False, "after training, run inference")
    add_bool_flag(parser, "test_inference", False,
                  "inference on 10 images logged to TensorBoard instead of mAP on the whole set")
    add_bool_flag(parser, "synthetic", False, "write a synthetic VOC-format dataset to --data_dir if it has none")
    add_bool_flag(parser, "progress", True, "show progress bars")
    parser.add_argument("--data_dir", default=DATASET_PATH, help="voc07_{split}.json + images, or a VOC2007 folder")
    parser.add_argument("--image_size", type=int, default=IMAGE_SHAPE[0])
    parser.add_argument("--batch_size", type=int, default=BATCH_SIZE)
    parser.add_argument("--num_workers", type=int, default=NUM_WORKERS)
    parser.add_argument("--subset_size", type=int, default=BATCH_SIZE * 10,
                        help="images of the overfitting subset")
    parser.add_argument("--max_iters", type=int, default=None, help="default: 250 (overfit) / 9000 (full)")
    parser.add_argument("--lr", type=float, default=None, help="default: 5e-3 (overfit) / 8e-3 (full)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                        help="SGD with momentum (the course's) or Adam (fits from random weights much faster)")
    parser.add_argument("--eval_period", type=int, default=0,
                        help="every N iterations log the mAP (training subset with --overfit, else val); 0: never")
    parser.add_argument("--log_period", type=int, default=None)
    parser.add_argument("--fpn_channels", type=int, default=64)
    parser.add_argument("--stem_channels", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--backbone_weights", default=None, help="local RegNet-X-400MF checkpoint (default: random)")
    parser.add_argument("--checkpoint", default="fcos_detector.pt", help="where the trained weights are saved")
    parser.add_argument("--load_checkpoint", default=None, help="start from these weights (skips training "
                        "when --max_iters 0)")
    parser.add_argument("--log_dir", default="detection_logs")
    parser.add_argument("--device", default=HyperParameters.device)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_threads", type=int, default=0,
                        help="CPU threads of torch (0: torch's default; 1 is fastest on a busy shared machine)")
    parser.add_argument("--score_thresh", type=float, default=None, help="default: 0.7 (test) / 0.05 (mAP)")
    parser.add_argument("--nms_thresh", type=float, default=0.5)
    parser.add_argument("--use_07_metric", action="store_true", help="VOC2007 11-point AP")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def create_dataset_and_dataloaders(data_dir: str, subset: bool = False, image_size: int = IMAGE_SHAPE[0],
                                   batch_size: int = BATCH_SIZE, num_workers: int = NUM_WORKERS,
                                   subset_size: int = BATCH_SIZE * 10):
    """Train and val datasets and loaders; with ``subset``, ``subset_size`` evenly spaced training images."""
    train_dataset = VOC2007DetectionTiny(data_dir, "train", image_size=image_size)
    if subset:
        count = min(subset_size, len(train_dataset))
        indices = torch.linspace(0, len(train_dataset) - 1, steps=count).round().long().unique()
        train_dataset = torch.utils.data.Subset(train_dataset, indices.tolist())
    val_dataset = VOC2007DetectionTiny(data_dir, "val", image_size=image_size, keep_difficult=True)
    generator = torch.Generator().manual_seed(0)
    train_loader = torch.utils.data.DataLoader(train_dataset, batch_size=batch_size, shuffle=True,
                                               num_workers=num_workers, generator=generator, drop_last=False)
    # batch_size = 1 at inference: images are not padded to a common size.
    val_loader = torch.utils.data.DataLoader(val_dataset, batch_size=1, num_workers=num_workers)
    return train_loader, val_loader, train_dataset, val_dataset


def visualize_gt(train_dataset, val_dataset, log_dir: str = "detection_logs", count: int = 3) -> torch.Tensor:
    """Log ``count`` training images with their GT boxes to TensorBoard (``train/gt_images``)."""
    from torch.utils.tensorboard import SummaryWriter
    from torchvision.utils import make_grid

    pictures = []
    for index in range(min(count, len(train_dataset))):
        _, image, gt_boxes = train_dataset[index]
        valid = gt_boxes[:, 4] >= 0
        pictures.append(torch.from_numpy(detection_visualizer(inverse_normalize(image), val_dataset.idx_to_class,
                                                              gt_boxes[valid])))
    grid = make_grid(pictures, nrow=8)
    with SummaryWriter(log_dir) as writer:
        writer.add_image("train/gt_images", grid, global_step=0)
    return grid


def save_loss_plot(history: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    iters = [h["iter"] for h in history]
    for key in ("total", "loss_cls", "loss_box", "loss_ctr"):
        ax.plot(iters, [h[key] for h in history], label=key)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend(loc="upper right")
    evaluated = [h for h in history if "mAP" in h]
    if evaluated:
        twin = ax.twinx()
        twin.plot([h["iter"] for h in evaluated], [h["mAP"] for h in evaluated], "k--o", label="mAP@0.5")
        twin.set_ylabel("mAP@0.5")
        twin.set_ylim(0, 1)
        twin.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_map_plot(ap: torch.Tensor, mean_ap: float, idx_to_class: dict[int, str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [idx_to_class[i] for i in range(len(ap)) if not math.isnan(float(ap[i]))]
    values = [float(a) for a in ap if not math.isnan(float(a))]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.5))
    ax.barh(names, values)
    ax.set_xlim(0, 1)
    ax.set_title(f"mAP@0.5 = {mean_ap:.3f}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def ensure_synthetic_data(data_dir: str, seed: int = 0) -> None:
    """Write a synthetic VOC-format dataset of coloured shapes to ``data_dir`` unless it has data."""
    if os.path.exists(os.path.join(data_dir, "voc07_train.json")):
        return
    try:
        from grader.data.fcos_detection import make_detection_voc
    except ImportError as exc:  # a student's copy without the grader package
        raise SystemExit("--synthetic needs the cvgrade package (grader.data.fcos_detection)") from exc
    make_detection_voc(data_dir, {"train": 64, "val": 16}, seed=seed)


def main(args: argparse.Namespace) -> dict:
    """Run what the flags ask for; returns a summary (losses, mAP) for scripts and tests."""
    torch.manual_seed(args.seed)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    if args.synthetic:
        ensure_synthetic_data(args.data_dir, args.seed)
    print("Loading data...")
    if args.overfit:
        print("Loading a small subset for overfitting.")
    train_loader, val_loader, train_dataset, val_dataset = create_dataset_and_dataloaders(
        args.data_dir, args.overfit, args.image_size, args.batch_size, args.num_workers, args.subset_size)
    summary: dict = {"overfit": args.overfit}
    if args.visualize_gt:
        print("Visualizing GT...")
        visualize_gt(train_dataset, val_dataset, args.log_dir)
        return summary

    defaults = HyperParameters(max_iters=250, lr=5e-3, log_period=10) if args.overfit else HyperParameters()
    hyperparams = HyperParameters(
        batch_size=args.batch_size, num_workers=args.num_workers, image_shape=(args.image_size, args.image_size),
        lr=args.lr if args.lr is not None else defaults.lr,
        max_iters=args.max_iters if args.max_iters is not None else defaults.max_iters,
        log_period=args.log_period if args.log_period is not None else defaults.log_period,
        device=args.device, fpn_channels=args.fpn_channels, stem_channels=list(args.stem_channels))
    # The course's FCOS takes (num_classes, fpn_channels, stem_channels) only: the trunk's weights are passed
    # when asked for, so that a student's starter-API FCOS runs with this script.
    extra = {"backbone_weights": args.backbone_weights} if args.backbone_weights else {}
    detector = FCOS(num_classes=NUM_CLASSES, fpn_channels=hyperparams.fpn_channels,
                    stem_channels=hyperparams.stem_channels, **extra)
    if args.load_checkpoint:
        detector.load_state_dict(torch.load(args.load_checkpoint, map_location="cpu", weights_only=True))

    # The overfitting check is about the training subset itself; full training is judged on val.
    evaluated = train_dataset if args.overfit else val_dataset

    def current_map(model: torch.nn.Module) -> float:
        return evaluate_detector(model, evaluated, NUM_CLASSES, score_thresh=0.05, nms_thresh=args.nms_thresh,
                                 use_07_metric=args.use_07_metric, device=hyperparams.device, progress=False)[1]

    if hyperparams.max_iters > 0:
        print("Training model...")
        history = train_detector(detector, train_loader, learning_rate=hyperparams.lr,
                                 max_iters=hyperparams.max_iters, log_period=hyperparams.log_period,
                                 overfit=args.overfit, device=hyperparams.device, log_dir=args.log_dir,
                                 checkpoint_path=args.checkpoint, checkpoint_period=max(1, hyperparams.max_iters // 5),
                                 progress=args.progress, optimizer=args.optimizer,
                                 eval_fn=current_map if args.eval_period else None, eval_period=args.eval_period)
        summary["history"] = history
        os.makedirs(args.log_dir, exist_ok=True)
        save_loss_plot(history, os.path.join(args.log_dir, "loss.png"))
        print(f"Training complete! Loss curve saved to {os.path.join(args.log_dir, 'loss.png')}")
    if not args.inference:
        return summary

    print("Running inference...")
    if args.test_inference:
        small = torch.utils.data.Subset(val_dataset, torch.linspace(0, len(val_dataset) - 1, steps=min(
            10, len(val_dataset))).round().long().unique().tolist())
        loader = torch.utils.data.DataLoader(small, batch_size=1, num_workers=args.num_workers)
        inference_with_detector(detector, loader, val_dataset.idx_to_class,
                                score_thresh=args.score_thresh if args.score_thresh is not None else 0.7,
                                nms_thresh=args.nms_thresh, device=hyperparams.device, log_dir=args.log_dir,
                                progress=args.progress)
        print(f"Example detections logged to TensorBoard in {args.log_dir} (test/detections)")
        return summary
    ap, mean_ap = evaluate_detector(detector, evaluated, NUM_CLASSES,
                                    score_thresh=args.score_thresh if args.score_thresh is not None else 0.05,
                                    nms_thresh=args.nms_thresh, use_07_metric=args.use_07_metric,
                                    device=hyperparams.device, progress=args.progress)
    summary["ap"] = [None if math.isnan(float(a)) else float(a) for a in ap]
    summary["map"] = mean_ap
    os.makedirs(args.log_dir, exist_ok=True)
    save_map_plot(ap, mean_ap, val_dataset.idx_to_class, os.path.join(args.log_dir, "mAP.png"))
    with open(os.path.join(args.log_dir, "mAP.json"), "w") as fh:
        json.dump({"map": mean_ap, "ap": dict(zip(val_dataset.idx_to_class.values(), summary["ap"]))}, fh, indent=1)
    print(f"mAP@0.5 ({'training subset' if args.overfit else 'val'}): {mean_ap:.4f}")
    return summary


if __name__ == "__main__":
    main(parse_args())

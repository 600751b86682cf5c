"""Inference: colour-coded masks for a folder of satellite images, and streaming evaluation.

Command line (DLCV hw1 P3's ``hw1_3.sh`` calls it)::

    python inference.py --input_dir hw1_data/p3_data/validation --output_dir out \
        --checkpoint fcn32s.pt

writes ``out/xxxx_mask.png`` for every ``xxxx_sat.jpg`` of the input folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from mask_utils import IGNORE_INDEX, write_mask
from PIL import Image
from seg_dataset import normalize, to_float_image
from seg_metrics import ConfusionMatrix, per_image_iou
from seg_models import FCN32s, deeplabv3, segmentation_logits
from torch import Tensor, nn
from tqdm import tqdm


@torch.no_grad()
def predict_image(model: nn.Module, image: Tensor, image_size: tuple[int, int] | None = None) -> Tensor:
    """Class of every pixel of one image.

    Args:
        model: a segmentation model in eval mode (tensor or ``{"out": ...}`` output).
        image (Tensor[3, H, W], float32): the image in [0, 1], not yet normalised.
        image_size ((int, int) | None): resize the image (bilinearly) to this size for
            the model, then resize the logits (bilinearly) back to ``H x W`` before
            the argmax; None feeds the image as it is.

    Returns:
        Tensor[H, W] (int64): argmax classes.
    """
    raise NotImplementedError("TODO: predict_image")


def predict_folder(model: nn.Module, input_dir: str | Path, output_dir: str | Path,
                   image_size: tuple[int, int] | None = None, progress: bool = True) -> list[Path]:
    """Write ``xxxx_mask.png`` in ``output_dir`` for every ``xxxx_sat.jpg`` of ``input_dir``.

    Each image is read as RGB, scaled to [0, 1], normalised with the ImageNet
    mean/std (``seg_dataset.normalize``), run through ``model`` in eval mode
    without gradients (``predict_image``) and its argmax written with
    ``mask_utils.write_mask`` (the satellite colour code, same size as the
    image). Other files are ignored. A tqdm progress bar (on stderr) counts the
    images unless ``progress`` is False. ``output_dir`` is created if needed.

    Args:
        model: a segmentation model whose classes are the satellite classes.
        input_dir: folder of ``xxxx_sat.jpg`` images.
        output_dir: where the masks go.
        image_size ((int, int) | None): see ``predict_image``.
        progress (bool): show the progress bar.

    Returns:
        list[Path]: the written files, in sorted image-name order.
    """
    raise NotImplementedError("TODO: predict_folder")


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, ignore_index: int = IGNORE_INDEX,
             logits_map=None) -> tuple[Tensor, Tensor]:
    """Run a model over a loader; accumulate the confusion matrix and per-image IoUs.

    Only the ``C x C`` matrix and an ``[N, C]`` table of per-image IoUs are kept,
    never the masks.

    Args:
        model: a segmentation model (put in eval mode here).
        loader: iterable of ``(images Tensor[B, 3, H, W], masks Tensor[B, H, W])``.
        num_classes (int): C.
        ignore_index (int): target label to leave out.
        logits_map (callable | None): applied to the logits before the argmax,
            e.g. ``mask_utils.cityscapes_logits_to_idd`` for a Cityscapes model on IDD.

    Returns:
        (Tensor[C, C] int64, Tensor[N, C] float64): the confusion matrix (on the CPU)
        and the per-image IoUs (``seg_metrics.per_image_iou``) in loader order.
    """
    raise NotImplementedError("TODO: evaluate")


def load_model(checkpoint: str | Path) -> nn.Module:
    """A model from a ``train.py`` checkpoint: ``{"arch", "num_classes", "width", "batch_norm", "model"}``."""
    info = torch.load(checkpoint, map_location="cpu", weights_only=True)
    arch = info.get("arch", "fcn32s")
    if arch == "fcn32s":
        model = FCN32s(num_classes=int(info.get("num_classes", 7)), width=float(info.get("width", 1.0)),
                       batch_norm=bool(info.get("batch_norm", False)))
        model.load_state_dict(info["model"])
    elif arch == "deeplabv3":
        model = deeplabv3(num_classes=int(info.get("num_classes", 7)), checkpoint=checkpoint)
    else:
        raise ValueError(f"{checkpoint}: unknown arch {arch!r}; expected 'fcn32s' or 'deeplabv3'")
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write xxxx_mask.png for every xxxx_sat.jpg of a folder.")
    parser.add_argument("--input_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    model = load_model(args.checkpoint).to(args.device)
    predict_folder(model, args.input_dir, args.output_dir)


if __name__ == "__main__":
    main()


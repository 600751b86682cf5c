"""What the voc_classification suite needs to grade the S24 starter through its own entry points.

* ``LossCase`` and ``REDUCTIONS``: a fixed training set for ``trainer.train`` (the
  logits the model will produce, labels, weights, batch size) and every reduction
  of the weighted binary cross-entropy that the handout's "a suitable loss function
  ... a single floating point number" admits, with their gradients;
  ``matching_reduction`` and ``describe_mismatch`` judge what ``train()`` logged;
* ``voc_root``, ``find_key``, ``head_of``: where the starter's dataset looks, and
  how to find torchvision's ResNet-18 tensors and the new head in a student's model.

Pure functions of tensors and dicts: the public tests import them, and nothing
here needs the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grader.compare import GradingFailure

NUM_CLASSES = 20
# The images of the fixed training set: 3 x 4 x 4, image i is 1 at flat position i (so a bias-free
# Linear(48, 20) maps image i to column i of its weight: the test picks every logit).
IMAGE_SHAPE = (3, 4, 4)
IMAGE_FEATURES = 48


def voc_root(base: Path | str) -> Path:
    """Where the starter's ``VOCDataset`` looks by default, below ``base``: ``data/VOCdevkit/VOC2007``."""
    return Path(base) / "data" / "VOCdevkit" / "VOC2007"


def _terms(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each entry, float64, exact for any logit."""
    x, y = logits.double(), labels.double()
    return x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x.abs()))


# The reductions the handout's "a suitable loss function ... a single floating point number" admits.
# name -> (value of a batch, gradient of a batch) from float64 logits, labels and weights [n, C].
def _mean(x, y, w):
    return (w * _terms(x, y)).sum() / x.numel(), w * (torch.sigmoid(x.double()) - y) / x.numel()


def _over_weights(x, y, w):
    return (w * _terms(x, y)).sum() / w.sum(), w * (torch.sigmoid(x.double()) - y) / w.sum()


def _per_image_sum(x, y, w):
    return (w * _terms(x, y)).sum() / x.shape[0], w * (torch.sigmoid(x.double()) - y) / x.shape[0]


def _per_image_weighted_mean(x, y, w):
    per_image = w.sum(1, keepdim=True).clamp(min=1e-12)
    return ((w * _terms(x, y)).sum(1, keepdim=True) / per_image).mean(), \
        w * (torch.sigmoid(x.double()) - y) / per_image / x.shape[0]


REDUCTIONS = {
    "the mean over all N x C entries": _mean,
    "the weighted sum over the sum of the weights": _over_weights,
    "the sum over classes, averaged over the images": _per_image_sum,
    "each image's weighted mean, averaged over the images": _per_image_weighted_mean,
}


@dataclass
class LossCase:
    """A fixed training set for ``train()``: logits the model will produce, labels, weights, batch size."""

    logits: torch.Tensor  # [n, 20] float32
    labels: torch.Tensor  # [n, 20]
    weights: torch.Tensor  # [n, 20]
    batch_size: int
    description: str

    @property
    def batches(self) -> list[slice]:
        n = self.logits.shape[0]
        return [slice(start, min(start + self.batch_size, n)) for start in range(0, n, self.batch_size)]

    def expected(self, reduction: str, batch: slice) -> tuple[float, torch.Tensor]:
        value, grad = REDUCTIONS[reduction](self.logits[batch].double(), self.labels[batch].double(),
                                            self.weights[batch].double())
        return float(value), grad


@dataclass
class TrainRun:
    """What the student's ``train()`` did on a ``LossCase``.

    Attributes:
        losses: the logged ``Loss/train`` values, in order ([] when the trainer logs none).
        logged_through: where they came from ("SummaryWriter" or "event files"), or "" when none.
        last_grad: d loss / d logits of the images of the last batch [b, 20] (from the gradient of
            the model's weight after training; the optimiser changes nothing).
        call: how train() was called, for messages.
        error: the student's exception, when train() raised.
    """

    losses: list[float] = field(default_factory=list)
    logged_through: str = ""
    last_grad: torch.Tensor | None = None
    call: str = ""
    error: Exception | None = None  # a grader.sandbox.client.StudentCodeError

    def raise_error(self) -> None:
        if self.error is not None:
            raise GradingFailure(f"Called {self.call}\nYour train() raised {self.error.type_name}: "
                                 f"{self.error.message}") from None


def matching_reduction(run: TrainRun, case: LossCase, *, rtol: float = 1e-4, atol: float = 1e-6) -> str | None:
    """The first accepted reduction that every logged value and the last batch's gradient agree with."""
    for name in REDUCTIONS:
        if run.losses:
            expected = [case.expected(name, batch)[0] for batch in case.batches]
            if len(run.losses) != len(expected) or not all(
                    math.isclose(got, want, rel_tol=rtol, abs_tol=atol) for got, want in zip(run.losses, expected)):
                continue
        if run.last_grad is not None:
            _, grad = case.expected(name, case.batches[-1])
            if not torch.allclose(run.last_grad, grad, rtol=rtol, atol=atol * 0.1):
                continue
        else:
            continue
        return name
    return None


def describe_mismatch(run: TrainRun, case: LossCase) -> str:
    """What the student's loss gave, against the mean-over-entries reading, in words."""
    lines = []
    reference = "the mean over all N x C entries"
    if run.losses:
        expected = [round(case.expected(reference, b)[0], 6) for b in case.batches]
        lines.append(f"Loss/train logged {[round(v, 6) for v in run.losses]}; the weighted binary cross-entropy "
                     f"({reference}) is {expected}")
    else:
        lines.append("train() logged no 'Loss/train' (the starter logs it with writer.add_scalar every log_every "
                     "iterations): only the gradient could be checked")
    if run.last_grad is None:
        lines.append("the model received no gradient (loss.backward() must run on the loss)")
    else:
        _, grad = case.expected(reference, case.batches[-1])
        diff = (run.last_grad - grad).abs()
        row, col = divmod(int(diff.argmax()), diff.shape[1])
        lines.append(f"d loss / d logit of the last batch: largest difference at image {row}, class {col}: got "
                     f"{run.last_grad[row, col].item():.6g}, the mean-over-entries reading gives "
                     f"{grad[row, col].item():.6g}")
    lines.append("Accepted: sum of w * BCE(x, y) over the batch divided by N x C, by the sum of the weights, by N, "
                 "or each image's weighted mean averaged over the images.")
    return "\n".join(lines)


# -- ResNet helpers -------------------------------------------------------------------------------------

def find_key(keys, suffix):
    """The key equal to ``suffix`` or, failing that, the shortest ending with ``.suffix`` (resnet18 may be wrapped,
    e.g. as ``self.resnet``: ``conv1.weight`` is then ``resnet.conv1.weight``, not ``resnet.layer1.0.conv1.weight``)."""
    found = sorted((k for k in keys if k == suffix or k.endswith("." + suffix)), key=len)
    return found[0] if found else None


def head_of(info: dict, num_classes: int) -> tuple[str | None, tuple | None]:
    """The module name and weight shape of the last Linear with ``num_classes`` outputs (the new head)."""
    shapes = {name: tuple(shape) for name, shape, *_ in info["parameters"]}
    linear = [name for name, kind in info["modules"] if kind.rsplit(".", 1)[-1] == "Linear"]
    for name in reversed(linear):
        shape = shapes.get(f"{name}.weight" if name else "weight")
        if shape is not None and shape[0] == num_classes:
            return name, shape
    return None, None



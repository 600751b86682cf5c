"""Q1 public tests (16-824 S24): annotations, augmentations, flat_dim, and the loss written in train().

Each TODO of the starter is reached through the starter's own entry points: the
dataset's constructor and ``__getitem__``, ``SimpleCNN`` on the images the
student's own dataset makes at Q1's size, and ``trainer.train`` for the loss.
"""

from __future__ import annotations

import math

import pytest
import torch

from grader.compare import GradingFailure, check, describe_call
from grader.data.voc import make_voc
from grader.data.voc_classification import annotation_cases, write_voc_images
from grader.data.voc_course import (
    NUM_CLASSES,
    REDUCTIONS,
    LossCase,
    describe_mismatch,
    matching_reduction,
    voc_root,
)

Q1_SIZE = 64  # "Use image size of 64x64 in Q1" (train_q1.py)


# -- 1.1-1.2 annotations ---------------------------------------------------------------------------

def _annotations(built, call):
    if built.bare:
        return built.dataset.preload_anno()
    return built.dataset.anno_list


@pytest.mark.weight(3)
@pytest.mark.number("1.1")
def test_preload_anno_generated_folder(student, sandbox_tmp_path, voc_dataset, check_annotations):
    """preload_anno: label and weight vectors of a generated VOC folder"""
    root = voc_root(sandbox_tmp_path)
    folder = make_voc(root, {"trainval": 30}, seed=11, difficult_rate=0.2, objects_per_image=(1, 4))
    built = voc_dataset("trainval", 32, root)
    call = f"{built.how}.preload_anno()"
    got = _annotations(built, call)
    images = [folder.images[i] for i in folder.splits["trainval"]]
    check_annotations(got, images, call)


@pytest.mark.weight(2)
@pytest.mark.number("1.2")
def test_preload_anno_repeated_and_difficult(student, sandbox_tmp_path, voc_dataset, check_annotations):
    """preload_anno: repeated classes, difficult objects, first and last class"""
    root = voc_root(sandbox_tmp_path)
    images = annotation_cases()
    write_voc_images(root, images, "cases")
    built = voc_dataset("cases", 32, root)
    call = f"{built.how}.preload_anno()"
    check_annotations(_annotations(built, call), images, call)


# -- 1.4-1.5 augmentations, through __getitem__ ---------------------------------------------------------

def _reads(built, index: int, times: int, call: str) -> list[torch.Tensor]:
    images = []
    for _ in range(times):
        item = built.dataset[index]
        check(isinstance(item, (list, tuple)) and len(item) == 3,
              f"__getitem__ should return (image, label, weight), got {item!r:.80}", call=call)
        image = item[0]
        check(type(image) is torch.Tensor and image.dim() == 3 and image.shape[0] == 3,
              f"expected an image tensor of shape [3, H, W], got {list(getattr(image, 'shape', []))}", call=call)
        images.append(image)
    return images


def _split_images(student, root, split, size, voc_dataset, times):
    built = voc_dataset(split, size, root, bare_labels=True)
    count = len(built.dataset.index_list)
    call = f"{built.how}[i] for each of its {count} images (of several aspect ratios)"
    return built, call, [_reads(built, i, times, call) for i in range(count)]


@pytest.mark.weight(2)
@pytest.mark.number("1.4")
def test_test_split_is_deterministic(student, sandbox_tmp_path, voc_dataset):
    """__getitem__ on the test split: no random augmentation, one image size whatever the aspect ratio"""
    root = voc_root(sandbox_tmp_path)
    make_voc(root, {"test": 5}, seed=12, size=(50, 90))
    _, call, reads = _split_images(student, root, "test", Q1_SIZE, voc_dataset, times=2)
    for index, (first, second) in enumerate(reads):
        check(torch.equal(first, second), f"two reads of test image {index} differ", call=call,
              hint="make sure to not augment during test: on the test split get_random_augmentations should "
                   "return only deterministic transforms (replace random crops with center crops)")
    shapes = sorted({tuple(r[0].shape) for r in reads})
    check(len(shapes) == 1, f"test images of different aspect ratios come out in different sizes {shapes}: they "
                            "cannot be batched", call=call,
          hint="Resize(size) keeps the aspect ratio: crop to a fixed size (e.g. transforms.CenterCrop(size))")


@pytest.mark.weight(2)
@pytest.mark.number("1.5")
def test_train_split_is_random(student, sandbox_tmp_path, voc_dataset):
    """__getitem__ on the trainval split (what train() loads): random, one size, the test split's size"""
    root = voc_root(sandbox_tmp_path)
    folder = make_voc(root, {"trainval": 4, "test": 2}, seed=13, size=(50, 90))
    del folder
    built, call, reads = _split_images(student, root, "trainval", Q1_SIZE, voc_dataset, times=8)
    distinct = max(len({tuple(r.flatten()[::37].tolist()) for r in image_reads}) for image_reads in reads)
    check(distinct > 1, "8 reads of each training image gave identical images", call=call,
          hint="get_random_augmentations should return random transforms on the training split 'trainval' "
               "(random crop, horizontal flip, ...)")
    shapes = sorted({tuple(r.shape) for image_reads in reads for r in image_reads})
    check(len(shapes) == 1, f"training images come out in different sizes {shapes[:4]}: they cannot be batched",
          call=call, hint="end the training augmentations with a fixed-size crop (e.g. RandomResizedCrop(size) "
                          "or RandomCrop(size))")
    _, test_call, test_reads = _split_images(student, root, "test", Q1_SIZE, voc_dataset, times=1)
    test_shape = tuple(test_reads[0][0].shape)
    check(shapes[0] == test_shape, f"training images are {list(shapes[0])} but test images {list(test_shape)}: "
                                   "a model trained on one cannot be evaluated on the other", call=call)


# -- 1.6 flat_dim ------------------------------------------------------------------------------------

@pytest.mark.weight(2)
@pytest.mark.number("1.6")
def test_flat_dim_fits_own_images(student, sandbox_tmp_path, voc_dataset):
    """SimpleCNN(20, inp_size=64, c_dim=3) runs on the images the student's own VOCDataset makes at 64 px"""
    root = voc_root(sandbox_tmp_path)
    make_voc(root, {"trainval": 3, "test": 3}, seed=16, size=(70, 110))
    batches, source = [], ""
    try:
        for split in ("test", "trainval"):
            built = voc_dataset(split, Q1_SIZE, root, bare_labels=True)
            batches.append(torch.stack([built.dataset[i][0] for i in range(3)]))
        source = f"images of your VOCDataset at size {Q1_SIZE} ({list(batches[0].shape[1:])})"
    except Exception:  # noqa: BLE001 - the dataset is graded on its own; fall back to the handout's 64 x 64
        batches = [torch.randn(3, 3, Q1_SIZE, Q1_SIZE, generator=torch.Generator().manual_seed(16))]
        source = f"3 x {Q1_SIZE} x {Q1_SIZE} images (your VOCDataset could not make any)"
    call = describe_call("SimpleCNN", num_classes=20, inp_size=Q1_SIZE, c_dim=3) + f" on a batch of {source}"
    model = student.simple_cnn.SimpleCNN(num_classes=20, inp_size=Q1_SIZE, c_dim=3)
    for batch in batches:
        out = model(batch)
        check(type(out) is torch.Tensor and tuple(out.shape) == (batch.shape[0], NUM_CLASSES),
              f"expected logits of shape [{batch.shape[0]}, 20], got {list(getattr(out, 'shape', []))}", call=call)


# -- 1.7-1.9 the loss, through train() ------------------------------------------------------------------

def values_case() -> LossCase:
    """12 images in batches of 5, 5 and 2: moderate logits, every weight 1."""
    g = torch.Generator().manual_seed(17)
    logits = (torch.rand(12, NUM_CLASSES, generator=g) * 12 - 6)
    labels = (torch.rand(12, NUM_CLASSES, generator=g) < 0.3).float()
    labels[0], labels[1] = 1.0, 0.0  # every class positive and negative in the test set
    return LossCase(logits, labels, torch.ones(12, NUM_CLASSES), 5,
                    "12 images (batches of 5, 5, 2), logits in [-6, 6], every weight 1")


def weights_case() -> LossCase:
    """8 images in batches of 5 and 3, a quarter of the weights 0 (on confidently wrong logits too)."""
    g = torch.Generator().manual_seed(18)
    logits = (torch.rand(8, NUM_CLASSES, generator=g) * 10 - 5)
    labels = (torch.rand(8, NUM_CLASSES, generator=g) < 0.3).float()
    labels[0], labels[1] = 1.0, 0.0
    weights = (torch.rand(8, NUM_CLASSES, generator=g) > 0.25).float()
    weights[0], weights[1] = 1.0, 1.0
    wrong = weights == 0
    logits[wrong] = torch.where(labels[wrong] > 0, -5.5, 5.5)  # what would cost most, if it counted
    return LossCase(logits, labels, weights, 5, "8 images (batches of 5, 3), logits in [-5.5, 5.5], 1 in 4 "
                                                "weights 0")


def large_logits_case() -> LossCase:
    """One batch of 4 images with logits of +-30, +-100, +-1e4 among moderate ones, right and wrong."""
    g = torch.Generator().manual_seed(19)
    logits = torch.rand(4, NUM_CLASSES, generator=g) * 6 - 3
    labels = (torch.rand(4, NUM_CLASSES, generator=g) < 0.4).float()
    labels[0], labels[1] = 1.0, 0.0
    extremes = torch.tensor([30.0, -30.0, 100.0, -100.0, 1e4, -1e4])
    logits[:, :6] = extremes
    logits[2:, :6] = -extremes  # the same magnitudes with the other sign, so both labels meet both signs
    return LossCase(logits, labels, torch.ones(4, NUM_CLASSES), 4,
                    "4 images, logits of +-30, +-100 and +-1e4 in classes 0-5, moderate elsewhere")


def _require_reduction(run, case) -> str:
    run.raise_error()
    found = matching_reduction(run, case)
    if found is None:
        raise GradingFailure(f"Called {run.call}\nThe loss is not the weighted binary cross-entropy of the logits:\n"
                             + describe_mismatch(run, case))
    return found


@pytest.mark.weight(2)
@pytest.mark.number("1.7")
@pytest.mark.sandbox(call_timeout=180)
def test_loss_values_through_train(student, train_run):
    """the loss in train(): binary cross-entropy of the logits (Loss/train and its gradient), per batch"""
    case = values_case()
    run = train_run(case)
    _require_reduction(run, case)


@pytest.mark.weight(2)
@pytest.mark.number("1.8")
@pytest.mark.sandbox(call_timeout=180)
def test_loss_honours_weights(student, train_run):
    """the loss in train(): entries of weight 0 (difficult) add nothing and get no gradient"""
    case = weights_case()
    run = train_run(case)
    run.raise_error()
    last = case.batches[-1]
    check(run.last_grad is not None, "the model received no gradient from the loss", call=run.call)
    ignored = case.weights[last] == 0
    leaked = int((run.last_grad[ignored] != 0).sum())
    check(leaked == 0, f"{leaked} of {int(ignored.sum())} entries of weight 0 received a gradient", call=run.call,
          hint="multiply each entry's loss by wgt[n, c] (0 for difficult classes) before reducing")
    _require_reduction(run, case)


@pytest.mark.weight(2)
@pytest.mark.number("1.9")
@pytest.mark.sandbox(call_timeout=180)
def test_loss_stable_for_large_logits(student, train_run):
    """the loss in train(): finite value and gradients for logits of +-30, +-100 and +-1e4"""
    case = large_logits_case()
    run = train_run(case)
    run.raise_error()
    hint = ("take care of overflows: exp(-x) is inf for x < -88 in float32, and log(sigmoid(x)) is -inf once "
            "sigmoid(x) rounds to 0 or 1; max(x, 0) - x * y + log(1 + exp(-|x|)) never overflows")
    for value in run.losses:
        check(math.isfinite(value) and value >= 0, f"Loss/train was {value}", call=run.call, hint=hint)
    check(run.last_grad is not None, "the model received no gradient from the loss", call=run.call)
    bad = ~torch.isfinite(run.last_grad)
    if bad.any():
        row, col = (int(v) for v in torch.nonzero(bad)[0])
        raise GradingFailure(f"Called {run.call}\n{int(bad.sum())} gradient entries are not finite, e.g. image {row}, "
                             f"class {col} (logit {case.logits[row, col].item():g}, label "
                             f"{case.labels[row, col].item():g}): {run.last_grad[row, col].item()}\nHint: {hint}")
    # Where the logits are moderate the gradient is still the binary cross-entropy's.
    moderate = case.logits.abs() <= 6
    for name in REDUCTIONS:
        _, grad = case.expected(name, case.batches[-1])
        if torch.allclose(run.last_grad[moderate], grad[moderate], rtol=1e-4, atol=1e-7):
            return
    raise GradingFailure(f"Called {run.call}\nWith large logits in the batch, the gradient at the moderate logits "
                         "is no longer the binary cross-entropy's:\n" + describe_mismatch(run, case))

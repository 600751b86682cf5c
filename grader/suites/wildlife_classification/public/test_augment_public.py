"""Public tests of Q2.4 and seed 004 model B: augmentations, mixup, soft-target cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.student import type_name, value_and_grad

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = {"ColorJitter", "GaussianBlur", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix",
                 "ElasticTransform"}


def remote_image(student, array: np.ndarray):
    """A PIL image built in the student's process from a uint8 HxWx3 array."""
    return student.import_library("PIL.Image").fromarray(np.ascontiguousarray(array, dtype=np.uint8))


def augmentation_names(student, transform) -> list[str]:
    names = []
    for step in transform.transforms:
        short = type_name(step).rsplit(".", 1)[-1]
        if short.startswith("Random") or short in AUGMENTATIONS:
            names.append(short)
    return names


@pytest.mark.weight(1)
@pytest.mark.number("2.4.1")
def test_eval_transform_normalises(student):
    """Q2.4 evaluation transform: resize to size x size, float tensor, ImageNet normalisation, deterministic"""
    mean_colour = np.round(np.array(IMAGENET_MEAN) * 255).astype(np.uint8)
    image = remote_image(student, np.broadcast_to(mean_colour, (50, 70, 3)).copy())
    transform = student.wildlife_dataset.build_transforms(False, 32)
    got = transform(image)
    check(isinstance(got, torch.Tensor) and tuple(got.shape) == (3, 32, 32) and got.dtype == torch.float32,
          f"build_transforms(False, 32) on a 70x50 image should give a float32 [3, 32, 32] tensor, got "
          f"{type(got).__name__} {getattr(got, 'shape', '')} {getattr(got, 'dtype', '')}")
    expected = (torch.tensor(mean_colour / 255.0) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert_close(got, expected.float()[:, None, None].expand(3, 32, 32), atol=1e-2,
                 call="build_transforms(False, 32)(image of the ImageNet mean colour)",
                 hint="ToTensor() then Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))")
    white = transform(remote_image(student, np.full((30, 20, 3), 255, dtype=np.uint8)))
    expected = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert_close(white, expected.float()[:, None, None].expand(3, 32, 32), atol=1e-3,
                 call="build_transforms(False, 32)(white image)", hint="divide by the ImageNet std after the mean")
    generator = np.random.default_rng(0)
    image = remote_image(student, generator.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    assert_close(transform(image), transform(image), what="two calls on the same image",
                 hint="no random augmentation at evaluation time")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.1")
def test_train_transform_augments(student):
    """Q2.4(a) training transform: at least three random augmentations, same output format"""
    transform = student.wildlife_dataset.build_transforms(True, 32)
    names = augmentation_names(student, transform)
    check(len(set(names)) >= 3, f"expected at least three different augmentations in transform.transforms, "
                                f"found {names}", hint="e.g. RandomResizedCrop, RandomHorizontalFlip, ColorJitter")
    generator = np.random.default_rng(1)
    image = remote_image(student, generator.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    outputs = [transform(image) for _ in range(3)]
    check(all(tuple(o.shape) == (3, 32, 32) and o.dtype == torch.float32 for o in outputs),
          f"expected float32 [3, 32, 32] tensors, got {[tuple(o.shape) for o in outputs]}")
    check(not torch.equal(outputs[0], outputs[1]) or not torch.equal(outputs[1], outputs[2]),
          "three calls on the same image gave the same tensor: the augmentations are not random")


@pytest.mark.weight(1)
@pytest.mark.number("2.4.2")
def test_one_hot_and_mixup_batch(student):
    """Seed 004 mixup: one-hot labels and a fixed mix of images and labels"""
    labels = torch.tensor([2, 0, 1])
    assert_equal(student.mixup.one_hot(labels, 4), F.one_hot(labels, 4).float(),
                 call=describe_call("one_hot", labels, 4), hint="float32 rows with a single 1")
    images = torch.arange(3 * 2 * 2 * 2, dtype=torch.float32).reshape(3, 2, 2, 2)
    permutation = torch.tensor([1, 2, 0])
    mixed, targets = student.mixup.mixup_batch(images, labels, 4, 0.75, permutation)
    assert_close(mixed, 0.75 * images + 0.25 * images[permutation],
                 call=describe_call("mixup_batch", images, labels, 4, 0.75, permutation),
                 hint="lam * images + (1 - lam) * images[permutation]")
    expected = torch.tensor([[0.25, 0.0, 0.75, 0.0], [0.75, 0.25, 0.0, 0.0], [0.0, 0.75, 0.25, 0.0]])
    assert_close(targets, expected, call=describe_call("mixup_batch", images, labels, 4, 0.75, permutation),
                 what="targets", hint="lam * one_hot(labels) + (1 - lam) * one_hot(labels[permutation])")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.3")
def test_sample_mixup(student):
    """Seed 004 mixup: lam ~ Beta(alpha, alpha) and the permutation from numpy's default_rng(seed)"""
    images = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    mixed, targets, lam, permutation = student.mixup.sample_mixup(images, labels, 5, 0.4, 123)
    rng = np.random.default_rng(123)
    expected_lam = float(rng.beta(0.4, 0.4))
    expected_permutation = torch.from_numpy(rng.permutation(6))
    assert_close(float(lam), expected_lam, rtol=1e-9, atol=1e-12, what="lam",
                 hint="rng = np.random.default_rng(seed); lam = rng.beta(alpha, alpha) first, then rng.permutation(N)")
    assert_equal(permutation.long(), expected_permutation.long(), what="permutation")
    assert_close(mixed, expected_lam * images + (1 - expected_lam) * images[expected_permutation], rtol=1e-5,
                 atol=1e-6, what="mixed images")
    assert_close(targets.sum(1), torch.ones(6), rtol=1e-5, atol=1e-6, what="row sums of the targets")


@pytest.mark.weight(1)
@pytest.mark.number("2.4.4")
def test_soft_target_cross_entropy(student):
    """Seed 004 soft-target cross-entropy equals torch's cross_entropy with probability targets (value and grad)"""
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 4, generator=generator) * 3
    targets = torch.softmax(torch.randn(5, 4, generator=generator), dim=1)
    leaf = logits.clone().requires_grad_(True)
    expected = F.cross_entropy(leaf, targets)
    expected.backward()
    got, (grad,) = value_and_grad(student.mixup.soft_target_cross_entropy, logits, targets, wrt=(0,))
    assert_close(got, expected.detach(), call=describe_call("soft_target_cross_entropy", logits, targets), rtol=1e-5,
                 atol=1e-6, hint="mean over the batch of -sum(targets * log_softmax(logits))")
    check(grad is not None, "the loss is not differentiable with respect to the logits")
    assert_close(grad, leaf.grad, call=describe_call("soft_target_cross_entropy", logits, targets), what="gradient",
                 rtol=1e-5, atol=1e-6)

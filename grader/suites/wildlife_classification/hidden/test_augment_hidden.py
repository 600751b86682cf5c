"""Hidden tests of Q2.4 and mixup: which split augments, random mixes, fresh randomness, extreme logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs, student_raises, type_name

AUGMENTATIONS = {"ColorJitter", "GaussianBlur", "RandAugment", "AutoAugment", "TrivialAugmentWide", "AugMix",
                 "ElasticTransform"}


def augmentations_of(transform) -> set[str]:
    names = set()
    for step in transform.transforms:
        short = type_name(step).rsplit(".", 1)[-1]
        if short.startswith("Random") or short in AUGMENTATIONS:
            names.add(short)
    return names


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.1")
def test_only_the_train_split_augments(student, wildlife_folder):
    """Q2.4(a) make_loaders: augmentations on train only; val and test use the evaluation transform"""
    loaders = student.wildlife_dataset.make_loaders(str(wildlife_folder.root), batch_size=8, size=32, seed=0)
    train = augmentations_of(loaders["train"].dataset.transform)
    check(len(train) >= 3, f"the train dataset's transform should hold >= 3 augmentations, found {sorted(train)}")
    for name in ("val", "test"):
        found = augmentations_of(loaders[name].dataset.transform)
        check(not found, f"the {name} dataset's transform must not augment, found {sorted(found)}")
    plain = student.wildlife_dataset.make_loaders(str(wildlife_folder.root), batch_size=8, size=32, seed=0,
                                                  augment=False)
    found = augmentations_of(plain["train"].dataset.transform)
    check(not found, f"with augment=False the train transform must not augment, found {sorted(found)}")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.2")
@settings(max_examples=15)
@given(st.integers(0, 2**31 - 1), st.integers(1, 9), st.floats(0, 1))
def test_mixup_batch_random(student, seed, count, lam):
    """Seed 004 mixup_batch on random float64 batches, permutations and weights, inputs unchanged; one_hot range errors"""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 2, 3, 3, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 6, (count,), generator=generator)
    permutation = torch.randperm(count, generator=generator)
    # the caller's batch must stay as it was (mixup returns new tensors), checked where mixup_batch runs
    mixed, targets = call_keeping_inputs(student.mixup.mixup_batch, images, labels, 6, lam, permutation)
    call = describe_call("mixup_batch", images, labels, 6, lam, permutation)
    assert_close(mixed, lam * images + (1 - lam) * images[permutation], call=call, rtol=1e-9, atol=1e-12)
    one_hot = F.one_hot(labels, 6).float()
    assert_close(targets, lam * one_hot + (1 - lam) * one_hot[permutation], call=call, what="targets", rtol=1e-5,
                 atol=1e-6)
    with student_raises("ValueError"):
        student.mixup.one_hot(torch.tensor([0, 6]), 6)


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.3")
def test_sample_mixup_randomness_and_errors(student):
    """Seed 004 sample_mixup: fresh randomness without a seed, Beta-shaped lam, batch unchanged, alpha <= 0 rejected"""
    images = torch.randn(8, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8) % 3
    lams = [float(student.mixup.sample_mixup(images, labels, 3, 0.2, seed)[2]) for seed in range(39)]
    lams.append(float(call_keeping_inputs(student.mixup.sample_mixup, images, labels, 3, 0.2, 39)[2]))
    extreme = sum(lam < 0.1 or lam > 0.9 for lam in lams) / len(lams)
    check(all(0 <= lam <= 1 for lam in lams) and extreme > 0.45,
          f"lam ~ Beta(0.2, 0.2) lies mostly near 0 or 1; only {extreme:.0%} of 40 draws did", hint="rng.beta(alpha, alpha)")
    unseeded = {round(float(student.mixup.sample_mixup(images, labels, 3, 1.0)[2]), 12) for _ in range(3)}
    check(len(unseeded) > 1, "sample_mixup(seed=None) returned the same lam three times",
          hint="np.random.default_rng(None) draws fresh randomness")
    with student_raises("ValueError"):
        student.mixup.sample_mixup(images, labels, 3, 0.0)


@pytest.mark.weight(0.5)
@pytest.mark.number("2.4.4")
def test_soft_target_cross_entropy_extremes(student):
    """Seed 004 soft-target cross-entropy: finite for logits of 1000, equal to CE for one-hot targets, float64"""
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]])
    targets = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]])
    got = student.mixup.soft_target_cross_entropy(logits, targets)
    assert_close(got, F.cross_entropy(logits, targets), call=describe_call("soft_target_cross_entropy", logits, targets),
                 rtol=1e-5, atol=1e-5, hint="use log_softmax (or subtract the row maximum): log(softmax) gives -inf")
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 5, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 5, (6,), generator=generator)
    got = student.mixup.soft_target_cross_entropy(logits, F.one_hot(labels, 5).double())
    assert_close(got, F.cross_entropy(logits, labels), call="soft_target_cross_entropy(logits, one_hot(labels))",
                 rtol=1e-9, atol=1e-12, hint="a mean over the batch, not a sum")

"""Hidden tests of Q2.1: unreadable images, missing folders, split properties on random labels, loaders."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, assert_equal, check
from grader.data.wildlife_classification import corrupt_image
from grader.student import student_raises


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.2")
def test_unreadable_images_and_missing_folders(student, make_folder):
    """Q2.1(a) clear errors: unreadable or truncated image, missing data folder, missing class folder"""
    module = student.wildlife_dataset
    folder = make_folder(2, name="corrupt")
    garbage, _ = folder.samples[3]
    truncated, _ = folder.samples[7]
    corrupt_image(garbage, "garbage")
    corrupt_image(truncated, "truncated")
    dataset = module.WildlifeDataset(folder.samples)
    image, _ = dataset[0]
    check(tuple(image.shape)[0] == 3, "a readable image must still load")
    for index, path in ((3, garbage), (7, truncated)):
        with student_raises("ValueError", match=os.path.basename(path)):
            dataset[index]
    with student_raises("FileNotFoundError", match="no_such_folder"):
        module.find_images(str(folder.root / "no_such_folder"))
    folder = make_folder(1, name="missing")
    for path in (folder.root / "wild_boar").iterdir():
        path.unlink()
    (folder.root / "wild_boar").rmdir()
    with student_raises("ValueError", match="wild_boar"):
        module.find_images(str(folder.root))


@st.composite
def label_lists(draw):
    classes = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 25), min_size=classes, max_size=classes))
    labels = [c for c, size in enumerate(sizes) for _ in range(size)]
    return draw(st.permutations(labels))


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.3")
@settings(max_examples=40)
@given(label_lists(), st.integers(0, 1000), st.sampled_from([(0.7, 0.1, 0.2), (0.5, 0.5), (0.2, 0.3, 0.1, 0.4)]))
def test_stratified_split_random_labels(student, tools, labels, seed, ratios):
    """Q2.1(a) stratified split properties on random label lists, seeds and ratios"""
    parts = student.wildlife_dataset.stratified_split(labels, ratios, seed)
    tools.check_split(parts, labels, ratios, f"stratified_split(labels of {len(labels)} samples, {ratios}, seed={seed})")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.5")
def test_loaders_follow_split_and_transforms(student, wildlife_folder):
    """Q2.1(b) loaders: the seeded split, a shuffling train loader with augmentation, deterministic val/test"""
    module = student.wildlife_dataset
    root = str(wildlife_folder.root)
    labels = [label for _, label in wildlife_folder.samples]
    loaders = module.make_loaders(root, batch_size=100, size=32, seed=5)
    parts = module.stratified_split(labels, (0.7, 0.1, 0.2), 5)
    for name, indices in zip(("train", "val", "test"), parts):
        got = [(str(p), int(label)) for p, label in loaders[name].dataset.samples]
        assert_equal(got, [wildlife_folder.samples[i] for i in indices], what=f"{name} samples",
                     hint="make_loaders must use stratified_split(labels, SPLIT_RATIOS, seed) on find_images' list")
    val_a = next(iter(loaders["val"]))[0]
    val_b = next(iter(loaders["val"]))[0]
    assert_close(val_a, val_b, what="two passes over the val loader", hint="no random augmentation for val/test")
    first, second = next(iter(loaders["train"])), next(iter(loaders["train"]))
    check(first[1].tolist() != second[1].tolist() or not torch.equal(first[0], second[0]),
          "two passes over the train loader gave identical batches", hint="shuffle=True and random augmentations")
    check(sorted(first[1].tolist()) == sorted(second[1].tolist()), "the train loader must cover the same samples")
    plain = module.make_loaders(root, batch_size=100, size=32, seed=5, augment=False)
    check(len(plain["train"].dataset) == 70, "make_loaders(augment=False) must keep the same split")

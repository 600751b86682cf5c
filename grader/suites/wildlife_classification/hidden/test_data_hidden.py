"""Hidden tests of Q2.1: unreadable images, missing folders, split properties on random labels, loaders."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.transforms import functional as TF

from grader.compare import assert_close, assert_equal, check
from grader.data.wildlife_classification import corrupt_image
from grader.student import student_raises


@pytest.mark.weight(0.25)
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


def _rewrite_in_mode(path: str, mode: str) -> None:
    """Save the image at ``path`` again in another PIL mode (grey, opaque grey + alpha or RGBA, palette), same format."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    if mode in ("RGBA", "LA"):  # opaque: dropping the alpha channel and compositing agree
        converted = rgb.convert(mode[:-1])
        converted.putalpha(255)
    elif mode == "P":
        converted = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    else:
        converted = rgb.convert(mode)
    converted.save(path)


@pytest.mark.weight(0.25)
@pytest.mark.number("2.1.2")
def test_image_modes_become_rgb(student, make_folder):
    """Q2.1(a) load_image / WildlifeDataset: grey, grey + alpha, RGBA and palette files load as 3-channel RGB"""
    module = student.wildlife_dataset
    folder = make_folder(2, seed=6, name="modes", png_every=2)  # per class: one JPEG, then one PNG
    modes = {0: "L", 1: "RGBA", 3: "P", 4: "L", 5: "LA", 7: "P"}  # indices into folder.samples
    for index, mode in modes.items():
        _rewrite_in_mode(folder.samples[index][0], mode)
    dataset = module.WildlifeDataset(folder.samples)
    resized = module.WildlifeDataset(folder.samples, module.build_transforms(False, 24))
    for index, mode in sorted(modes.items()):
        path = folder.samples[index][0]
        with Image.open(path) as image:
            expected = TF.to_tensor(image.convert("RGB"))
        image, _ = dataset[index]
        assert_close(image, expected, call=f"dataset[{index}][0] (a {mode}-mode {os.path.basename(path)})",
                     atol=1e-6, hint="Image.open(path).convert('RGB'): grey, RGBA and palette ('P') files "
                                     "must give 3 channels of colours, not 1 or 4 channels or palette indices")
        image, _ = resized[index]
        check(tuple(image.shape) == (3, 24, 24),
              f"with build_transforms(False, 24), the {mode}-mode image {os.path.basename(path)} gave shape "
              f"{list(image.shape)}, expected [3, 24, 24]", hint="convert every image to RGB in load_image")


@st.composite
def label_lists(draw):
    classes = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 25), min_size=classes, max_size=classes))
    labels = [c for c, size in enumerate(sizes) for _ in range(size)]
    return draw(st.permutations(labels))


@pytest.mark.weight(0.25)
@pytest.mark.number("2.1.3")
@settings(max_examples=40)
@given(label_lists(), st.integers(0, 1000), st.sampled_from([(0.7, 0.1, 0.2), (0.5, 0.5), (0.2, 0.3, 0.1, 0.4)]))
def test_stratified_split_random_labels(student, tools, labels, seed, ratios):
    """Q2.1(a) stratified split properties on random label lists, seeds and ratios"""
    parts = student.wildlife_dataset.stratified_split(labels, ratios, seed)
    tools.check_split(parts, labels, ratios, f"stratified_split(labels of {len(labels)} samples, {ratios}, seed={seed})")


@pytest.mark.weight(0.25)
@pytest.mark.number("2.1.3")
def test_stratified_split_exact_sizes_and_seeds(student):
    """Q2.1(a) split sizes at exact halves (round(x) = floor(x + 0.5)); the seed changes the split"""
    # Ratios that are exact binary fractions: n_c * cumulative ratio is computed exactly, so x.5 cases are real.
    sizes = [2, 6, 10, 3, 1, 5]
    labels = [c for c, size in enumerate(sizes) for _ in range(size)]
    labels = [labels[i] for i in torch.randperm(len(labels), generator=torch.Generator().manual_seed(1)).tolist()]
    labels_t = torch.tensor(labels)
    for ratios in ((0.25, 0.5, 0.25), (0.75, 0.25), (0.125, 0.625, 0.25)):
        parts = student.wildlife_dataset.stratified_split(labels, ratios, 0)
        call = f"stratified_split(labels with class sizes {sizes}, {ratios}, seed=0)"
        check(isinstance(parts, (list, tuple)) and len(parts) == len(ratios),
              f"expected {len(ratios)} lists of indices", call=call)
        cumulative = torch.tensor(ratios, dtype=torch.float64).cumsum(0)
        for cls, size in enumerate(sizes):
            bounds = torch.floor(size * cumulative + 0.5).long()
            bounds[-1] = size
            expected = torch.diff(bounds, prepend=torch.zeros(1, dtype=torch.long)).tolist()
            got = [int((labels_t[list(part)] == cls).sum()) if len(part) else 0 for part in parts]
            check(got == expected, f"class {cls} has {size} samples: expected {expected} of them in the parts, got "
                                   f"{got}", call=call,
                  hint="part j gets round(n_c * (r_0 + ... + r_j)) - round(n_c * (r_0 + ... + r_{j-1})) with "
                       "round(x) = floor(x + 0.5); torch.round and Python's round() round halves to even")
    splits = {tuple(map(tuple, student.wildlife_dataset.stratified_split(labels, (0.7, 0.1, 0.2), seed)))
              for seed in range(4)}
    check(len(splits) > 1, "stratified_split gave the same split for seeds 0, 1, 2 and 3",
          hint="seed the shuffle with the seed argument: torch.Generator().manual_seed(seed)")


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
    again = module.make_loaders(root, batch_size=100, size=32, seed=5, augment=False)
    order, repeat = next(iter(plain["train"]))[1].tolist(), next(iter(again["train"]))[1].tolist()
    check(order == repeat, "two make_loaders calls with the same seed shuffled the train set differently",
          hint="DataLoader(..., shuffle=True, generator=torch.Generator().manual_seed(seed))")

"""Public tests of Q2.1: the Russian Wildlife folder, the stratified split, the Dataset and the loaders."""

from __future__ import annotations

import os

import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.wildlife_classification import add_clutter
from grader.student import student_raises


@pytest.mark.weight(1)
@pytest.mark.number("2.1.1")
def test_label_mapping_and_find_images(student, make_folder, tools):
    """Q2.1(a) handout label mapping; find_images lists the images of every class folder"""
    mapping = student.wildlife_dataset.CLASS_TO_IDX
    assert_equal(dict(mapping), tools.class_to_idx, what="CLASS_TO_IDX",
                 hint="use the handout's mapping exactly ('people' is 9)")
    folder = make_folder({"amur_leopard": 3, "amur_tiger": 2, "birds": 4, "black_bear": 1, "brown_bear": 2,
                          "dog": 3, "roe_deer": 1, "sika_deer": 2, "wild_boar": 2, "people": 5}, seed=1, png_every=2)
    add_clutter(folder.root)
    got = student.wildlife_dataset.find_images(str(folder.root))
    check(isinstance(got, list), f"expected a list of (path, label), got {type(got).__name__}")
    got = [(str(p), label) for p, label in got]
    assert_equal(got, folder.samples, call=describe_call("find_images", str(folder.root)),
                 hint="(os.path.join(root, class_folder, file), label) sorted by label then file name; "
                      "skip hidden names, non-image files, nested folders and files directly in root")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.2")
def test_find_images_errors(student, make_folder):
    """Q2.1(a) clear errors for an unknown class folder and for an empty class"""
    folder = make_folder(1, name="unknown")
    (folder.root / "zebra").mkdir()
    with student_raises("ValueError", match="zebra"):
        student.wildlife_dataset.find_images(str(folder.root))
    folder = make_folder(1, name="empty")
    for path in (folder.root / "roe_deer").iterdir():
        path.unlink()
    with student_raises("ValueError", match="roe_deer"):
        student.wildlife_dataset.find_images(str(folder.root))


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.3")
def test_stratified_split_properties(student, tools):
    """Q2.1(a) stratified 0.7/0.1/0.2 split: disjoint, complete, per-class shares within one sample"""
    labels = [0] * 10 + [1] * 7 + [2] * 3 + [3] * 1 + [4] * 20 + [5] * 2 + [6] * 13 + [7] * 5 + [8] * 9 + [9] * 30
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0)).tolist()
    labels = [labels[i] for i in order]
    parts = student.wildlife_dataset.stratified_split(labels, (0.7, 0.1, 0.2), 0)
    tools.check_split(parts, labels, (0.7, 0.1, 0.2), "stratified_split(labels of 100 samples, (0.7, 0.1, 0.2), seed=0)")
    again = student.wildlife_dataset.stratified_split(labels, (0.7, 0.1, 0.2), 0)
    assert_equal(list(map(list, again)), list(map(list, parts)), what="second call with the same seed",
                 hint="shuffle with a generator seeded with `seed` (torch.Generator().manual_seed(seed))")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.4")
def test_dataset_items(student, wildlife_folder):
    """Q2.1(a) WildlifeDataset: length, (image, label) items as float tensors in [0, 1], transforms"""
    module = student.wildlife_dataset
    dataset = module.WildlifeDataset.from_folder(str(wildlife_folder.root))
    check(len(dataset) == len(wildlife_folder.samples),
          f"expected {len(wildlife_folder.samples)} samples, got {len(dataset)}")
    for index in (0, 37, 99):
        path, label = wildlife_folder.samples[index]
        with Image.open(path) as image:
            expected = TF.to_tensor(image.convert("RGB"))
        got = dataset[index]
        check(isinstance(got, tuple) and len(got) == 2, f"dataset[{index}] must be a tuple (image, label)")
        assert_close(got[0], expected, call=f"dataset[{index}][0] ({os.path.basename(path)})", atol=1e-6,
                     hint="RGB, float32 in [0, 1], shape [3, H, W] (transforms.ToTensor)")
        assert_equal(got[1], label, call=f"dataset[{index}][1]", hint="the label of the class folder, an int")
    resized = module.WildlifeDataset(wildlife_folder.samples[:3], module.build_transforms(False, 40))
    image, label = resized[2]
    check(tuple(image.shape) == (3, 40, 40) and label == wildlife_folder.samples[2][1],
          f"with build_transforms(False, 40): expected a [3, 40, 40] image and label "
          f"{wildlife_folder.samples[2][1]}, got {list(image.shape)} and {label}")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.5")
def test_make_loaders(student, wildlife_folder):
    """Q2.1(b) loaders of the 0.7/0.1/0.2 split: sizes, disjoint parts, batch shapes"""
    loaders = student.wildlife_dataset.make_loaders(str(wildlife_folder.root), batch_size=16, size=32, seed=3)
    check(sorted(loaders) == ["test", "train", "val"], f"expected keys train, val, test, got {sorted(loaders)}")
    seen = []
    for name, expected in (("train", 70), ("val", 10), ("test", 20)):
        samples = [(str(p), int(label)) for p, label in loaders[name].dataset.samples]
        check(len(samples) == expected, f"the {name} set of 10 classes x 10 images should hold {expected} "
                                        f"images, got {len(samples)}", hint="stratified 0.7 / 0.1 / 0.2 per class")
        check(sorted({label for _, label in samples}) == list(range(10)), f"the {name} set misses some classes")
        seen += samples
    check(sorted(seen) == sorted(wildlife_folder.samples), "train + val + test must hold every image exactly once")
    images, labels = next(iter(loaders["test"]))
    assert_equal(list(images.shape), [16, 3, 32, 32], what="test batch images shape")
    check(images.dtype == torch.float32 and labels.dtype == torch.int64,
          f"expected float32 images and int64 labels, got {images.dtype} and {labels.dtype}")
    first = [int(label) for _, label in loaders["test"].dataset.samples[:16]]
    assert_equal(labels.tolist(), first, what="labels of the first test batch",
                 hint="val and test loaders must not shuffle")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.1.6")
def test_class_counts_and_distribution_plot(student, sandbox_tmp_path, tools):
    """Q2.1(c) class counts and the class-distribution bar plot"""
    labels = [0, 3, 3, 9, 9, 9, 5]
    got = student.wildlife_dataset.class_counts(labels, 10)
    assert_equal(got, torch.bincount(torch.tensor(labels), minlength=10), call=describe_call("class_counts", labels, 10),
                 hint="int64 tensor of length num_classes")
    counts = {"train": torch.tensor([70, 60, 50, 40, 30, 20, 10, 5, 3, 1]), "val": torch.tensor([10] * 10)}
    path = sandbox_tmp_path / "plots" / "distribution.png"
    returned = student.visualize.plot_class_distribution(counts, list(tools.classes), str(path))
    check(str(returned) == str(path), f"plot_class_distribution should return the path, got {returned!r}")
    tools.assert_png(path, "class distribution plot")

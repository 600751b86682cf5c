"""The synthetic Russian Wildlife folders are what the real data set looks like, and the reference reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from grader.data.wildlife_classification import (
    CLASS_TO_IDX,
    WILDLIFE_CLASSES,
    add_clutter,
    class_style,
    corrupt_image,
    make_wildlife_folder,
)
from grader.paths import reference_root
from grader.sandbox.loader import load_modules


@pytest.fixture(scope="module")
def dataset_module():
    return load_modules(reference_root() / "wildlife_classification", ["wildlife_dataset"])["wildlife_dataset"]


def test_layout_matches_the_handout(tmp_path):
    folder = make_wildlife_folder(tmp_path / "rw", 4, seed=1, png_every=2)
    assert sorted(p.name for p in (tmp_path / "rw").iterdir()) == sorted(WILDLIFE_CLASSES)
    assert CLASS_TO_IDX == {"amur_leopard": 0, "amur_tiger": 1, "birds": 2, "black_bear": 3, "brown_bear": 4,
                            "dog": 5, "roe_deer": 6, "sika_deer": 7, "wild_boar": 8, "people": 9}
    assert len(folder.samples) == 40 and folder.counts == dict.fromkeys(WILDLIFE_CLASSES, 4)
    suffixes = {Path(p).suffix for p, _ in folder.samples}
    assert suffixes == {".jpg", ".png"}
    for path, label in folder.samples:
        assert Path(path).parent.name == WILDLIFE_CLASSES[label]
        with Image.open(path) as image:
            assert image.mode == "RGB" and 48 <= min(image.size) and max(image.size) <= 80
    assert folder.samples == sorted(folder.samples, key=lambda s: (s[1], Path(s[0]).name))


def test_deterministic_and_imbalanced(tmp_path):
    a = make_wildlife_folder(tmp_path / "a", {"birds": 3, "people": 1}, seed=7)
    b = make_wildlife_folder(tmp_path / "b", {"birds": 3, "people": 1}, seed=7)
    assert [Path(p).name for p, _ in a.samples] == [Path(p).name for p, _ in b.samples]
    assert all(Path(p).read_bytes() == Path(q).read_bytes() for (p, _), (q, _) in zip(a.samples, b.samples))
    assert a.labels == [2, 2, 2, 9]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["birds", "people"]


def test_classes_look_different(tmp_path):
    """Each class has its own (shape, colour): the mean colour of a class's images leans to its colour."""
    folder = make_wildlife_folder(tmp_path / "rw", 6, seed=3)
    means = torch.zeros(10, 3)
    for path, label in folder.samples:
        with Image.open(path) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).reshape(-1, 3)
        means[label] += pixels.mean(0) / 6
    assert len({class_style(i) for i in range(10)}) == 10
    for label in range(10):
        colour = torch.tensor(class_style(label)[1], dtype=torch.float32)
        centred = means[label] - means[label].mean()
        assert torch.dot(centred, colour - colour.mean()) > 0, (label, means[label])


def test_reference_reads_the_folder_and_ignores_clutter(tmp_path, dataset_module):
    folder = make_wildlife_folder(tmp_path / "rw", 3, seed=2, png_every=3)
    add_clutter(folder.root)
    assert dataset_module.find_images(folder.root) == folder.samples
    dataset = dataset_module.WildlifeDataset.from_folder(folder.root)
    image, label = dataset[5]
    assert image.dtype == torch.float32 and image.shape[0] == 3 and 0 <= image.min() and image.max() <= 1
    assert label == folder.samples[5][1]


def test_errors_name_what_is_wrong(tmp_path, dataset_module):
    folder = make_wildlife_folder(tmp_path / "rw", 2, seed=4)
    (folder.root / "tiger_cubs").mkdir()
    with pytest.raises(ValueError, match="tiger_cubs"):
        dataset_module.find_images(folder.root)
    (folder.root / "tiger_cubs").rmdir()
    for path in (folder.root / "dog").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match="dog"):
        dataset_module.find_images(folder.root)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        dataset_module.find_images(tmp_path / "nowhere")
    folder = make_wildlife_folder(tmp_path / "broken", 2, seed=5)
    corrupt_image(folder.samples[0][0], "garbage")
    corrupt_image(folder.samples[1][0], "truncated")
    dataset = dataset_module.WildlifeDataset(folder.samples)
    for index in (0, 1):
        with pytest.raises(ValueError, match=Path(folder.samples[index][0]).name):
            dataset[index]
        with pytest.raises(OSError):  # PIL itself cannot read them either
            with Image.open(folder.samples[index][0]) as image:
                image.convert("RGB")
    with pytest.raises(ValueError, match="mode"):
        corrupt_image(folder.samples[2][0], "burnt")


def test_loaders_on_the_synthetic_folder(tmp_path, dataset_module):
    folder = make_wildlife_folder(tmp_path / "rw", 10, seed=6)
    loaders = dataset_module.make_loaders(folder.root, batch_size=25, size=40, seed=1)
    sizes = {name: len(loader.dataset) for name, loader in loaders.items()}
    assert sizes == {"train": 70, "val": 10, "test": 20}
    for name, loader in loaders.items():
        assert dataset_module.class_counts(loader.dataset.targets).tolist() == [sizes[name] // 10] * 10
    images, labels = next(iter(loaders["train"]))
    assert images.shape == (25, 3, 40, 40) and labels.dtype == torch.int64

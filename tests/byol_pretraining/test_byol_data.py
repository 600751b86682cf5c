"""The synthetic Office-Home and mini sets are in the course's formats, deterministic and readable."""

from __future__ import annotations

import csv
import hashlib

import pytest
from PIL import Image

from grader.data.byol_pretraining import (
    OFFICE_HOME_CLASSES,
    PALETTE,
    SHAPES,
    class_style,
    make_mini,
    make_office_home,
)


def _digest(folder) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_office_home_layout(tmp_path):
    splits = make_office_home(tmp_path / "office", {"train": 70, "val": 13}, image_size=24, seed=2)
    assert len(OFFICE_HOME_CLASSES) == 65 and len(set(OFFICE_HOME_CLASSES)) == 65
    for name, count in (("train", 70), ("val", 13)):
        split = splits[name]
        with open(tmp_path / "office" / f"{name}.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["id", "filename", "label"]
        assert [(int(i), f, int(label)) for i, f, label in rows[1:]] == split.rows
        assert [r[0] for r in split.rows] == list(range(count))
        for _image_id, filename, label in split.rows:
            assert filename.startswith(OFFICE_HOME_CLASSES[label] + "_")
            with Image.open(tmp_path / "office" / name / filename) as image:
                assert image.mode == "RGB" and image.size == (24, 24) and image.format == "JPEG"
    labels = [label for _, _, label in splits["train"].rows]
    assert sorted(set(labels)) == list(range(65))  # 70 >= 65 images: every class, balanced
    assert max(labels.count(c) for c in range(65)) - min(labels.count(c) for c in range(65)) <= 1


def test_generators_are_deterministic(tmp_path):
    make_office_home(tmp_path / "a", {"train": 9}, image_size=16, seed=4)
    make_office_home(tmp_path / "b", {"train": 9}, image_size=16, seed=4)
    make_office_home(tmp_path / "c", {"train": 9}, image_size=16, seed=5)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
    make_mini(tmp_path / "m1", 6, seed=1)
    make_mini(tmp_path / "m2", 6, seed=1)
    assert _digest(tmp_path / "m1") == _digest(tmp_path / "m2")


def test_mini_layout_and_colour_modes(tmp_path):
    split = make_mini(tmp_path / "mini", count=16, num_classes=8, image_size=20, colour="random")
    files = sorted(p.name for p in (tmp_path / "mini" / "train").iterdir())
    assert files == [f"{i:05d}.jpg" for i in range(16)] and len(split.rows) == 16
    assert (tmp_path / "mini" / "train.csv").read_text().splitlines()[0] == "id,filename,label"
    assert len({class_style(c) for c in range(65)}) == 65  # the 65 classes look different
    assert len(PALETTE) * len(SHAPES) >= 65
    with pytest.raises(ValueError, match="9"):
        make_mini(tmp_path / "bad", count=4, num_classes=9, colour="random")  # only 8 shapes
    with pytest.raises(ValueError, match="'blue'"):
        make_office_home(tmp_path / "bad2", {"train": 2}, colour="blue")


def test_reference_reads_the_generated_sets(tmp_path, ref):
    make_office_home(tmp_path / "office", {"train": 8, "val": 4}, image_size=16, seed=0)
    make_mini(tmp_path / "mini", count=5, image_size=16)
    dataset = ref.officehome.OfficeHomeDataset(tmp_path / "office" / "train.csv", tmp_path / "office" / "train")
    image, label = dataset[3]
    assert len(dataset) == 8 and tuple(image.shape) == (3, 16, 16) and isinstance(label, int)
    views = ref.officehome.UnlabeledImages(tmp_path / "mini" / "train", ref.augmentations.byol_augmentation(12))
    first, second = views[0]
    assert len(views) == 5 and tuple(first.shape) == tuple(second.shape) == (3, 12, 12)
    records = ref.officehome.read_office_csv(tmp_path / "mini" / "train.csv", num_classes=8)
    assert [r.line for r in records] == list(range(2, 7))

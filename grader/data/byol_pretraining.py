"""Synthetic data of the BYOL assignment: an Office-Home-style set and an unlabelled "mini" set.

The on-disk layouts are those of the DLCV course's ``hw1_data/p2_data``::

    office/train.csv                 id,filename,label      (header, then one image per line)
    office/train/Couch_00003.jpg     RGB JPEG
    office/val.csv, office/val/...
    mini/train/00000.jpg             unlabelled images for self-supervised pre-training
    mini/train.csv                   id,filename,label      (labels for a supervised backbone)

Every image shows one object on a noisy background. A class is a shape (out of
``SHAPES``) and, with ``colour="class"``, also a colour of ``PALETTE``: the 65
Office-Home classes are the first 65 (shape, colour) pairs, so the supervised
task is learnable. With ``colour="random"`` the colours of object and
background are drawn per image and only the shape tells the class (then at
most ``len(SHAPES)`` classes): a set on which colour statistics, what a
random-init network sees best, carry no label information.

Position and size of the object vary per image. Everything is deterministic
given the seed.
"""

from __future__ import annotations

import colorsys
import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

OFFICE_HOME_CLASSES = (
    "Alarm_Clock", "Backpack", "Batteries", "Bed", "Bike", "Bottle", "Bucket", "Calculator", "Calendar",
    "Candles", "Chair", "Clipboards", "Computer", "Couch", "Curtains", "Desk_Lamp", "Drill", "Eraser",
    "Exit_Sign", "Fan", "File_Cabinet", "Flipflops", "Flowers", "Folder", "Fork", "Glasses", "Hammer",
    "Helmet", "Kettle", "Keyboard", "Knives", "Lamp_Shade", "Laptop", "Marker", "Monitor", "Mop", "Mouse",
    "Mug", "Notebook", "Oven", "Pan", "Paper_Clip", "Pen", "Pencil", "Postit_Notes", "Printer", "Push_Pin",
    "Radio", "Refrigerator", "Ruler", "Scissors", "Screwdriver", "Shelf", "Sink", "Sneakers", "Soda",
    "Speaker", "Spoon", "TV", "Table", "Telephone", "ToothBrush", "Toys", "Trash_Can", "Webcam",
)
SHAPES = ("rectangle", "ellipse", "triangle", "cross", "diamond", "ring", "hbar", "chevron")
PALETTE = tuple(
    tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h / 9, 0.85, 0.95)) for h in range(9)
)
CSV_HEADER = ("id", "filename", "label")


def class_style(label: int) -> tuple[str, tuple[int, int, int]]:
    """(shape, RGB colour) of class ``label``; distinct for the first 72 labels."""
    return SHAPES[label % len(SHAPES)], PALETTE[(label // len(SHAPES)) % len(PALETTE)]


@dataclass
class Split:
    """One split as written: the CSV, the image folder and its rows ``(id, filename, label)``."""

    csv_path: Path
    image_dir: Path
    rows: list[tuple[int, str, int]] = field(default_factory=list)


def _draw_shape(draw: object, shape: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if shape == "rectangle":
        draw.rectangle([x1, y1, x2, y2], fill=colour)
    elif shape == "ellipse":
        draw.ellipse([x1, y1, x2, y2], fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=colour)
    elif shape == "cross":
        draw.rectangle([x1 + w / 3, y1, x2 - w / 3, y2], fill=colour)
        draw.rectangle([x1, y1 + h / 3, x2, y2 - h / 3], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=colour)
    elif shape == "ring":
        draw.ellipse([x1, y1, x2, y2], outline=colour, width=max(2, int(min(w, h) / 5)))
    elif shape == "hbar":
        draw.rectangle([x1, y1, x2, y1 + h / 4], fill=colour)
        draw.rectangle([x1, y2 - h / 4, x2, y2], fill=colour)
    elif shape == "chevron":
        draw.line([(x1, y1), (cx, y2), (x2, y1)], fill=colour, width=max(2, int(min(w, h) / 4)))
    else:  # pragma: no cover - SHAPES lists every case
        raise ValueError(f"unknown shape {shape!r}")


def _random_colour(rng: random.Random) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def draw_image(label: int, rng: random.Random, image_size: int = 64, colour: str = "class") -> object:
    """One RGB ``PIL.Image`` of class ``label`` (see the module docstring for ``colour``)."""
    from PIL import Image, ImageDraw

    if colour not in ("class", "random"):
        raise ValueError(f"colour must be 'class' or 'random', got {colour!r}")
    shape, fill = class_style(label)
    if colour == "random":
        fill = _random_colour(rng)
        background = tuple(int(0.35 * c) for c in _random_colour(rng))
    else:
        background = (rng.randint(40, 90),) * 3
        fill = tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in fill)
    image = Image.new("RGB", (image_size, image_size), background)
    draw = ImageDraw.Draw(image)
    side = rng.uniform(0.45, 0.8) * image_size
    x1 = rng.uniform(0, image_size - side)
    y1 = rng.uniform(0, image_size - side)
    _draw_shape(draw, shape, (int(x1), int(y1), int(x1 + side), int(y1 + side)), fill)
    noise = Image.frombytes("L", (image_size, image_size), rng.randbytes(image_size * image_size)).convert("RGB")
    return Image.blend(image, noise, 0.1)


def write_csv(path: Path, rows: list[tuple[int, str, int]]) -> None:
    """Write ``id,filename,label`` rows under the header, as the course's CSVs are."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def _labels(count: int, num_classes: int, rng: random.Random) -> list[int]:
    labels = [i % num_classes for i in range(count)]
    rng.shuffle(labels)
    return labels


def _check_classes(num_classes: int, colour: str) -> None:
    limit = len(SHAPES) if colour == "random" else min(len(OFFICE_HOME_CLASSES), len(SHAPES) * len(PALETTE))
    if not 1 <= num_classes <= limit:
        raise ValueError(f"num_classes must be in [1, {limit}] with colour={colour!r}, got {num_classes}")


def make_office_home(root: Path | str, splits: dict[str, int] | None = None, num_classes: int = 65,
                     image_size: int = 64, seed: int = 0, colour: str = "class") -> dict[str, Split]:
    """Write an Office-Home-style folder: ``root/{split}.csv`` and ``root/{split}/*.jpg``.

    Args:
        root: the ``office`` folder to create (parents are created).
        splits: images per split, e.g. ``{"train": 130, "val": 65}`` (the default).
        num_classes: labels ``0 .. num_classes - 1`` (65 in the course), balanced.
        image_size: side of the square images.
        seed: everything is a function of it.
        colour: ``"class"`` (a class is shape and colour) or ``"random"`` (only the shape).

    Returns:
        dict[str, Split]: what was written, per split. Ids run 0..N-1 in CSV order.
    """
    _check_classes(num_classes, colour)
    splits = {"train": 130, "val": 65} if splits is None else splits
    root = Path(root)
    result = {}
    for index, (name, count) in enumerate(splits.items()):
        rng = random.Random(f"{seed}-{index}-{name}")
        image_dir = root / name
        image_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for image_id, label in enumerate(_labels(count, num_classes, rng)):
            filename = f"{OFFICE_HOME_CLASSES[label]}_{image_id:05d}.jpg"
            draw_image(label, rng, image_size, colour).save(image_dir / filename, quality=95)
            rows.append((image_id, filename, label))
        write_csv(root / f"{name}.csv", rows)
        result[name] = Split(root / f"{name}.csv", image_dir, rows)
    return result


def make_mini(root: Path | str, count: int = 200, num_classes: int = 8, image_size: int = 64, seed: int = 1,
              colour: str = "random") -> Split:
    """Write a "mini-ImageNet" folder for pre-training: ``root/train/*.jpg`` and ``root/train.csv``.

    The images are what BYOL pre-trains on (it ignores the CSV); the CSV's
    labels train the supervised backbone of settings B and D.
    """
    _check_classes(num_classes, colour)
    root = Path(root)
    image_dir = root / "train"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"mini-{seed}")
    rows = []
    for image_id, label in enumerate(_labels(count, num_classes, rng)):
        filename = f"{image_id:05d}.jpg"
        draw_image(label, rng, image_size, colour).save(image_dir / filename, quality=95)
        rows.append((image_id, filename, label))
    write_csv(root / "train.csv", rows)
    return Split(root / "train.csv", image_dir, rows)

"""Synthetic Russian Wildlife image folders: one sub-folder per class, JPEG (or PNG) images.

The layout is that of the Russian Wildlife data set, with its folder names::

    root/amur_leopard/amur_leopard_0000.jpg
    root/amur_tiger/...
    ...
    root/people/people_0009.jpg

Each class is drawn as its own (shape, colour) pair (``class_style``: the shapes of
``grader.data.voc``, one distinct colour per class) at a random position, size
and shade on a noisy grey background, so the task is learnable and the class of
an image is what you see. Everything is deterministic given
the seed. ``add_clutter`` writes the things a loader must survive or reject
(hidden files, non-image files, an unknown folder, an empty class, a corrupt
image) for tests of error handling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from grader.data.voc import SHAPES, _draw

WILDLIFE_CLASSES = ("amur_leopard", "amur_tiger", "birds", "black_bear", "brown_bear", "dog", "roe_deer",
                    "sika_deer", "wild_boar", "people")
CLASS_TO_IDX = {name: index for index, name in enumerate(WILDLIFE_CLASSES)}
COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (128, 128, 0), (0, 0, 128))


def class_style(index: int) -> tuple[str, tuple[int, int, int]]:
    """(shape, RGB colour) that draws class ``index``: distinct shapes cycle, every colour is distinct."""
    return SHAPES[index % len(SHAPES)], COLOURS[index % len(COLOURS)]


@dataclass
class WildlifeFolder:
    """What ``make_wildlife_folder`` wrote.

    Attributes:
        root (Path): the data set folder.
        samples (list[tuple[str, int]]): every image as (path, label), sorted by
            label then file name (the order ``find_images`` must return).
        counts (dict[str, int]): images per class folder.
    """

    root: Path
    samples: list[tuple[str, int]]
    counts: dict[str, int]

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.samples]


def make_wildlife_folder(root: Path | str, per_class: int | dict[str, int] = 10, *, seed: int = 0,
                         size: tuple[int, int] = (48, 80), classes: tuple[str, ...] = WILDLIFE_CLASSES,
                         object_size: tuple[float, float] = (0.35, 0.8), noise: int = 30,
                         png_every: int = 0, jpeg_quality: int = 92) -> WildlifeFolder:
    """Write a class-per-folder data set of synthetic images.

    Args:
        root: the folder to create (and fill).
        per_class: images per class, or a dict class -> count (imbalanced sets);
            a class missing from the dict gets none and no folder.
        seed: everything is a function of it.
        size: (min, max) side in pixels; width and height are drawn independently.
        object_size: (min, max) object side as a fraction of the image side.
        noise: amplitude of the background noise (0..255).
        png_every: every n-th image of a class is a PNG (0: all JPEG).
        jpeg_quality: JPEG quality.

    Returns:
        WildlifeFolder with the samples in ``find_images`` order.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    counts = per_class if isinstance(per_class, dict) else {name: per_class for name in classes}
    samples: list[tuple[str, int]] = []
    for index, name in enumerate(classes):
        count = counts.get(name, 0)
        if count <= 0:
            continue
        folder = root / name
        folder.mkdir(exist_ok=True)
        shape, colour = class_style(index)
        for number in range(count):
            width, height = rng.randint(*size), rng.randint(*size)
            base = rng.randint(90, 166)
            background = np_rng.integers(base - noise, base + noise + 1, size=(height, width, 3), dtype=np.int16)
            canvas = Image.fromarray(background.clip(0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(canvas)
            w = max(6, int(width * rng.uniform(*object_size)))
            h = max(6, int(height * rng.uniform(*object_size)))
            x1, y1 = rng.randint(0, width - w), rng.randint(0, height - h)
            shade = tuple(int(min(255, max(0, c + rng.randint(-25, 25)))) for c in colour)
            _draw(draw, shape, (x1, y1, x1 + w - 1, y1 + h - 1), shade)
            is_png = png_every > 0 and number % png_every == png_every - 1
            path = folder / f"{name}_{number:04d}.{'png' if is_png else 'jpg'}"
            if is_png:
                canvas.save(path)
            else:
                canvas.save(path, quality=jpeg_quality)
            samples.append((str(path), CLASS_TO_IDX.get(name, index)))
    samples.sort(key=lambda s: (s[1], Path(s[0]).name))
    return WildlifeFolder(root=root, samples=samples, counts={k: v for k, v in counts.items() if v > 0})


def add_clutter(root: Path | str) -> list[str]:
    """Files a loader must ignore: hidden files and folders, non-image files, nested folders, a root README.

    Returns:
        the paths written (none of them is an image of the data set).
    """
    root = Path(root)
    written = []
    for path, data in ((root / "README.txt", b"Russian wildlife (synthetic)\n"),
                       (root / ".DS_Store", b"\0\0"),
                       (root / ".cache" / "x.jpg", b"not really"),
                       (root / "birds" / "notes.txt", b"birds\n"),
                       (root / "birds" / ".hidden.jpg", b"\xff\xd8 not an image"),
                       (root / "dog" / "Thumbs.db", b"\0"),
                       (root / "dog" / "nested" / "puppy.jpg", b"\xff\xd8 not an image")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(str(path))
    return written


def corrupt_image(path: Path | str, mode: str = "garbage") -> None:
    """Make an image file unreadable: ``"garbage"`` (not an image) or ``"truncated"`` (cut in half)."""
    path = Path(path)
    if mode == "garbage":
        path.write_bytes(b"this is not an image\n" * 4)
    elif mode == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: max(16, len(data) // 3)])
    else:
        raise ValueError(f"mode must be 'garbage' or 'truncated', got {mode!r}")

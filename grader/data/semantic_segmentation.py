"""Synthetic segmentation data in the real on-disk formats: the DLCV satellite folder and IDD.

Satellite (DLCV hw1 P3)::

    root/0000_sat.jpg    RGB photo-like image
    root/0000_mask.png   RGB mask, colour-coded: cyan urban, yellow agriculture, purple rangeland,
                         green forest, blue water, white barren, black unknown

IDD (after the IDD toolkit's ``createLabels``)::

    root/leftImg8bit/{split}/{sequence}/{frame}_leftImg8bit.jpg
    root/gtFine/{split}/{sequence}/{frame}_gtFine_labellevel3Ids.png   uint8 level-3 ids (255 = unlabelled)

Every class has its own colour and texture in the images, so the tasks are
learnable. Satellite regions are unions of ``cell x cell`` tiles (contiguous
blobs grown on the coarse grid): with ``cell=32`` a stride-32 model such as
FCN32s can resolve them. Everything is a function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAT_PALETTE = ((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))
# Mean RGB and texture amplitude of each satellite class in the images.
SAT_LOOK = (((150, 150, 160), 10), ((200, 180, 90), 5), ((170, 120, 100), 7), ((40, 100, 40), 8),
            ((30, 60, 150), 3), ((225, 215, 200), 4), ((70, 70, 70), 6))
IDD_LEVEL3_IDS = tuple(range(27))


@dataclass
class SatelliteFolder:
    """What ``make_satellite`` wrote: the folder, the ``xxxx`` names and every mask (class indices)."""

    root: Path
    names: list[str]
    masks: dict[str, np.ndarray] = field(default_factory=dict)


def _blobs(rng: np.random.Generator, rows: int, cols: int, classes: int, regions: tuple[int, int],
           weights: np.ndarray | None) -> np.ndarray:
    """A coarse label grid of a few contiguous regions (nearest of a few random seeds, Manhattan-jittered)."""
    count = int(rng.integers(regions[0], regions[1] + 1))
    seeds = np.stack([rng.uniform(0, rows, count), rng.uniform(0, cols, count)], axis=1)
    labels = rng.choice(classes, size=count, p=weights)
    r, c = np.meshgrid(np.arange(rows) + 0.5, np.arange(cols) + 0.5, indexing="ij")
    jitter = rng.uniform(0, 0.8, size=(count, 1, 1))
    distance = np.abs(r[None] - seeds[:, 0, None, None]) + np.abs(c[None] - seeds[:, 1, None, None]) + jitter
    return labels[np.argmin(distance, axis=0)]


def satellite_image(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB image (uint8 [H, W, 3]) whose colour and texture follow the classes of ``mask``."""
    height, width = mask.shape
    means = np.array([look[0] for look in SAT_LOOK], dtype=np.float64)
    amplitude = np.array([look[1] for look in SAT_LOOK], dtype=np.float64)
    noise = rng.normal(0, 1, size=(height, width, 3))
    # a little shared brightness variation per image, as between satellite tiles
    shade = rng.uniform(-8, 8)
    pixels = means[mask] + amplitude[mask][..., None] * noise + shade
    return np.clip(pixels, 0, 255).round().astype(np.uint8)


def make_satellite(root: Path | str, count: int = 8, *, seed: int = 0, size: tuple[int, int] = (128, 128),
                   cell: int = 32, regions: tuple[int, int] = (2, 4), with_unknown: bool = True,
                   jpeg_quality: int = 95, start: int = 0) -> SatelliteFolder:
    """Write ``count`` pairs ``xxxx_sat.jpg`` / ``xxxx_mask.png`` (DLCV hw1 P3 layout).

    Args:
        root: the folder (created).
        count: number of pairs; names are ``f"{start + i:04d}"``.
        seed: everything is a function of it.
        size: (height, width) in pixels; multiples of ``cell``.
        cell: side of the tiles regions are made of.
        regions: (min, max) number of regions per image.
        with_unknown: whether class 6 (unknown, black) may occur (rarely).
        jpeg_quality: JPEG quality of the images.
        start: number of the first pair.

    Returns:
        SatelliteFolder with the names and the class-index masks (``int64 [H, W]``).
    """
    from PIL import Image

    height, width = size
    if height % cell or width % cell:
        raise ValueError(f"size {size} must be a multiple of cell={cell}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = np.array(SAT_PALETTE, dtype=np.uint8)
    weights = np.array([1, 1, 1, 1, 1, 1, 0.25 if with_unknown else 0.0])
    weights = weights / weights.sum()
    folder = SatelliteFolder(root, [])
    for i in range(count):
        name = f"{start + i:04d}"
        coarse = _blobs(rng, height // cell, width // cell, 7, regions, weights)
        mask = np.kron(coarse, np.ones((cell, cell), dtype=np.int64)).astype(np.int64)
        Image.fromarray(satellite_image(mask, rng), mode="RGB").save(root / f"{name}_sat.jpg",
                                                                      quality=jpeg_quality)
        Image.fromarray(palette[mask], mode="RGB").save(root / f"{name}_mask.png")
        folder.names.append(name)
        folder.masks[name] = mask
    return folder


@dataclass
class IDDFolder:
    """What ``make_idd`` wrote: per split, (image path, mask path, level-3 id array) records."""

    root: Path
    splits: dict[str, list[tuple[Path, Path, np.ndarray]]] = field(default_factory=dict)


def _idd_colour(level3: np.ndarray) -> np.ndarray:
    """A distinct colour per level-3 id (and 255)."""
    ids = np.arange(256)
    table = np.stack([(ids * 67) % 256, (ids * 151 + 40) % 256, (ids * 29 + 90) % 256], axis=1)
    return table[level3].astype(np.float64)


def make_idd(root: Path | str, splits: dict[str, int] | None = None, *, seed: int = 0,
             size: tuple[int, int] = (90, 160), sequences: int = 2, ext: str = "jpg",
             jpeg_quality: int = 95) -> IDDFolder:
    """Write a small IDD segmentation folder of street-like scenes.

    Sky on top (25), road at the bottom (0), then rectangles of random level-3
    ids, including ids the assignment drops (1, 3, 8, 13, ...) and 255.

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``.
        splits: images per split (default ``{"train": 4, "val": 2}``).
        seed: everything is a function of it.
        size: (height, width); IDD's real frames are 1080 x 1920.
        sequences: frames are spread over this many sequence folders.
        ext: ``"jpg"`` or ``"png"`` for the images.
        jpeg_quality: JPEG quality.

    Returns:
        IDDFolder with, per split, sorted records ``(image path, mask path, level3 ids uint8 [H, W])``.
    """
    from PIL import Image

    splits = {"train": 4, "val": 2} if splits is None else splits
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = size
    folder = IDDFolder(root)
    frame = 0
    for split, count in splits.items():
        records = []
        for i in range(count):
            sequence = f"{100 + i % sequences}"
            name = f"frame{frame:04d}"
            frame += 1
            level3 = np.full((height, width), 24, dtype=np.uint8)  # vegetation background
            level3[: height // 3] = 25
            level3[2 * height // 3:] = 0
            for _ in range(int(rng.integers(3, 8))):
                value = int(rng.choice(list(IDD_LEVEL3_IDS) + [255]))
                h = int(rng.integers(height // 8, height // 2))
                w = int(rng.integers(width // 10, width // 3))
                y = int(rng.integers(0, height - h))
                x = int(rng.integers(0, width - w))
                level3[y:y + h, x:x + w] = value
            pixels = _idd_colour(level3) + rng.normal(0, 8, size=(height, width, 3))
            image_dir = root / "leftImg8bit" / split / sequence
            mask_dir = root / "gtFine" / split / sequence
            image_dir.mkdir(parents=True, exist_ok=True)
            mask_dir.mkdir(parents=True, exist_ok=True)
            image_path = image_dir / f"{name}_leftImg8bit.{ext}"
            mask_path = mask_dir / f"{name}_gtFine_labellevel3Ids.png"
            image = Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), mode="RGB")
            image.save(image_path, **({"quality": jpeg_quality} if ext == "jpg" else {}))
            Image.fromarray(level3, mode="L").save(mask_path)
            records.append((image_path, mask_path, level3))
        folder.splits[split] = sorted(records, key=lambda r: (r[0].parent.name, r[0].name))
    return folder

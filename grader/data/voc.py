"""Synthetic PASCAL VOC folders: JPEG scenes of coloured shapes with real VOC XML annotations.

The layout and XML are those of ``VOCdevkit/VOC2007``::

    root/JPEGImages/000001.jpg
    root/Annotations/000001.xml          <annotation><size>..</size><object><name>cat</name>
                                          <difficult>0</difficult><bndbox><xmin>..</xmin>...
    root/ImageSets/Main/{split}.txt       one image id per line
    root/ImageSets/Main/{cls}_{split}.txt "000001  1" / "-1" / " 0" (present, absent, only difficult)

Each class is drawn as its own (shape, colour) pair on a noisy background, so
the task is learnable: the class of an object is the shape and colour you see.
Coordinates follow VOC: 1-based inclusive pixel indices, ``xmin < xmax``.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
SHAPES = ("rectangle", "ellipse", "triangle", "cross", "diamond")
COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200))


def class_style(index: int) -> tuple[str, tuple[int, int, int]]:
    """(shape, RGB colour) that draws class ``index``; distinct for the 20 VOC classes."""
    return SHAPES[index % len(SHAPES)], COLOURS[(index // len(SHAPES)) % len(COLOURS)]


@dataclass
class VOCObject:
    """One annotated object. ``box`` is VOC's 1-based inclusive (xmin, ymin, xmax, ymax)."""

    name: str
    box: tuple[int, int, int, int]
    difficult: bool = False
    truncated: bool = False


@dataclass
class VOCImage:
    image_id: str
    width: int
    height: int
    objects: list[VOCObject] = field(default_factory=list)


@dataclass
class VOCFolder:
    """What ``make_voc`` wrote: the root, the images per split, and every annotation."""

    root: Path
    splits: dict[str, list[str]]
    images: dict[str, VOCImage]
    classes: tuple[str, ...]


def _draw(draw: object, shape: str, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    if shape == "rectangle":
        draw.rectangle([x1, y1, x2, y2], fill=colour)
    elif shape == "ellipse":
        draw.ellipse([x1, y1, x2, y2], fill=colour)
    elif shape == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=colour)
    elif shape == "diamond":
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=colour)
    else:  # cross
        w, h = x2 - x1, y2 - y1
        draw.rectangle([x1 + w // 3, y1, x2 - w // 3, y2], fill=colour)
        draw.rectangle([x1, y1 + h // 3, x2, y2 - h // 3], fill=colour)


def annotation_xml(image: VOCImage, folder: str = "VOC2007") -> str:
    """The VOC XML document of one image."""
    parts = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{image.image_id}.jpg</filename>",
        "\t<source><database>cvgrade synthetic VOC</database></source>",
        f"\t<size><width>{image.width}</width><height>{image.height}</height><depth>3</depth></size>",
        "\t<segmented>0</segmented>",
    ]
    for obj in image.objects:
        x1, y1, x2, y2 = obj.box
        parts += [
            "\t<object>",
            f"\t\t<name>{escape(obj.name)}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{int(obj.truncated)}</truncated>",
            f"\t\t<difficult>{int(obj.difficult)}</difficult>",
            f"\t\t<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox>",
            "\t</object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def make_voc(root: Path | str, splits: dict[str, int] | None = None, *, seed: int = 0,
             classes: tuple[str, ...] = VOC_CLASSES, size: tuple[int, int] = (96, 128),
             objects_per_image: tuple[int, int] = (1, 3), object_size: tuple[float, float] = (0.25, 0.6),
             difficult_rate: float = 0.1, noise: int = 20, jpeg_quality: int = 95) -> VOCFolder:
    """Write a VOC2007-style folder of synthetic scenes.

    Args:
        root: the folder that becomes ``VOC2007`` (JPEGImages/, Annotations/, ImageSets/Main/).
        splits: images per split, e.g. ``{"train": 40, "val": 10, "test": 20}``; ``trainval``
            is written too when both train and val are given.
        seed: everything is a function of it.
        classes: class names (defaults to the 20 VOC classes, alphabetical).
        size: (min, max) image side in pixels; width and height are drawn independently.
        objects_per_image: (min, max) objects per image; a class may repeat in an image.
        object_size: (min, max) object side as a fraction of the image side.
        difficult_rate: probability that an object is marked ``difficult``.
        noise: amplitude of the background noise (0..255).
        jpeg_quality: JPEG quality.

    Returns:
        VOCFolder with the ids per split and the annotation of every image.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    if splits is None:
        splits = {"train": 40, "val": 10, "test": 20}
    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    images: dict[str, VOCImage] = {}
    ids_per_split: dict[str, list[str]] = {}
    counter = 1
    for split, count in splits.items():
        ids = []
        for _ in range(count):
            image_id = f"{counter:06d}"
            counter += 1
            width, height = rng.randint(*size), rng.randint(*size)
            background = np_rng.integers(128 - noise, 128 + noise + 1, size=(height, width, 3), dtype=np.int16)
            canvas = Image.fromarray(background.clip(0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(canvas)
            record = VOCImage(image_id, width, height)
            for _ in range(rng.randint(*objects_per_image)):
                cls = rng.randrange(len(classes))
                w = max(4, int(width * rng.uniform(*object_size)))
                h = max(4, int(height * rng.uniform(*object_size)))
                x1 = rng.randint(0, width - w)
                y1 = rng.randint(0, height - h)
                shape, colour = class_style(cls)
                _draw(draw, shape, (x1, y1, x1 + w - 1, y1 + h - 1), colour)
                record.objects.append(VOCObject(classes[cls], (x1 + 1, y1 + 1, x1 + w, y1 + h),
                                                difficult=rng.random() < difficult_rate))
            canvas.save(root / "JPEGImages" / f"{image_id}.jpg", quality=jpeg_quality)
            (root / "Annotations" / f"{image_id}.xml").write_text(annotation_xml(record))
            images[image_id] = record
            ids.append(image_id)
        ids_per_split[split] = ids
    if "train" in ids_per_split and "val" in ids_per_split and "trainval" not in ids_per_split:
        ids_per_split["trainval"] = ids_per_split["train"] + ids_per_split["val"]
    for split, ids in ids_per_split.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for name in classes:
            lines = []
            for image_id in ids:
                present = [o for o in images[image_id].objects if o.name == name]
                label = -1 if not present else (0 if all(o.difficult for o in present) else 1)
                lines.append(f"{image_id} {label:2d}\n")
            (root / "ImageSets" / "Main" / f"{name}_{split}.txt").write_text("".join(lines))
    return VOCFolder(root=root, splits=ids_per_split, images=images, classes=tuple(classes))

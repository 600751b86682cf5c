"""Synthetic detection data for ``fcos_detection``, in both layouts its data loader reads.

* VOC2007 XML (``JPEGImages/``, ``Annotations/``, ``ImageSets/Main/``), written by
  ``grader.data.voc.make_voc``: coloured shapes, one (shape, colour) per class.
* The handout's JSON layout (EECS 498 / 16-824 ``VOC2007DetectionTiny``):
  ``voc07_{split}.json`` beside the images, a list of
  ``[image_path, [{"xyxy": [x1, y1, x2, y2], "name": class_name}, ...]]``
  with continuous pixel-edge coordinates and no difficult objects.

VOC's 1-based inclusive pixel box ``(xmin, ymin, xmax, ymax)`` becomes the
continuous box ``(xmin - 1, ymin - 1, xmax, ymax)`` in the JSON layout, which
is also what the reader makes of the XML, so both layouts give the same targets.
"""

from __future__ import annotations

import json
from pathlib import Path

from grader.data.voc import VOC_CLASSES, VOCFolder, make_voc

__all__ = ["make_detection_voc", "write_json_layout", "continuous_box", "VOC_CLASSES"]


def continuous_box(box: tuple[int, int, int, int]) -> list[float]:
    """VOC's 1-based inclusive pixel box as continuous ``(x1, y1, x2, y2)`` pixel edges."""
    xmin, ymin, xmax, ymax = box
    return [float(xmin - 1), float(ymin - 1), float(xmax), float(ymax)]


def write_json_layout(folder: VOCFolder, splits: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Write ``voc07_{split}.json`` files (the handout's layout) next to a VOC folder.

    Image paths are relative to ``folder.root`` (``JPEGImages/000001.jpg``), as
    the loader joins them to its ``dataset_dir``. Difficult objects are left
    out, as in the course's tiny VOC set.

    Returns:
        dict[str, Path]: the JSON file of each split.
    """
    written = {}
    for split in splits or tuple(folder.splits):
        entries = []
        for image_id in folder.splits[split]:
            record = folder.images[image_id]
            objects = [{"xyxy": continuous_box(o.box), "name": o.name} for o in record.objects if not o.difficult]
            entries.append([f"JPEGImages/{image_id}.jpg", objects])
        path = Path(folder.root) / f"voc07_{split}.json"
        path.write_text(json.dumps(entries, indent=1))
        written[split] = path
    return written


def make_detection_voc(root: Path | str, splits: dict[str, int] | None = None, *, seed: int = 0,
                       classes: tuple[str, ...] = VOC_CLASSES, size: tuple[int, int] = (96, 160),
                       objects_per_image: tuple[int, int] = (1, 3), object_size: tuple[float, float] = (0.3, 0.7),
                       difficult_rate: float = 0.1, json_layout: bool = True, noise: int = 20) -> VOCFolder:
    """A synthetic VOC2007 folder for detection, plus the JSON layout of every split.

    Args:
        root: the folder to fill (it becomes ``VOC2007``).
        splits: images per split (default ``{"train": 32, "val": 8}``).
        seed: everything is a function of it.
        classes: class names of the objects drawn; a subset of the 20 VOC
            classes keeps the 20-way detector but makes the task easier.
        size: (min, max) image side in pixels.
        objects_per_image: (min, max) objects per image.
        object_size: (min, max) object side as a fraction of the image side.
        difficult_rate: probability that an object is marked ``difficult``.
        json_layout: also write ``voc07_{split}.json``.
        noise: background noise amplitude.

    Returns:
        VOCFolder: what was written (ids per split and every annotation).
    """
    folder = make_voc(root, splits or {"train": 32, "val": 8}, seed=seed, classes=classes, size=size,
                      objects_per_image=objects_per_image, object_size=object_size,
                      difficult_rate=difficult_rate, noise=noise)
    if json_layout:
        write_json_layout(folder)
    return folder

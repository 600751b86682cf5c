"""Synthetic data for ``voc_classification``: VOC folders with chosen annotations, and their label vectors.

Builds on ``grader.data.voc`` (the shared VOC2007 generator):

* ``annotation_cases()``: hand-made images that exercise the annotation rules
  (several objects, repeated classes, difficult objects, a class that is both
  difficult and not in one image), written by ``write_voc_images``;
* ``label_vectors(images, reading)``: the label and weight vectors a correct
  ``preload_anno`` returns, under the "all" and the "any" reading of the
  handout's difficult rule;
* ``make_training_folder(root)``: a tiny ``data/VOCdevkit/VOC2007`` below
  ``root`` (trainval and test) for runs of ``trainer.train``;
* ``make_learnable_voc(root)``: square images with several objects each, on
  which a small CNN reaches a high mAP (learnability checks);
* ``read_tensorboard_events(folder)``: the scalars and histogram tags that a
  training run wrote (to check what ``trainer.train`` logs).
"""

from __future__ import annotations

import random
from pathlib import Path

from grader.data.voc import (
    VOC_CLASSES,
    VOCFolder,
    VOCImage,
    VOCObject,
    _draw,
    annotation_xml,
    class_style,
    make_voc,
)

# "any" first: the S24 starter's words ("weight[i] = 0 iff an object of class i has the `difficult` attribute
# set to 1"); "all" is VOC's own convention (a class counts when one of its objects is not difficult).
READINGS = ("any", "all")


def write_voc_images(root: Path | str, images: list[VOCImage], split: str, *, seed: int = 0,
                     noise: int = 20) -> Path:
    """Write ``images`` (JPEG with their objects drawn, VOC XML) and ``ImageSets/Main/{split}.txt``.

    Args:
        root: the ``VOC2007`` folder (created if needed).
        images: the annotations; each object's box is VOC's 1-based inclusive box.
        split: name of the split file that lists the images (overwritten).
        seed: background noise seed.
        noise: amplitude of the background noise.

    Returns:
        Path: ``root``.
    """
    import numpy as np
    from PIL import Image, ImageDraw

    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for image in images:
        background = rng.integers(128 - noise, 128 + noise + 1, size=(image.height, image.width, 3))
        canvas = Image.fromarray(background.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for obj in image.objects:
            x1, y1, x2, y2 = obj.box
            shape, colour = class_style(VOC_CLASSES.index(obj.name)) if obj.name in VOC_CLASSES else ("rectangle",
                                                                                                      (0, 0, 0))
            _draw(draw, shape, (x1 - 1, y1 - 1, x2 - 1, y2 - 1), colour)
        canvas.save(root / "JPEGImages" / f"{image.image_id}.jpg", quality=95)
        (root / "Annotations" / f"{image.image_id}.xml").write_text(annotation_xml(image))
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i.image_id}\n" for i in images))
    return root


def annotation_cases(first_id: int = 1) -> list[VOCImage]:
    """Hand-made images whose label and weight vectors test every annotation rule."""

    def obj(name: str, difficult: bool = False, box: tuple[int, int, int, int] = (5, 5, 40, 40)) -> VOCObject:
        return VOCObject(name, box, difficult=difficult)

    cases = [
        [obj("aeroplane")],                                                      # first class
        [obj("tvmonitor"), obj("person", box=(30, 20, 70, 60))],                 # last class, two classes
        [obj("dog"), obj("dog", box=(40, 10, 80, 50)), obj("dog", box=(10, 50, 60, 90))],  # repeated class
        [obj("cat", difficult=True), obj("bird")],                               # a difficult-only class
        [obj("horse", difficult=True), obj("horse", box=(40, 40, 90, 90))],      # difficult and not: readings differ
        [obj("horse"), obj("horse", difficult=True, box=(40, 40, 90, 90))],      # the same, other order
        [obj("sheep", difficult=True), obj("sheep", difficult=True, box=(40, 40, 90, 90))],  # all difficult
        [obj("bottle", difficult=True)],                                          # only a difficult object
        [obj("car"), obj("bus"), obj("train", difficult=True), obj("car", difficult=True, box=(50, 50, 90, 90))],
    ]
    return [VOCImage(f"{first_id + i:06d}", 100, 96, objects) for i, objects in enumerate(cases)]


def label_vectors(images: list[VOCImage], reading: str = "all", classes: tuple[str, ...] = VOC_CLASSES) -> tuple:
    """The label and weight vectors of ``images``.

    Args:
        images: annotations.
        reading: ``"all"``: weight 0 for a class all of whose objects in the
            image are difficult (VOC's rule); ``"any"``: weight 0 for a class
            with at least one difficult object.
        classes: class names, in index order.

    Returns:
        tuple: ``labels`` and ``weights``, float32 tensors [N, C].
    """
    import torch

    if reading not in READINGS:
        raise ValueError(f"reading must be one of {READINGS}, got {reading!r}")
    labels = torch.zeros(len(images), len(classes))
    weights = torch.ones(len(images), len(classes))
    for row, image in enumerate(images):
        for index, name in enumerate(classes):
            flags = [o.difficult for o in image.objects if o.name == name]
            if not flags:
                continue
            labels[row, index] = 1.0
            if (all(flags) if reading == "all" else any(flags)):
                weights[row, index] = 0.0
    return labels, weights


def make_training_folder(root: Path | str, *, trainval: int = 24, test: int = 24, seed: int = 0,
                         size: tuple[int, int] = (40, 56)) -> Path:
    """A small VOC2007 at ``root/data/VOCdevkit/VOC2007`` (where the handout's loaders look by default).

    Every class appears in the test split (so every AP is defined) when
    ``test >= 20``.

    Returns:
        Path: the ``VOC2007`` folder.
    """
    voc = Path(root) / "data" / "VOCdevkit" / "VOC2007"
    folder = make_voc(voc, {"trainval": trainval, "test": test}, seed=seed, size=size, difficult_rate=0.1)
    _ensure_every_class(folder, "test", seed)
    return voc


def _ensure_every_class(folder: VOCFolder, split: str, seed: int) -> None:
    """Rewrite some images of ``split`` so that each class has a non-difficult object in it."""
    ids = folder.splits[split]
    present = {o.name for i in ids for o in folder.images[i].objects if not o.difficult}
    missing = [c for c in folder.classes if c not in present]
    if not missing:
        return
    rng = random.Random(seed)
    changed = []
    for slot, name in enumerate(missing):
        image = folder.images[ids[slot % len(ids)]]
        w, h = max(6, image.width // 3), max(6, image.height // 3)
        x1, y1 = rng.randint(1, image.width - w), rng.randint(1, image.height - h)
        image.objects.append(VOCObject(name, (x1, y1, x1 + w - 1, y1 + h - 1)))
        changed.append(image)
    for image in {i.image_id: i for i in changed}.values():
        write_voc_images(folder.root, [image], split="_rewritten", seed=seed)
    (folder.root / "ImageSets" / "Main" / "_rewritten.txt").unlink()


def make_learnable_voc(root: Path | str, *, train: int = 3000, test: int = 400, seed: int = 0, side: int = 32,
                       objects_per_image: tuple[int, int] = (1, 3), grid: int = 2,
                       fill: tuple[float, float] = (0.8, 1.0), difficult_rate: float = 0.05) -> VOCFolder:
    """Square synthetic VOC for learnability checks: several objects per image, class = (shape, colour) drawn.

    Unlike ``make_voc``'s free placement, where objects may hide each other
    completely (a label nobody can see), each object gets its own cell of a
    ``grid x grid`` layout (``fill`` of the cell's side, at a random offset), so every
    label is visible. Splits ``trainval`` and ``test``; classes may repeat in an
    image. (Measured: with objects filling 55-90 % of their cell instead of
    80-100 %, the position jitter alone halves how fast SimpleCNN learns.)

    Returns:
        VOCFolder: what was written.
    """
    rng = random.Random(seed)
    cell = side // grid
    images: dict[str, VOCImage] = {}
    splits: dict[str, list[str]] = {}
    counter = 1
    for split, count in (("trainval", train), ("test", test)):
        records = []
        for _ in range(count):
            image = VOCImage(f"{counter:06d}", side, side)
            counter += 1
            cells = rng.sample(range(grid * grid), rng.randint(*objects_per_image))
            for slot in cells:
                size = rng.randint(int(fill[0] * cell), int(fill[1] * cell))
                x1 = (slot % grid) * cell + rng.randint(0, cell - size)
                y1 = (slot // grid) * cell + rng.randint(0, cell - size)
                name = VOC_CLASSES[rng.randrange(len(VOC_CLASSES))]
                image.objects.append(VOCObject(name, (x1 + 1, y1 + 1, x1 + size, y1 + size),
                                               difficult=rng.random() < difficult_rate))
            records.append(image)
            images[image.image_id] = image
        write_voc_images(root, records, split, seed=seed + len(splits))
        splits[split] = [r.image_id for r in records]
    return VOCFolder(root=Path(root), splits=splits, images=images, classes=VOC_CLASSES)


def read_tensorboard_events(folder: Path | str) -> dict:
    """Every TensorBoard event file below ``folder``, merged.

    Returns:
        dict: ``runs`` (the folders holding event files), ``scalars`` (tag ->
        sorted list of (step, value)) and ``histograms`` (tag -> number of
        histograms written under it).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list] = {}
    histograms: dict[str, int] = {}
    runs = sorted({p.parent for p in Path(folder).rglob("events.out.tfevents.*")})
    for run in runs:
        accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        for tag in tags.get("scalars", []):
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
        for tag in tags.get("histograms", []):
            histograms[tag] = histograms.get(tag, 0) + len(accumulator.Histograms(tag))
    for values in scalars.values():
        values.sort()
    return {"runs": runs, "scalars": scalars, "histograms": histograms}

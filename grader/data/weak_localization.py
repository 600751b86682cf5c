"""Synthetic data for ``weak_localization``: a VOC2007 folder plus selective-search proposals.

The images and XML come from :func:`grader.data.voc.make_voc`. This module adds the
proposal files that the 16-824 ``VOCDataset`` reads, in the layout of the public
selective-search data (``selective_search_data/voc_2007_{split}.mat``)::

    >>> data = scipy.io.loadmat("voc_2007_trainval.mat")
    >>> data["boxes"].shape, data["boxes"].dtype         # one cell per image, split order
    ((1, N), dtype('O'))
    >>> data["boxes"][0][i]                               # int32[K, 4]: y1, x1, y2, x2
    array([[ 12,   3,  80,  61], ...])                    # 1-based inclusive pixel indices
    >>> data["boxScores"][0][i].shape                     # float64[K, 1]: one score per box
    (K, 1)
    >>> data["images"][0][i]                              # the image id, e.g. "000005"
    array(['000005'], dtype='<U6')

Boxes are in the order selective search produced them, not sorted by score: a
loader must sort by ``boxScores`` itself to keep the ``top_n`` best. Coordinates
are ``[y_min, x_min, y_max, x_max]`` (row first), 1-based like the VOC XML, so
``x = boxes[:, 1]`` and ``y = boxes[:, 0]``.

Proposals are a mix of jittered copies of each ground-truth box (some tight,
some loose) and random boxes, with scores that do not depend on the quality of
the box, so that a detector has something to learn and ``top_n`` still matters.
Everything is a function of the seed.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from grader.data.voc import VOC_CLASSES, VOCFolder, VOCImage, make_voc

SPLITS_DEFAULT = {"trainval": 12, "test": 6}
SHAPE_CLASSES = VOC_CLASSES[:5]
"""Five VOC class names that ``make_voc`` draws as five different shapes in one colour:
on a set restricted to them the class of an object is the shape drawn."""
STYLE_CLASSES = tuple(VOC_CLASSES[i] for i in (0, 6, 12, 18, 4))
"""Five VOC class names for ``make_weak_localization_data(..., classes=STYLE_CLASSES, voc_styles=True)``:
five different shapes, four of them in their own colour (``aeroplane`` red rectangle, ``car``
green ellipse, ``horse`` yellow triangle, ``train`` blue cross, ``bottle`` red diamond). Quicker
to learn than ``SHAPE_CLASSES``; the two red classes still differ only by their shape."""


@dataclass
class Proposals:
    """Selective-search proposals of one image, as stored in the ``.mat`` file."""

    image_id: str
    boxes: object  # numpy int32[K, 4]: y1, x1, y2, x2, 1-based inclusive
    scores: object  # numpy float64[K, 1]


@dataclass
class WeakLocalizationData:
    """What :func:`make_weak_localization_data` wrote.

    Attributes:
        data_dir: the ``VOC2007`` folder to pass as ``VOCDataset(data_dir=...)``.
        voc: the images and annotations (see :class:`grader.data.voc.VOCFolder`).
        proposals: per split, the proposals of each image in split order.
    """

    data_dir: Path
    voc: VOCFolder
    proposals: dict[str, list[Proposals]] = field(default_factory=dict)


def synthetic_proposals(image: VOCImage, rng: random.Random, *, per_object: int = 6, random_boxes: int = 14,
                        min_side: int = 4) -> Proposals:
    """Proposals for one image: jittered ground-truth boxes and random boxes, shuffled.

    Args:
        image: the annotated image (VOC boxes, 1-based inclusive).
        rng: the random source.
        per_object: proposals drawn around each object (the first is the object's box itself).
        random_boxes: proposals drawn anywhere in the image.
        min_side: smallest side of a proposal in pixels.

    Returns:
        Proposals with int32 ``[y1, x1, y2, x2]`` boxes and distinct float64 scores in (0, 1).
    """
    import numpy as np

    width, height = image.width, image.height
    rows: list[tuple[int, int, int, int]] = []

    def clip(x1: float, y1: float, x2: float, y2: float) -> tuple[int, int, int, int]:
        x1 = int(round(min(max(x1, 1), width - min_side + 1)))
        y1 = int(round(min(max(y1, 1), height - min_side + 1)))
        x2 = int(round(min(max(x2, x1 + min_side - 1), width)))
        y2 = int(round(min(max(y2, y1 + min_side - 1), height)))
        return y1, x1, y2, x2

    for obj in image.objects:
        x1, y1, x2, y2 = obj.box
        w, h = x2 - x1 + 1, y2 - y1 + 1
        rows.append(clip(x1, y1, x2, y2))
        for k in range(1, per_object):
            jitter = 0.08 if k < per_object // 2 else 0.3
            rows.append(clip(x1 + rng.uniform(-jitter, jitter) * w, y1 + rng.uniform(-jitter, jitter) * h,
                             x2 + rng.uniform(-jitter, jitter) * w, y2 + rng.uniform(-jitter, jitter) * h))
    for _ in range(random_boxes):
        w = rng.randint(min_side, width)
        h = rng.randint(min_side, height)
        x1 = rng.randint(1, width - w + 1)
        y1 = rng.randint(1, height - h + 1)
        rows.append(clip(x1, y1, x1 + w - 1, y1 + h - 1))
    rng.shuffle(rows)
    boxes = np.asarray(rows, dtype=np.int32).reshape(-1, 4)
    # Distinct scores (a permutation of evenly spaced values plus a little noise): no ties at top_n.
    order = list(range(len(rows)))
    rng.shuffle(order)
    scores = np.asarray([(o + 0.5 + rng.uniform(-0.4, 0.4)) / len(rows) for o in order], dtype=np.float64)
    return Proposals(image.image_id, boxes, scores.reshape(-1, 1))


def write_selective_search_mat(path: Path | str, proposals: list[Proposals]) -> Path:
    """Write proposals in the layout of ``voc_2007_{split}.mat`` (see the module docstring).

    Args:
        path: the ``.mat`` file to write (its folder is created).
        proposals: one entry per image, in the order of the split's image list.

    Returns:
        The path written.
    """
    import numpy as np
    import scipy.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = len(proposals)
    boxes = np.empty((1, count), dtype=object)
    scores = np.empty((1, count), dtype=object)
    images = np.empty((1, count), dtype=object)
    for i, entry in enumerate(proposals):
        boxes[0, i] = np.asarray(entry.boxes, dtype=np.int32).reshape(-1, 4)
        scores[0, i] = np.asarray(entry.scores, dtype=np.float64).reshape(-1, 1)
        images[0, i] = entry.image_id
    scipy.io.savemat(path, {"boxes": boxes, "boxScores": scores, "images": images}, do_compression=True)
    return path


def read_selective_search_mat(path: Path | str) -> list[Proposals]:
    """Read a ``voc_2007_{split}.mat`` file back (for tests of the writer)."""
    import numpy as np
    import scipy.io

    data = scipy.io.loadmat(str(path))
    out = []
    for i in range(data["boxes"].shape[1]):
        image_id = str(np.asarray(data["images"][0][i]).reshape(-1)[0])
        out.append(Proposals(image_id, data["boxes"][0][i], data["boxScores"][0][i]))
    return out


@contextlib.contextmanager
def _styles_of(classes: tuple[str, ...]) -> Iterator[None]:
    """While active, ``make_voc`` draws the i-th of ``classes`` in the style of that name's VOC class.

    ``make_voc`` styles an object by its index in the ``classes`` it is given; this maps the
    index back to the name's index among the 20 VOC classes (``grader.data.voc`` has no knob for it).
    """
    from grader.data import voc

    original = voc.class_style
    voc.class_style = lambda index: original(VOC_CLASSES.index(classes[index]))
    try:
        yield
    finally:
        voc.class_style = original


def make_weak_localization_data(root: Path | str, splits: dict[str, int] | None = None, *, seed: int = 0,
                                per_object: int = 6, random_boxes: int = 14, voc_styles: bool = False,
                                **voc_options: object) -> WeakLocalizationData:
    """Write ``root/VOCdevkit/VOC2007`` with images, XML, split lists and selective-search proposals.

    Args:
        root: the folder that receives ``VOCdevkit/VOC2007``.
        splits: images per split, e.g. ``{"trainval": 40, "test": 20}`` (``trainval`` is also
            written when ``train`` and ``val`` are given). A ``.mat`` file is written for every split.
        seed: everything is a function of it.
        per_object, random_boxes: see :func:`synthetic_proposals`.
        voc_styles: draw each class in the style of its name among the 20 VOC classes, not of its
            index in ``classes`` (see ``STYLE_CLASSES``).
        **voc_options: passed to :func:`grader.data.voc.make_voc` (``classes``, ``size``,
            ``objects_per_image``, ``object_size``, ``difficult_rate``, ``noise`` ...).

    Returns:
        WeakLocalizationData: the ``VOC2007`` folder, the annotations and the proposals per split.
    """
    data_dir = Path(root) / "VOCdevkit" / "VOC2007"
    classes = tuple(voc_options.get("classes", VOC_CLASSES))
    with _styles_of(classes) if voc_styles else contextlib.nullcontext():
        voc = make_voc(data_dir, dict(splits or SPLITS_DEFAULT), seed=seed, **voc_options)
    rng = random.Random(f"proposals-{seed}")
    per_image = {image_id: synthetic_proposals(voc.images[image_id], rng, per_object=per_object,
                                               random_boxes=random_boxes)
                 for image_id in voc.images}
    result = WeakLocalizationData(data_dir=data_dir, voc=voc)
    for split, ids in voc.splits.items():
        result.proposals[split] = [per_image[i] for i in ids]
        write_selective_search_mat(data_dir / "selective_search_data" / f"voc_2007_{split}.mat",
                                   result.proposals[split])
    return result

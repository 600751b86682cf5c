"""Question 2.1: the Russian Wildlife data set as an image folder, split, Dataset and loaders.

The data set is one folder per class, named as in ``CLASS_TO_IDX``::

    root/amur_leopard/0001.jpg
    root/amur_tiger/...
    ...
    root/people/...

Labels come from the folder name through the fixed mapping of the handout (not
from the alphabetical order of the folders: ``people`` is 9).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

CLASS_TO_IDX: dict[str, int] = {
    "amur_leopard": 0, "amur_tiger": 1, "birds": 2, "black_bear": 3, "brown_bear": 4,
    "dog": 5, "roe_deer": 6, "sika_deer": 7, "wild_boar": 8, "people": 9,
}
CLASS_NAMES: tuple[str, ...] = tuple(sorted(CLASS_TO_IDX, key=CLASS_TO_IDX.__getitem__))
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPLIT_RATIOS = (0.7, 0.1, 0.2)


def find_images(root: str | os.PathLike, class_to_idx: dict[str, int] | None = None) -> list[tuple[str, int]]:
    """List the images of a class-per-folder data set with their labels.

    Only the direct sub-folders of ``root`` are classes; inside a class folder,
    files whose extension (case-insensitive) is in ``IMAGE_EXTENSIONS`` are
    images; other files, sub-folders and names starting with ``"."`` are
    ignored, as are plain files directly in ``root``.

    Args:
        root: the data set folder.
        class_to_idx: folder name -> label; ``CLASS_TO_IDX`` when None.

    Returns:
        list of ``(path, label)``: ``path`` a string (``os.path.join(root,
        folder, file)``), ``label`` an int; sorted by label, then by file name.

    Raises:
        FileNotFoundError: ``root`` is not a folder (the message quotes it).
        ValueError: a sub-folder that is not a known class (message names the
            folder and lists the known ones), a class folder that is missing, or
            a class folder without images (message names the class).
    """
    raise NotImplementedError("TODO: find_images")


def load_image(path: str | os.PathLike) -> object:
    """Open an image file as an RGB ``PIL.Image.Image`` (grey or RGBA images are converted).

    Raises:
        ValueError: the file cannot be read as an image (missing, truncated,
            not an image); the message names the file.
    """
    raise NotImplementedError("TODO: load_image")


def stratified_split(labels: Sequence[int] | Tensor, ratios: Sequence[float] = SPLIT_RATIOS,
                     seed: int = 0) -> tuple[list[int], ...]:
    """Split sample indices into parts with the same class proportions (train/val/test 0.7/0.1/0.2).

    Within each class the samples are shuffled (a ``torch.Generator`` seeded with
    ``seed``: the same call always gives the same split) and cut at the rounded
    cumulative ratios: with ``n_c`` samples in class ``c``, part ``j`` receives
    ``round(n_c * (r_0 + ... + r_j)) - round(n_c * (r_0 + ... + r_{j-1}))``
    of them (``round(x) = floor(x + 0.5)``; the last part takes the rest), so
    every part holds its share of every class to within one sample.
    No Python loop over samples (vectorize with a permutation and a stable sort).

    Args:
        labels (Sequence[int] | Tensor[N]): the class of each sample (any ints >= 0).
        ratios: non-negative fractions that sum to 1 (within 1e-6), one per part.
        seed (int): seed of the shuffle.

    Returns:
        tuple of lists of int, one per ratio: the indices of each part, each
        list sorted ascending. Together they hold every index exactly once.

    Raises:
        ValueError: ratios that are negative or do not sum to 1, or negative labels.
    """
    raise NotImplementedError("TODO: stratified_split")


class WildlifeDataset(Dataset):
    """Images and labels of a list of ``(path, label)`` samples (e.g. one part of the split).

    Attributes:
        samples (list[tuple[str, int]]): the samples, in order.
        targets (list[int]): the label of each sample.
        transform (Callable | None): applied to the RGB ``PIL`` image.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable | None = None):
        """Keep the samples (as a list of ``(str, int)`` tuples) and the transform; read no image yet."""
        raise NotImplementedError("TODO: WildlifeDataset.__init__")

    @classmethod
    def from_folder(cls, root: str | os.PathLike, transform: Callable | None = None) -> WildlifeDataset:
        """The whole data set of a class-per-folder ``root`` (see ``find_images``)."""
        raise NotImplementedError("TODO: WildlifeDataset.from_folder")

    def __len__(self) -> int:
        raise NotImplementedError("TODO: WildlifeDataset.__len__")

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """The sample ``index`` as ``(image, label)``.

        Returns:
            (Tensor[3, H, W], int): the transformed image; without a transform,
            the RGB image as float32 in [0, 1] (``torchvision.transforms.ToTensor``).

        Raises:
            ValueError: the image cannot be read (see ``load_image``).
        """
        raise NotImplementedError("TODO: WildlifeDataset.__getitem__")


def build_transforms(train: bool, size: int = 224) -> Callable:
    """The image transform of each split, Q2.1 and Q2.4(a).

    Evaluation (``train=False``): resize to ``size x size``, convert to a float
    tensor in [0, 1], normalise with ``IMAGENET_MEAN`` / ``IMAGENET_STD``;
    deterministic. Training (``train=True``): the same output format after at
    least three random augmentations that suit wildlife photos (e.g.
    ``RandomResizedCrop``, ``RandomHorizontalFlip``, ``ColorJitter``,
    ``RandomRotation``).

    Returns:
        ``torchvision.transforms.Compose`` (v1 or v2) whose ``transforms`` list
        the steps; applied to an RGB ``PIL`` image it gives a plain
        Tensor[3, size, size] float32 (with ``transforms.v2``, end with
        ``v2.ToPureTensor()``).
    """
    raise NotImplementedError("TODO: build_transforms")


def make_loaders(root: str | os.PathLike, batch_size: int = 32, size: int = 224, seed: int = 0,
                 num_workers: int = 0, augment: bool = True) -> dict[str, DataLoader]:
    """Data loaders of the stratified 0.7 / 0.1 / 0.2 split of ``root``, Q2.1(b).

    ``find_images(root)``, then ``stratified_split(labels, SPLIT_RATIOS, seed)``;
    each part becomes a ``WildlifeDataset`` whose samples keep the order of the
    split's indices. The train set uses ``build_transforms(True, size)`` when
    ``augment`` is true (``build_transforms(False, size)`` otherwise), val and
    test use ``build_transforms(False, size)``. The train loader shuffles (with a
    ``torch.Generator`` seeded with ``seed``); val and test do not.

    Returns:
        ``{"train": DataLoader, "val": DataLoader, "test": DataLoader}``; batches
        are ``(Tensor[B, 3, size, size] float32, Tensor[B] int64)``.
    """
    raise NotImplementedError("TODO: make_loaders")


def class_counts(labels: Sequence[int] | Tensor, num_classes: int = NUM_CLASSES) -> Tensor:
    """Number of samples of each class, Q2.1(c).

    Args:
        labels (Sequence[int] | Tensor[N]): class indices.
        num_classes (int): length of the result (classes without samples count 0).

    Returns:
        Tensor[num_classes] int64.

    Raises:
        ValueError: a label outside ``[0, num_classes)`` (the message quotes it).
    """
    raise NotImplementedError("TODO: class_counts")


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
    # BEGIN SOLUTION
    mapping = CLASS_TO_IDX if class_to_idx is None else class_to_idx
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data set folder {root!r} does not exist or is not a folder")
    folders = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    unknown = [name for name in folders if name not in mapping]
    if unknown:
        raise ValueError(f"unknown class folder(s) {unknown} in {root!r}; expected only {sorted(mapping)}")
    missing = [name for name in mapping if name not in folders]
    if missing:
        raise ValueError(f"class folder(s) {missing} missing from {root!r}")
    samples: list[tuple[str, int]] = []
    for name in sorted(mapping, key=mapping.__getitem__):
        folder = os.path.join(root, name)
        files = sorted(entry.name for entry in os.scandir(folder)
                       if entry.is_file() and not entry.name.startswith(".")
                       and entry.name.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"class folder {name!r} in {root!r} holds no images "
                             f"(extensions {list(IMAGE_EXTENSIONS)})")
        samples.extend((os.path.join(folder, file), mapping[name]) for file in files)
    return samples
    # END SOLUTION


def load_image(path: str | os.PathLike) -> object:
    """Open an image file as an RGB ``PIL.Image.Image`` (grey or RGBA images are converted).

    Raises:
        ValueError: the file cannot be read as an image (missing, truncated,
            not an image); the message names the file.
    """
    # BEGIN SOLUTION
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {exc}") from None
    # END SOLUTION


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
    # BEGIN SOLUTION
    ratios = [float(r) for r in ratios]
    if not ratios or any(r < 0 for r in ratios) or not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise ValueError(f"ratios must be non-negative and sum to 1, got {ratios}")
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"labels must be >= 0, got {int(labels.min())}")
    count = labels.numel()
    if count == 0:
        return tuple([] for _ in ratios)
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(count, generator=generator)
    order = shuffled[torch.sort(labels[shuffled], stable=True).indices]  # grouped by class, random within
    grouped = labels[order]
    sizes = torch.bincount(grouped)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.arange(count) - starts[grouped]  # position of each sample within its class
    cumulative = torch.tensor(ratios, dtype=torch.float64).cumsum(0)
    bounds = torch.floor(sizes[grouped, None].double() * cumulative + 0.5).long()  # [N, parts]
    bounds[:, -1] = sizes[grouped]
    part = (rank[:, None] >= bounds).sum(1)
    return tuple(torch.sort(order[part == j]).values.tolist() for j in range(len(ratios)))
    # END SOLUTION


class WildlifeDataset(Dataset):
    """Images and labels of a list of ``(path, label)`` samples (e.g. one part of the split).

    Attributes:
        samples (list[tuple[str, int]]): the samples, in order.
        targets (list[int]): the label of each sample.
        transform (Callable | None): applied to the RGB ``PIL`` image.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable | None = None):
        """Keep the samples (as a list of ``(str, int)`` tuples) and the transform; read no image yet."""
        # BEGIN SOLUTION
        self.samples = [(os.fspath(path), int(label)) for path, label in samples]
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        # END SOLUTION

    @classmethod
    def from_folder(cls, root: str | os.PathLike, transform: Callable | None = None) -> WildlifeDataset:
        """The whole data set of a class-per-folder ``root`` (see ``find_images``)."""
        # BEGIN SOLUTION
        return cls(find_images(root), transform)
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION
        return len(self.samples)
        # END SOLUTION

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """The sample ``index`` as ``(image, label)``.

        Returns:
            (Tensor[3, H, W], int): the transformed image; without a transform,
            the RGB image as float32 in [0, 1] (``torchvision.transforms.ToTensor``).

        Raises:
            ValueError: the image cannot be read (see ``load_image``).
        """
        # BEGIN SOLUTION
        path, label = self.samples[index]
        image = load_image(path)
        if self.transform is not None:
            return self.transform(image), label
        from torchvision.transforms import functional as TF

        return TF.to_tensor(image), label
        # END SOLUTION


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
    # BEGIN SOLUTION
    from torchvision import transforms as T

    finish = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if not train:
        return T.Compose([T.Resize((size, size)), *finish])
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.8, 1.25)),
        T.RandomHorizontalFlip(),
        T.RandomRotation(10),
        T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        *finish,
    ])
    # END SOLUTION


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
    # BEGIN SOLUTION
    samples = find_images(root)
    parts = stratified_split([label for _, label in samples], SPLIT_RATIOS, seed)
    loaders = {}
    for name, indices in zip(("train", "val", "test"), parts):
        is_train = name == "train"
        dataset = WildlifeDataset([samples[i] for i in indices], build_transforms(is_train and augment, size))
        generator = torch.Generator().manual_seed(seed) if is_train else None
        loaders[name] = DataLoader(dataset, batch_size=batch_size, shuffle=is_train, generator=generator,
                                   num_workers=num_workers)
    return loaders
    # END SOLUTION


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
    # BEGIN SOLUTION
    labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ValueError(f"label {int(bad[0])} is outside [0, {num_classes})")
    return torch.bincount(labels, minlength=num_classes)
    # END SOLUTION


"""Datasets with joint image/mask transforms, class distributions and example finders.

Two on-disk layouts:

* satellite (DLCV hw1 P3): one folder of ``xxxx_sat.jpg`` images and their
  ``xxxx_mask.png`` colour-coded masks (see ``mask_utils``);
* IDD: ``root/leftImg8bit/{split}/{sequence}/{frame}_leftImg8bit.{jpg,png}`` and
  ``root/gtFine/{split}/{sequence}/{frame}_gtFine_labellevel3Ids.png`` (single
  channel level-3 ids, as the IDD toolkit's ``createLabels`` writes them).

Images come out as float32 ``[3, H, W]`` normalised with the ImageNet mean and
std; masks as int64 ``[H, W]`` class indices with 255 for ignored pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from mask_utils import IGNORE_INDEX, idd_level3_to_train, read_mask
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_float_image(image: Image.Image | np.ndarray | Tensor) -> Tensor:
    """An RGB image as a float32 tensor in [0, 1].

    Args:
        image: a PIL image, an ``ndarray[H, W, 3]`` uint8, or a ``Tensor[3, H, W]`` uint8.

    Returns:
        Tensor[3, H, W] (float32): values ``pixel / 255``.
    """
    if isinstance(image, Image.Image):
        image = np.array(image.convert("RGB"))  # a writable copy (torch.from_numpy warns on read-only arrays)
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if image.dtype == torch.uint8:
        return image.to(torch.float32) / 255
    return image.to(torch.float32)


def normalize(image: Tensor) -> Tensor:
    """``(image - IMAGENET_MEAN) / IMAGENET_STD`` per channel.

    Args:
        image (Tensor[..., 3, H, W], float): values in [0, 1].

    Returns:
        Tensor[..., 3, H, W] (float32).
    """
    return TF.normalize(image.to(torch.float32), list(IMAGENET_MEAN), list(IMAGENET_STD))


def resize_pair(image: Tensor, mask: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Resize an image and its mask to the same size.

    The image is resized bilinearly (with antialiasing, as torchvision does);
    the mask with nearest-neighbour interpolation, so that it keeps only the
    labels it had (interpolating a label map invents classes between its labels).

    Args:
        image (Tensor[3, H, W], float): the image.
        mask (Tensor[H, W], int64): class indices or 255.
        size ((int, int)): the output ``(height, width)``.

    Returns:
        (Tensor[3, h, w] float32, Tensor[h, w] int64): the resized pair.

    Raises:
        ValueError: when image and mask sizes differ (quoting both shapes).
    """
    # BEGIN SOLUTION
    if image.shape[-2:] != mask.shape[-2:]:
        raise ValueError(f"image {list(image.shape)} and mask {list(mask.shape)} differ in size")
    size = [int(size[0]), int(size[1])]
    image = TF.resize(image.to(torch.float32), size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    mask = TF.resize(mask[None], size, interpolation=InterpolationMode.NEAREST)[0]
    return image, mask.to(torch.int64)
    # END SOLUTION


class JointTransform:
    """The transform of an (image, mask) pair: to float, resize, optional flip, normalise.

    Args:
        size ((int, int) | None): output ``(height, width)``; None keeps the size.
            The assignment resizes IDD to ``(512, 512)``.
        hflip (float): probability of flipping the pair left-right (the same flip
            for image and mask).
        generator (torch.Generator | None): the randomness of the flip.
    """

    def __init__(self, size: tuple[int, int] | None = (512, 512), hflip: float = 0.0,
                 generator: torch.Generator | None = None):
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip is a probability in [0, 1], got {hflip}")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.hflip = hflip
        self.generator = generator

    def __call__(self, image: Image.Image | np.ndarray | Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Transform one pair.

        Args:
            image: PIL image, ``ndarray[H, W, 3]`` uint8 or ``Tensor[3, H, W]``.
            mask (Tensor[H, W], integer): class indices or 255.

        Returns:
            (Tensor[3, h, w] float32 normalised, Tensor[h, w] int64).
        """
        # BEGIN SOLUTION
        image = to_float_image(image)
        mask = torch.as_tensor(mask).to(torch.int64)
        if self.size is not None:
            image, mask = resize_pair(image, mask, self.size)
        if self.hflip > 0 and float(torch.rand((), generator=self.generator)) < self.hflip:
            image, mask = image.flip(-1), mask.flip(-1)
        return normalize(image), mask
        # END SOLUTION


class SatelliteDataset(Dataset):
    """The satellite set: ``xxxx_sat.jpg`` images with ``xxxx_mask.png`` masks in one folder.

    Args:
        root: the folder.
        transform (callable | None): ``transform(image PIL, mask Tensor[H, W]) ->
            (image, mask)``; default ``JointTransform(size=None)`` (keep the size,
            normalise).

    Items are ``(image Tensor[3, H, W] float32, mask Tensor[H, W] int64)``, in
    sorted file-name order; ``self.names`` holds the ``xxxx`` prefixes.

    Raises:
        FileNotFoundError: when the folder has no ``_sat.jpg`` image, or an image
            has no mask (naming the missing file).
    """

    def __init__(self, root: str | Path, transform=None):
        # BEGIN SOLUTION
        self.root = Path(root)
        self.images = sorted(self.root.glob("*_sat.jpg"))
        if not self.images:
            raise FileNotFoundError(f"no *_sat.jpg images in {self.root}")
        self.names = [p.name[: -len("_sat.jpg")] for p in self.images]
        self.masks = [self.root / f"{name}_mask.png" for name in self.names]
        for path in self.masks:
            if not path.is_file():
                raise FileNotFoundError(f"missing mask {path}")
        self.transform = transform if transform is not None else JointTransform(size=None)
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION
        return len(self.images)
        # END SOLUTION

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # BEGIN SOLUTION
        with Image.open(self.images[index]) as image:
            image = image.convert("RGB")
        return self.transform(image, read_mask(self.masks[index]))
        # END SOLUTION


class IDDDataset(Dataset):
    """IDD segmentation, level-3 ids mapped to the 18 kept classes (255 = ignore).

    Args:
        root: the folder holding ``leftImg8bit/`` and ``gtFine/``.
        split (str): ``"train"``, ``"val"`` or ``"test"``.
        transform (callable | None): joint transform; default
            ``JointTransform((512, 512))`` (nearest-neighbour for the mask).

    Items are ``(image Tensor[3, h, w] float32, mask Tensor[h, w] int64)``, in
    sorted ``(sequence, frame)`` order; ``self.images`` and ``self.masks`` are the
    file paths.

    Raises:
        FileNotFoundError: when the split has no image, or an image has no
            ``_gtFine_labellevel3Ids.png`` mask (naming it).
    """

    def __init__(self, root: str | Path, split: str = "train", transform=None):
        # BEGIN SOLUTION
        self.root = Path(root)
        image_dir = self.root / "leftImg8bit" / split
        self.images = sorted(p for p in image_dir.glob("*/*_leftImg8bit.*") if p.suffix in (".jpg", ".png"))
        if not self.images:
            raise FileNotFoundError(f"no *_leftImg8bit images under {image_dir}")
        self.masks = []
        for path in self.images:
            frame = path.name[: path.name.rindex("_leftImg8bit")]
            mask = self.root / "gtFine" / split / path.parent.name / f"{frame}_gtFine_labellevel3Ids.png"
            if not mask.is_file():
                raise FileNotFoundError(f"missing mask {mask}")
            self.masks.append(mask)
        self.transform = transform if transform is not None else JointTransform((512, 512))
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION
        return len(self.images)
        # END SOLUTION

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # BEGIN SOLUTION
        with Image.open(self.images[index]) as image:
            image = image.convert("RGB")
        with Image.open(self.masks[index]) as mask:
            level3 = np.asarray(mask)
        if level3.ndim != 2:
            raise ValueError(f"{self.masks[index]}: expected a single-channel mask, got shape {level3.shape}")
        return self.transform(image, idd_level3_to_train(level3))
        # END SOLUTION


def split_indices(count: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A random (train, test) split of ``range(count)``, e.g. IDD's 30 % test set.

    The test part has ``round(test_fraction * count)`` indices.

    Args:
        count (int): number of items.
        test_fraction (float): in [0, 1].
        seed (int): seed of the permutation (``torch.Generator().manual_seed(seed)``).

    Returns:
        (Tensor[count - k] int64, Tensor[k] int64): train and test indices, each sorted,
        disjoint, together ``range(count)``.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    k = round(test_fraction * count)
    return permutation[k:].sort().values, permutation[:k].sort().values


def _masks_of(items: Iterable) -> Iterable[Tensor]:
    for item in items:
        yield item[1] if isinstance(item, (tuple, list)) else item


def class_distribution(items: Iterable, num_classes: int, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Number of pixels of each class over a dataset, read one item at a time.

    Args:
        items: an iterable of masks (``Tensor[...]`` integer) or of ``(image, mask)``
            pairs, e.g. a dataset or a DataLoader.
        num_classes (int): C.
        ignore_index (int): label not counted.

    Returns:
        Tensor[C] (int64): pixels per class.

    Raises:
        ValueError: for a label that is neither a class nor ``ignore_index`` (quoting it).

    Count with ``torch.bincount`` per mask; keep only the running counts.
    """
    # BEGIN SOLUTION
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for mask in _masks_of(items):
        mask = torch.as_tensor(mask).reshape(-1).to(torch.int64)
        mask = mask[mask != ignore_index]
        if mask.numel() and (mask.min() < 0 or mask.max() >= num_classes):
            bad = mask[(mask < 0) | (mask >= num_classes)][0]
            raise ValueError(f"label {int(bad)} is not a class (0..{num_classes - 1}) nor {ignore_index}")
        counts += torch.bincount(mask, minlength=num_classes).cpu()
    return counts
    # END SOLUTION


def images_with_class(items: Iterable, class_index: int, k: int = 2) -> list[int]:
    """Indices of the first ``k`` items whose mask contains ``class_index`` (to show examples per class).

    Args:
        items: an iterable of masks or of ``(image, mask)`` pairs.
        class_index (int): the class to look for.
        k (int): how many indices at most.

    Returns:
        list[int]: increasing indices, at most ``k`` (fewer when fewer items have the class).
    """
    # BEGIN SOLUTION
    found: list[int] = []
    if k <= 0:
        return found
    for index, mask in enumerate(_masks_of(items)):
        if bool((torch.as_tensor(mask) == class_index).any()):
            found.append(index)
            if len(found) == k:
                break
    return found
    # END SOLUTION


def plot_class_distribution(counts: Tensor, class_names: tuple[str, ...], path: str | Path,
                            title: str = "pixels per class") -> Path:
    """Save a bar chart of the fraction of pixels of each class.

    Args:
        counts (Tensor[C], int): pixels per class (``class_distribution``).
        class_names (sequence of C str): bar labels.
        path: the PNG to write.
        title (str): the chart's title.

    Returns:
        Path: ``path``.

    Raises:
        ValueError: when ``len(class_names) != C``.
    """
    # BEGIN SOLUTION
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = torch.as_tensor(counts).to(torch.float64)
    if len(class_names) != counts.numel():
        raise ValueError(f"{len(class_names)} class names for {counts.numel()} counts")
    total = counts.sum()
    fractions = (counts / total if total > 0 else counts).numpy()
    figure, axis = plt.subplots(figsize=(max(4, 0.5 * len(class_names)), 3.5))
    axis.bar(range(len(class_names)), fractions)
    axis.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right")
    axis.set_ylabel("fraction of pixels")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return Path(path)
    # END SOLUTION

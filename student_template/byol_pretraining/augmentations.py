"""Image augmentations of BYOL pre-training and of the downstream classifier.

All pipelines use ``torchvision.transforms.v2``. They accept a ``PIL.Image`` or a
uint8 image tensor ``[3, H, W]`` and return a normalised float32 tensor.
Randomness comes from torch's global random number generator, which is what
makes a view reproducible: run the pipeline under a known seed (``two_views``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms import v2

# Channel statistics of the course's mini-ImageNet (used by the seed's pipeline).
MEAN = (0.4705, 0.4495, 0.4037)
STD = (0.2170, 0.2149, 0.2145)


def byol_augmentation(image_size: int = 128, mean: tuple[float, ...] = MEAN,
                      std: tuple[float, ...] = STD) -> v2.Compose:
    """The random augmentation that makes one BYOL view (and trains the downstream classifier).

    A ``v2.Compose`` of, in this order (the order fixes how random numbers are
    drawn, so keep it):

    1. ``RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.3)``
    2. ``RandomGrayscale(p=0.2)``
    3. ``RandomHorizontalFlip()`` (p = 0.5)
    4. ``RandomApply([GaussianBlur((3, 3), sigma=(1.0, 2.0))], p=0.2)``
    5. ``RandomResizedCrop((image_size, image_size))`` (default scale and ratio)
    6. ``ToImage()`` then ``ToDtype(torch.float32, scale=True)``
    7. ``Normalize(mean, std)``

    Args:
        image_size (int): side of the square output, >= 1.
        mean (tuple[float, float, float]): per-channel mean to subtract.
        std (tuple[float, float, float]): per-channel standard deviation to divide by.

    Returns:
        v2.Compose: maps an image to a float32 ``Tensor[3, image_size, image_size]``.

    Raises:
        ValueError: when ``image_size`` < 1 (the message quotes it).
    """
    raise NotImplementedError("TODO: byol_augmentation")


def eval_transform(image_size: int = 128, mean: tuple[float, ...] = MEAN,
                   std: tuple[float, ...] = STD) -> v2.Compose:
    """Deterministic pipeline for evaluation and feature extraction.

    ``Resize((image_size, image_size))``, ``ToImage()``,
    ``ToDtype(torch.float32, scale=True)``, ``Normalize(mean, std)``.

    Returns:
        v2.Compose: maps an image to a float32 ``Tensor[3, image_size, image_size]``.
    """
    return v2.Compose([
        v2.Resize((image_size, image_size)),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ])


def two_views(image: Any, transform: Callable[[Any], Tensor],
              seeds: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """Two augmented views of the same image.

    Both views come from ``image`` itself, each through its own call of
    ``transform``. With ``seeds=None`` the two calls draw from torch's global
    random number generator one after the other (so they differ). With
    ``seeds=(s1, s2)``, view ``k`` is made with the generator seeded by
    ``seeds[k]`` (``torch.manual_seed``) inside ``torch.random.fork_rng(devices=[])``:
    the views are reproducible, and the global generator is left exactly as it
    was before the call.

    Args:
        image: a ``PIL.Image`` or an image tensor, passed to ``transform`` unchanged.
        transform: the augmentation (e.g. ``byol_augmentation()``).
        seeds (tuple[int, int] | None): the seed of each view, or None.

    Returns:
        tuple[Tensor, Tensor]: ``(view1, view2)``.

    Raises:
        ValueError: when ``seeds`` is not two different integers (equal seeds
            would make identical views); the message quotes ``seeds``.
    """
    # Hint: torch.random.fork_rng(devices=[]) restores the global generator when its block ends.
    raise NotImplementedError("TODO: two_views")

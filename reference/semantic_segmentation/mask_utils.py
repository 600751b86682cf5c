"""Mask formats: satellite colour codes (DLCV hw1 P3), IDD level-3 ids, Cityscapes trainIds, colour maps.

Satellite masks (DLCV hw1 P3) are RGB PNGs. Each channel is thresholded at 128
(``bit = value >= 128``) and the code ``4*R + 2*G + B`` gives the class::

    code  colour   class
    3     cyan     0 urban
    6     yellow   1 agriculture
    5     purple   2 rangeland
    2     green    3 forest
    1     blue     4 water
    7     white    5 barren
    0     black    6 unknown
    4     red      (no class: an error, never a label)

IDD (Indian Driving Dataset) masks are single-channel PNGs of level-3 ids;
the assignment keeps 18 of them (``IDD_KEPT_LEVEL3_IDS``), numbered 0..17 in
that order (``IDD_CLASSES``); every other value becomes the ignore index 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

IGNORE_INDEX = 255

SAT_CLASSES = ("urban", "agriculture", "rangeland", "forest", "water", "barren", "unknown")
# RGB colour of each satellite class, in class order (used to write masks back).
SAT_PALETTE = ((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))

# The 18 IDD classes the assignment keeps, and their level-3 ids (index i of one is index i of the other).
IDD_CLASSES = ("road", "sidewalk", "person", "rider", "motorcycle", "bicycle", "car", "truck", "bus", "train",
               "wall", "fence", "traffic sign", "traffic light", "pole", "building", "vegetation", "sky")
IDD_KEPT_LEVEL3_IDS = (0, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 18, 19, 20, 22, 24, 25)
# A colour per IDD class (Cityscapes' colours for the same names), for visualisations.
IDD_PALETTE = ((128, 64, 128), (244, 35, 232), (220, 20, 60), (255, 0, 0), (0, 0, 230), (119, 11, 32),
               (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (102, 102, 156), (190, 153, 153),
               (220, 220, 0), (250, 170, 30), (153, 153, 153), (70, 70, 70), (107, 142, 35), (70, 130, 180))

# Cityscapes' 19 training classes, by trainId.
CITYSCAPES_TRAIN_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                            "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                            "motorcycle", "bicycle")


def _as_tensor(array: Tensor | np.ndarray) -> Tensor:
    if isinstance(array, Tensor):
        return array
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))  # copies read-only arrays (PIL's)


def rgb_to_mask(rgb: Tensor | np.ndarray) -> Tensor:
    """Class index of every pixel of a colour-coded satellite mask.

    Each channel is thresholded at 128 (``value >= 128`` is 1) and the code
    ``4*R + 2*G + B`` picks the class (see the module docstring). The red code
    (4) belongs to no class: it is an error, not a label.

    Args:
        rgb (Tensor[H, W, 3] or ndarray[H, W, 3], uint8): the mask image, channels in
            R, G, B order (as PIL reads it; OpenCV's BGR must be flipped first).

    Returns:
        Tensor[H, W] (int64): class indices 0..6.

    Raises:
        ValueError: when the input is not ``[H, W, 3]``, or when a pixel has the red
            code; the message gives the number of such pixels and the first one's
            position and colour.

    No Python loop over pixels.
    """
    # BEGIN SOLUTION
    rgb = _as_tensor(rgb)
    if rgb.dim() != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an RGB mask of shape [H, W, 3], got shape {list(rgb.shape)}")
    bits = (rgb >= 128).to(torch.int64)
    code = 4 * bits[..., 0] + 2 * bits[..., 1] + bits[..., 2]
    lut = torch.tensor([6, 4, 3, 0, -1, 2, 1, 5], dtype=torch.int64, device=code.device)
    mask = lut[code]
    bad = mask < 0
    if bad.any():
        row, col = (int(i) for i in torch.nonzero(bad)[0])
        colour = tuple(int(v) for v in rgb[row, col])
        raise ValueError(f"{int(bad.sum())} pixel(s) have the red code 4 (R >= 128, G < 128, B < 128), which is "
                         f"no class; first at (row {row}, col {col}) with colour {colour}")
    return mask
    # END SOLUTION


def mask_to_rgb(mask: Tensor | np.ndarray, palette: tuple = SAT_PALETTE,
                ignore_color: tuple[int, int, int] = (0, 0, 0)) -> Tensor:
    """Colour-code a mask of class indices.

    Args:
        mask (Tensor[H, W] or ndarray[H, W], integer): class indices in
            ``0..len(palette)-1``, or 255 (ignore).
        palette (sequence of (r, g, b)): the colour of each class; the default is the
            satellite code, so that ``rgb_to_mask(mask_to_rgb(m)) == m``.
        ignore_color ((r, g, b)): the colour of ignored (255) pixels.

    Returns:
        Tensor[H, W, 3] (uint8): the colour image.

    Raises:
        ValueError: for a value that is neither a class of the palette nor 255; the
            message quotes it.
    """
    # BEGIN SOLUTION
    mask = _as_tensor(mask).to(torch.int64)
    colours = torch.tensor(list(palette) + [ignore_color], dtype=torch.uint8, device=mask.device)
    ignore = mask == IGNORE_INDEX
    bad = ((mask < 0) | (mask >= len(palette))) & ~ignore
    if bad.any():
        raise ValueError(f"mask value {int(mask[bad][0])} is not a class of the palette (0..{len(palette) - 1}) "
                         f"nor the ignore index {IGNORE_INDEX}")
    return colours[torch.where(ignore, len(palette), mask)]
    # END SOLUTION


def read_mask(path: str | Path) -> Tensor:
    """Read one colour-coded satellite mask PNG.

    Args:
        path: a ``xxxx_mask.png`` file.

    Returns:
        Tensor[H, W] (int64): class indices 0..6 (see ``rgb_to_mask``).

    Raises:
        ValueError: for the red code, naming the file.
    """
    # BEGIN SOLUTION
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    try:
        return rgb_to_mask(rgb)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    # END SOLUTION


def write_mask(path: str | Path, mask: Tensor | np.ndarray) -> None:
    """Write a mask of satellite classes 0..6 as a colour-coded RGB PNG (lossless).

    Args:
        path: where to write (``xxxx_mask.png``).
        mask (Tensor[H, W], integer): class indices 0..6.
    """
    # BEGIN SOLUTION
    rgb = mask_to_rgb(_as_tensor(mask).cpu())
    Image.fromarray(rgb.numpy(), mode="RGB").save(path, format="PNG")
    # END SOLUTION


def read_masks(filepath: str | Path) -> np.ndarray:
    """All masks of a folder, as the course's ``mean_iou_evaluate.read_masks`` returns them.

    Reads every ``.png`` file of the folder in sorted file-name order. Unlike the
    course's script, which leaves the red code as uninitialised memory, a red
    pixel is an error.

    Args:
        filepath: a folder of ``xxxx_mask.png`` files, all of one size.

    Returns:
        ndarray[N, H, W] (int64): class indices 0..6.

    Raises:
        ValueError: for the red code (naming the file), for masks of different
            sizes, or for a folder without ``.png`` files.
    """
    # BEGIN SOLUTION
    files = sorted(p for p in Path(filepath).iterdir() if p.name.endswith(".png"))
    if not files:
        raise ValueError(f"no .png masks in {filepath}")
    masks = [read_mask(p) for p in files]
    shapes = {tuple(m.shape) for m in masks}
    if len(shapes) > 1:
        raise ValueError(f"masks of {filepath} have different sizes: {sorted(shapes)}")
    return torch.stack(masks).numpy()
    # END SOLUTION


def idd_level3_to_train(level3: Tensor | np.ndarray) -> Tensor:
    """Map IDD level-3 ids to the assignment's 18 classes.

    ``IDD_KEPT_LEVEL3_IDS[i]`` becomes ``i``: road 0->0, sidewalk 2->1, person 4->2,
    rider 5->3, motorcycle 6->4, bicycle 7->5, car 9->6, truck 10->7, bus 11->8,
    train 12->9, wall 14->10, fence 15->11, traffic sign 18->12, traffic light
    19->13, pole 20->14, building 22->15, vegetation 24->16, sky 25->17. Every
    other value (1, 3, 8, 13, 16, 17, 21, 23, 26, 255, ...) becomes 255 (ignore).

    Args:
        level3 (Tensor[...] or ndarray[...], integer 0..255): a level-3 id map
            (``*_gtFine_labellevel3Ids.png``).

    Returns:
        Tensor[...] (int64): class indices 0..17 or 255, same shape.

    Raises:
        ValueError: for values outside 0..255 (quoting one).

    Use a lookup table: no Python loop over pixels or classes.
    """
    # BEGIN SOLUTION
    level3 = _as_tensor(level3).to(torch.int64)
    if level3.numel() and (level3.min() < 0 or level3.max() > 255):
        bad = level3[(level3 < 0) | (level3 > 255)][0]
        raise ValueError(f"level-3 ids are 0..255, got {int(bad)}")
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.int64, device=level3.device)
    lut[list(IDD_KEPT_LEVEL3_IDS)] = torch.arange(len(IDD_KEPT_LEVEL3_IDS), device=level3.device)
    return lut[level3]
    # END SOLUTION


def cityscapes_to_idd(train_ids: Tensor | np.ndarray) -> Tensor:
    """Map a Cityscapes trainId map (labels or argmax predictions) to the 18 IDD classes.

    The map follows the class names:

    ============  ===============  =============
    trainId       Cityscapes       IDD class
    ============  ===============  =============
    0             road             0 road
    1             sidewalk         1 sidewalk
    2             building         15 building
    3             wall             10 wall
    4             fence            11 fence
    5             pole             14 pole
    6             traffic light    13 traffic light
    7             traffic sign     12 traffic sign
    8             vegetation       16 vegetation
    9             terrain          255 (IDD keeps no terrain class)
    10            sky              17 sky
    11            person           2 person
    12            rider            3 rider
    13            car              6 car
    14            truck            7 truck
    15            bus              8 bus
    16            train            9 train
    17            motorcycle       4 motorcycle
    18            bicycle          5 bicycle
    255           (ignore)         255
    ============  ===============  =============

    To evaluate a Cityscapes model on IDD, map its *logits* with
    ``cityscapes_logits_to_idd`` (so that terrain can never be predicted) rather
    than its argmax with this function.

    Args:
        train_ids (Tensor[...] or ndarray[...], integer): values 0..18 or 255.

    Returns:
        Tensor[...] (int64): IDD class indices 0..17 or 255, same shape.

    Raises:
        ValueError: for a value that is neither a trainId nor 255 (quoting it).
    """
    # BEGIN SOLUTION
    train_ids = _as_tensor(train_ids).to(torch.int64)
    bad = ((train_ids < 0) | (train_ids >= len(CITYSCAPES_TRAIN_CLASSES))) & (train_ids != IGNORE_INDEX)
    if bad.any():
        raise ValueError(f"Cityscapes trainIds are 0..18 or 255, got {int(train_ids[bad][0])}")
    lut = torch.full((256,), IGNORE_INDEX, dtype=torch.int64, device=train_ids.device)
    lut[:len(CITYSCAPES_TRAIN_CLASSES)] = _cityscapes_table().to(train_ids.device)
    return lut[train_ids]
    # END SOLUTION


# BEGIN SOLUTION NO PROMPT
def _cityscapes_table() -> Tensor:
    """IDD class (or 255) of each Cityscapes trainId, matched by class name."""
    return torch.tensor([IDD_CLASSES.index(name) if name in IDD_CLASSES else IGNORE_INDEX
                         for name in CITYSCAPES_TRAIN_CLASSES], dtype=torch.int64)
# END SOLUTION


def cityscapes_logits_to_idd(logits: Tensor) -> Tensor:
    """Keep the 18 channels of a Cityscapes model's logits that have an IDD class, in IDD order.

    Channel ``i`` of the result is the Cityscapes channel of ``IDD_CLASSES[i]``
    (see the table of ``cityscapes_to_idd``); terrain (trainId 9) is dropped.

    Args:
        logits (Tensor[N, 19, H, W], float): scores over Cityscapes' trainIds.

    Returns:
        Tensor[N, 18, H, W]: scores over the IDD classes (same dtype and device).

    Raises:
        ValueError: when dimension 1 is not 19.
    """
    # BEGIN SOLUTION
    if logits.dim() < 2 or logits.shape[1] != len(CITYSCAPES_TRAIN_CLASSES):
        raise ValueError(f"expected Cityscapes logits [N, 19, H, W], got shape {list(logits.shape)}")
    channels = [CITYSCAPES_TRAIN_CLASSES.index(name) for name in IDD_CLASSES]
    return logits[:, channels]
    # END SOLUTION


def overlay(image: Tensor | np.ndarray, mask: Tensor | np.ndarray, palette: tuple = SAT_PALETTE,
            alpha: float = 0.5) -> Tensor:
    """Blend a colour-coded mask over an image.

    ``out = round((1 - alpha) * image + alpha * colour)`` per pixel and channel
    (round half to even, as ``torch.round``), where ``colour`` is the palette colour of the pixel's
    class; ignored pixels (255) keep the image unchanged.

    Args:
        image (Tensor[H, W, 3] or ndarray[H, W, 3], uint8): the RGB image.
        mask (Tensor[H, W], integer): class indices or 255.
        palette (sequence of (r, g, b)): a colour per class.
        alpha (float): the mask's weight, in [0, 1].

    Returns:
        Tensor[H, W, 3] (uint8).

    Raises:
        ValueError: when alpha is outside [0, 1] or the sizes differ (quoting them).
    """
    # BEGIN SOLUTION
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    image = _as_tensor(image)
    mask = _as_tensor(mask)
    if image.shape[:2] != mask.shape or image.dim() != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an image [H, W, 3] and a mask [H, W] of the same size, got "
                         f"{list(image.shape)} and {list(mask.shape)}")
    colours = mask_to_rgb(mask, palette).to(torch.float64)
    blended = ((1 - alpha) * image.to(torch.float64) + alpha * colours).round()
    keep = (mask == IGNORE_INDEX)[..., None]
    return torch.where(keep, image, blended.to(torch.uint8))
    # END SOLUTION


def save_mask_figure(path: str | Path, image: Tensor | np.ndarray, masks: dict, palette: tuple = SAT_PALETTE,
                     title: str | None = None) -> Path:
    """Save a figure of an image beside colour-coded masks (e.g. ground truth and prediction).

    Args:
        path: the PNG to write.
        image (Tensor[H, W, 3] uint8): the RGB image.
        masks (dict[str, Tensor[H, W]]): panel title -> mask of class indices (255 = ignore).
        palette: a colour per class.
        title: the figure's title.

    Returns:
        Path: ``path``.
    """
    # BEGIN SOLUTION
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 + len(masks)
    figure, axes = plt.subplots(1, panels, figsize=(3 * panels, 3), squeeze=False)
    axes[0, 0].imshow(_as_tensor(image).cpu().numpy())
    axes[0, 0].set_title("image")
    for axis, (name, mask) in zip(axes[0, 1:], masks.items()):
        axis.imshow(mask_to_rgb(_as_tensor(mask).cpu(), palette).numpy())
        axis.set_title(str(name))
    for axis in axes[0]:
        axis.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return Path(path)
    # END SOLUTION

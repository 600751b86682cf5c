"""Public tests of mask formats, datasets and visualisations (shipped to students; no reference needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.semantic_segmentation import make_idd
from grader.student import call_keeping_inputs, student_raises

# The handout's facts, written out here so that the tests do not trust the student's constants.
SAT_PALETTE = ((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))
IDD_KEPT = (0, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 18, 19, 20, 22, 24, 25)
IDD_PALETTE = ((128, 64, 128), (244, 35, 232), (220, 20, 60), (255, 0, 0), (0, 0, 230), (119, 11, 32),
               (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (102, 102, 156), (190, 153, 153),
               (220, 220, 0), (250, 170, 30), (153, 153, 153), (70, 70, 70), (107, 142, 35), (70, 130, 180))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def idd_lut() -> torch.Tensor:
    lut = torch.full((256,), 255, dtype=torch.int64)
    for index, level3 in enumerate(IDD_KEPT):
        lut[level3] = index
    return lut


def nearest_variants(mask: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    """Both readings of 'nearest neighbour' (torchvision's legacy NEAREST and NEAREST_EXACT)."""
    return [TF.resize(mask[None], list(size), interpolation=mode)[0]
            for mode in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT)]


def assert_nearest(got: torch.Tensor, mask: torch.Tensor, size: tuple[int, int], call: str) -> None:
    check(isinstance(got, torch.Tensor) and got.dtype == torch.int64,
          f"the mask should be an int64 tensor, got {got!r:.80}", call=call)
    check(tuple(got.shape) == tuple(size), f"expected a mask of shape {list(size)}, got {list(got.shape)}", call=call)
    new = sorted(set(got.unique().tolist()) - set(mask.unique().tolist()))
    check(not new, f"the resized mask has labels {new[:5]} that the original does not have", call=call,
          hint="resize masks with nearest-neighbour interpolation: bilinear invents labels between classes")
    candidates = nearest_variants(mask, size)
    if not any(torch.equal(got, c) for c in candidates):
        assert_equal(got, candidates[0], call=call, hint="resize masks with nearest-neighbour interpolation")


# -- satellite colour code (DLCV hw1 P3) ---------------------------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("5.1")
def test_rgb_to_mask_colour_code(student):
    """rgb_to_mask: the seven colours, and the threshold at 128"""
    colours = list(SAT_PALETTE) + [(0, 128, 128), (127, 128, 200), (128, 128, 127), (127, 127, 127),
                                   (200, 255, 128), (128, 128, 128), (90, 200, 30), (128, 0, 255)]
    expected = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 0, 0, 1, 6, 5, 5, 3, 2]])
    rgb = torch.tensor([colours], dtype=torch.uint8)
    got = call_keeping_inputs(student.mask_utils.rgb_to_mask, rgb)
    assert_equal(got, expected, call=describe_call("rgb_to_mask", rgb),
                 hint="a channel is 1 when its value is >= 128; the code is 4*R + 2*G + B; channels in RGB order")


@pytest.mark.weight(0.5)
@pytest.mark.number("5.2")
def test_rgb_to_mask_red_is_an_error(student):
    """rgb_to_mask: the unmapped red code is an error, not a label"""
    rgb = torch.tensor([[[0, 255, 255], [255, 0, 0]], [[0, 0, 0], [255, 255, 255]]], dtype=torch.uint8)
    with student_raises("ValueError"):
        student.mask_utils.rgb_to_mask(rgb)


@pytest.mark.weight(1)
@pytest.mark.number("5.3")
def test_write_and_read_mask_files(student, sandbox_tmp_path):
    """write_mask / read_mask: colour-coded PNG files, both ways"""
    generator = torch.Generator().manual_seed(3)
    mask = torch.randint(0, 7, (20, 30), generator=generator)
    palette = np.array(SAT_PALETTE, dtype=np.uint8)
    path = sandbox_tmp_path / "0001_mask.png"
    student.mask_utils.write_mask(str(path), mask)
    check(path.is_file(), "write_mask wrote no file", call=describe_call("write_mask", str(path), mask))
    with Image.open(path) as image:
        check(image.format == "PNG", f"expected a PNG file, got {image.format}")
        written = np.asarray(image.convert("RGB"))
    assert_equal(torch.from_numpy(written.copy()), torch.from_numpy(palette[mask.numpy()]),
                 call=describe_call("write_mask", str(path), mask), what="colours in the file",
                 hint="class c is written with the c-th colour of the satellite code, losslessly")
    other = sandbox_tmp_path / "0002_mask.png"
    Image.fromarray(palette[mask.numpy().T.copy()]).save(other)
    got = student.mask_utils.read_mask(str(other))
    assert_equal(got, mask.T.contiguous(), call=describe_call("read_mask", str(other)))


# -- IDD (CSE344 Q3.1) ----------------------------------------------------------------------------

@pytest.mark.weight(0.5)
@pytest.mark.number("1.1")
def test_idd_level3_ids(student):
    """idd_level3_to_train: the 18 kept level-3 ids, everything else 255"""
    level3 = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    for ids in (level3, level3.long()):  # an int64 map is the caller's own tensor: it must come back unchanged
        got = call_keeping_inputs(student.mask_utils.idd_level3_to_train, ids)
        assert_equal(got, idd_lut()[level3.long()], call=describe_call("idd_level3_to_train", ids),
                     hint="road 0->0, sidewalk 2->1, person 4->2, ..., sky 25->17; every other id becomes 255")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.2")
def test_idd_dataset_items(student, sandbox_tmp_path):
    """IDDDataset: sorted items, 512x512 images and nearest-resized masks of the 18 classes"""
    folder = make_idd(sandbox_tmp_path / "idd", {"train": 3, "val": 1}, seed=5, size=(90, 160))
    dataset = student.seg_dataset.IDDDataset(str(sandbox_tmp_path / "idd"), "train")
    call = f"IDDDataset({str(sandbox_tmp_path / 'idd')!r}, 'train')"
    check(len(dataset) == 3, f"expected 3 items in the train split, got {len(dataset)}", call=call)
    for index, (image_path, _, level3) in enumerate(folder.splits["train"]):
        image, mask = dataset[index]
        item = f"{call}[{index}]"
        check(isinstance(image, torch.Tensor) and image.dtype == torch.float32 and tuple(image.shape) == (3, 512, 512),
              f"expected a float32 image of shape [3, 512, 512], got {describe_call('', image)[1:-1]}", call=item)
        assert_nearest(mask, idd_lut()[torch.from_numpy(level3.astype(np.int64))], (512, 512), item)
        with Image.open(image_path) as pil:
            raw = torch.from_numpy(np.asarray(pil.convert("RGB")).copy()).permute(2, 0, 1).float() / 255
        options = [TF.normalize(TF.resize(raw, [512, 512], antialias=a), list(MEAN), list(STD)) for a in (True, False)]
        error = min(float((image - o).abs().max()) for o in options)
        check(error < 0.05, f"the image differs from the bilinearly resized, ImageNet-normalised image by up to "
              f"{error:.3f}", call=item, hint="items are in sorted order; normalise with the ImageNet mean and std")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.3")
def test_class_distribution_counts_pixels(student):
    """class_distribution: pixels per class over masks, ignore excluded"""
    generator = torch.Generator().manual_seed(11)
    masks = [torch.randint(0, 5, (2, 9, 7), generator=generator) for _ in range(3)]
    masks[0][0, :3] = 255
    masks[2][1] = 255
    expected = torch.from_numpy(np.bincount(torch.cat([m.reshape(-1) for m in masks]).numpy(), minlength=256)[:6])
    got = call_keeping_inputs(student.seg_dataset.class_distribution, masks, 6)
    assert_equal(got, expected, call=describe_call("class_distribution", masks, 6),
                 hint="count pixels per class with torch.bincount(minlength=C), leaving out 255")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.5")
def test_plot_class_distribution_writes_png(student, sandbox_tmp_path):
    """plot_class_distribution: writes a PNG bar chart"""
    path = sandbox_tmp_path / "distribution.png"
    counts = torch.tensor([5, 0, 12, 3])
    student.seg_dataset.plot_class_distribution(counts, ["a", "b", "c", "d"], str(path))
    check(path.is_file() and path.read_bytes()[:8] == PNG_MAGIC, f"expected a PNG file at {path}",
          call=describe_call("plot_class_distribution", counts, ["a", "b", "c", "d"], str(path)))


@pytest.mark.weight(0.5)
@pytest.mark.number("1.6")
def test_mask_to_rgb_with_idd_palette(student):
    """mask_to_rgb: colour-codes IDD classes, ignored pixels black"""
    mask = torch.tensor([[0, 17, 255], [5, 2, 16]])
    expected = torch.tensor([[IDD_PALETTE[0], IDD_PALETTE[17], (0, 0, 0)],
                             [IDD_PALETTE[5], IDD_PALETTE[2], IDD_PALETTE[16]]], dtype=torch.uint8)
    got = call_keeping_inputs(student.mask_utils.mask_to_rgb, mask, list(IDD_PALETTE))
    assert_equal(got, expected, call=describe_call("mask_to_rgb", mask, "IDD_PALETTE"))


@pytest.mark.weight(0.5)
@pytest.mark.number("1.7")
def test_overlay(student):
    """overlay: (1 - alpha) * image + alpha * colour, ignored pixels unchanged"""
    image = torch.tensor([[[9, 14, 100], [7, 200, 40]], [[60, 61, 62], [1, 2, 3]]], dtype=torch.uint8)
    mask = torch.tensor([[0, 5], [255, 3]])
    colours = torch.tensor([[SAT_PALETTE[0], SAT_PALETTE[5]], [(0, 0, 0), SAT_PALETTE[3]]], dtype=torch.float64)
    expected = (0.75 * image.double() + 0.25 * colours).round().to(torch.uint8)
    expected[1, 0] = image[1, 0]
    got = call_keeping_inputs(student.mask_utils.overlay, image, mask, alpha=0.25)
    assert_close(got, expected, atol=0, rtol=0, call=describe_call("overlay", image, mask, alpha=0.25),
                 hint="round((1 - alpha) * image + alpha * colour); keep the image where the mask is 255")

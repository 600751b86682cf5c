"""Public tests of the two-view augmentation (shipped to students; no reference needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs, student_raises

SEEDS = range(12)  # covers each random branch (jitter, grayscale, flip, blur) taken and not taken


@pytest.mark.weight(2)
@pytest.mark.number("1.1")
@pytest.mark.parametrize("image_size", [32, 20])
def test_byol_augmentation_matches_the_seed_pipeline(student, worker, plain, helpers, image_size):
    """byol_augmentation draws the seed's pipeline in the documented order"""
    image = helpers.image_tensor(40, 48, seed=image_size)
    augmentation = student.augmentations.byol_augmentation(image_size)
    oracle = helpers.reference_augmentation(image_size)
    for seed in SEEDS:
        worker.torch.manual_seed(seed)
        got = plain(call_keeping_inputs(augmentation, image))  # the caller's image stays as it was
        expected = helpers.seeded(oracle, image, seed)
        assert_close(got, expected, rtol=1e-4, atol=1e-4,
                     call=f"torch.manual_seed({seed}); byol_augmentation({image_size})(uint8[3, 40, 48] image)",
                     hint="ColorJitter(0.8, 0.8, 0.8, 0.2) p=0.3, RandomGrayscale 0.2, flip, GaussianBlur((3, 3), "
                          "(1.0, 2.0)) p=0.2, RandomResizedCrop, ToImage, ToDtype(float32, scale=True), "
                          "Normalize(MEAN, STD), in this order, from torchvision.transforms.v2")


@pytest.mark.weight(1)
@pytest.mark.number("1.2")
def test_byol_augmentation_rejects_a_bad_size(student):
    """byol_augmentation(0) raises ValueError quoting the size"""
    with student_raises("ValueError", match="0"):
        student.augmentations.byol_augmentation(0)


@pytest.mark.weight(2)
@pytest.mark.number("1.3")
def test_two_views_seeded(student, worker, plain, helpers):
    """two_views with seeds: each view reproducible under its own seed, global generator untouched"""
    image = helpers.image_tensor(36, 36, seed=3)
    augmentation = student.augmentations.byol_augmentation(24)
    oracle = helpers.reference_augmentation(24)
    for seeds in [(5, 6), (123, 7)]:
        worker.torch.manual_seed(99)
        state_before = worker.torch.random.get_rng_state()
        views = call_keeping_inputs(student.augmentations.two_views, image, augmentation, seeds)
        state_after = worker.torch.random.get_rng_state()
        call = describe_call("two_views", image, "byol_augmentation(24)", seeds)
        check(isinstance(views, tuple) and len(views) == 2, f"expected a tuple (view1, view2), got {views!r}",
              call=call)
        views = [plain(v) for v in views]
        for k in range(2):
            assert_close(views[k], helpers.seeded(oracle, image, seeds[k]), rtol=1e-4, atol=1e-4, call=call,
                         what=f"view{k + 1}", hint=f"make view {k + 1} under torch.manual_seed(seeds[{k}])")
        check(not torch.allclose(views[0], views[1]), "the two views are identical", call=call,
              hint="each view must be augmented with its own seed")
        check(torch.equal(state_before, state_after), "two_views changed torch's global random generator",
              call=call, hint="seed inside torch.random.fork_rng(devices=[])")


@pytest.mark.weight(1)
@pytest.mark.number("1.4")
def test_two_views_share_the_image(student, worker, plain, helpers):
    """two_views without seeds: two different views of the same image"""
    image = helpers.image_tensor(30, 30, seed=4)
    augmentation = student.augmentations.byol_augmentation(16)
    worker.torch.manual_seed(0)
    first, second = map(plain, student.augmentations.two_views(image, augmentation))
    call = describe_call("two_views", image, "byol_augmentation(16)")
    check(first.shape == (3, 16, 16) and second.shape == (3, 16, 16),
          f"expected two [3, 16, 16] views, got {list(first.shape)} and {list(second.shape)}", call=call)
    check(not torch.allclose(first, second), "the two views are identical", call=call,
          hint="call the transform once per view")
    # With a deterministic transform both views are the transformed image itself.
    resize = worker.v2.Compose([worker.v2.ToImage(), worker.v2.ToDtype(torch.float32, scale=True)])
    first, second = map(plain, student.augmentations.two_views(image, resize))
    expected = image.float() / 255
    assert_close(first, expected, call=describe_call("two_views", image, "ToImage+ToDtype"), what="view1",
                 hint="both views come from the image given")
    assert_close(second, expected, call=describe_call("two_views", image, "ToImage+ToDtype"), what="view2",
                 hint="both views come from the image given")
    with student_raises("ValueError", match="seeds"):
        student.augmentations.two_views(image, augmentation, (3, 3))


def _write_images(folder, count: int, helpers) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = []
    for i in reversed(range(count)):  # written in reverse order: the dataset must sort
        tensor = helpers.image_tensor(20 + i, 24, seed=100 + i)
        Image.fromarray(tensor.permute(1, 2, 0).numpy()).save(folder / f"img_{i:02d}.png")
        tensors.insert(0, tensor)
    (folder / "notes.txt").write_text("not an image")
    return tensors


@pytest.mark.weight(1)
@pytest.mark.number("1.5")
def test_unlabeled_images(student, worker, plain, helpers, sandbox_tmp_path):
    """UnlabeledImages: sorted images, both views of item i from image i, seeds per item and epoch"""
    tensors = _write_images(sandbox_tmp_path / "mini", 5, helpers)
    to_float = worker.v2.Compose([worker.v2.ToImage(), worker.v2.ToDtype(torch.float32, scale=True)])
    dataset = student.officehome.UnlabeledImages(str(sandbox_tmp_path / "mini"), to_float)
    check(len(dataset) == 5, f"expected 5 images (png files only), got len {len(dataset)}",
          call="UnlabeledImages(folder with 5 png and a txt)")
    for i in (0, 3, 4):
        first, second = map(plain, dataset[i])
        expected = tensors[i].float() / 255
        assert_close(first, expected, call=f"UnlabeledImages(...)[{i}]", what="view1",
                     hint="images sorted by file name; both views of item i come from image i")
        assert_close(second, expected, call=f"UnlabeledImages(...)[{i}]", what="view2",
                     hint="both views of item i come from image i")

    oracle = helpers.reference_augmentation(12)
    seeded = student.officehome.UnlabeledImages(str(sandbox_tmp_path / "mini"),
                                                student.augmentations.byol_augmentation(12), seed=1000)
    from torchvision.transforms import v2

    for epoch, index in [(0, 2), (0, 4), (3, 1)]:
        seeded.set_epoch(epoch)
        first, second = map(plain, seeded[index])
        pil = v2.functional.to_pil_image(tensors[index])
        base = 1000 + 2 * (epoch * 5 + index)
        call = f"UnlabeledImages(..., seed=1000); set_epoch({epoch}); [{index}]"
        assert_close(first, helpers.seeded(oracle, pil, base), rtol=1e-4, atol=1e-4, call=call, what="view1",
                     hint="seeds (s, s + 1) with s = seed + 2 * (epoch * len(self) + index)")
        assert_close(second, helpers.seeded(oracle, pil, base + 1), rtol=1e-4, atol=1e-4, call=call,
                     what="view2", hint="seeds (s, s + 1) with s = seed + 2 * (epoch * len(self) + index)")
    empty = sandbox_tmp_path / "empty"
    empty.mkdir()
    with student_raises("FileNotFoundError"):
        student.officehome.UnlabeledImages(str(empty), to_float)


def _write_mixed_images(folder) -> list:
    """Five images of the course's kinds (grey, RGBA, palette, upper-case suffix, JPEG) and two that do not count.

    Returns each image as the RGB uint8 tensor ``[3, H, W]`` that PIL's ``convert("RGB")`` gives (read back from
    the file, so that JPEG's loss does not matter), in file-name order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(31)
    rgb = [torch.randint(0, 256, (11 + i, 13 + 2 * i, 3), generator=generator, dtype=torch.uint8).numpy()
           for i in range(6)]
    Image.fromarray(rgb[0]).convert("L").save(folder / "img_00_grey.png")
    rgba = np.concatenate([rgb[1], np.linspace(0, 255, rgb[1].shape[1], dtype=np.uint8)[None, :, None]
                           .repeat(rgb[1].shape[0], 0)], axis=2)
    Image.fromarray(rgba).save(folder / "img_01_rgba.png")
    Image.fromarray(rgb[2]).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(folder / "img_02_palette.png")
    Image.fromarray(rgb[3]).save(folder / "img_03_upper.PNG")
    Image.fromarray(rgb[4]).save(folder / "img_04_photo.jpg", quality=90)
    (folder / "more").mkdir(exist_ok=True)
    Image.fromarray(rgb[5]).save(folder / "more" / "img_05_subfolder.png")  # not in root itself: not an image of it
    (folder / "img_06_notes.txt").write_text("not an image")
    files = ["img_00_grey.png", "img_01_rgba.png", "img_02_palette.png", "img_03_upper.PNG", "img_04_photo.jpg"]
    tensors = []
    for name in files:
        with Image.open(folder / name) as image:
            tensors.append(torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1))
    return tensors


@pytest.mark.weight(1)
@pytest.mark.number("1.6")
def test_unlabeled_images_modes_and_global_generator(student, worker, plain, helpers, sandbox_tmp_path):
    """UnlabeledImages: grey/RGBA/palette/JPEG as RGB, any-case suffixes, root only; seed=None: global generator"""
    tensors = _write_mixed_images(sandbox_tmp_path / "mixed")
    call = ("UnlabeledImages(folder with img_00_grey.png, img_01_rgba.png, img_02_palette.png, img_03_upper.PNG, "
            "img_04_photo.jpg, img_06_notes.txt and more/img_05_subfolder.png)")
    to_float = worker.v2.Compose([worker.v2.ToImage(), worker.v2.ToDtype(torch.float32, scale=True)])
    dataset = student.officehome.UnlabeledImages(str(sandbox_tmp_path / "mixed"), to_float)
    check(len(dataset) == 5, f"expected the 5 images of the folder itself, got len {len(dataset)}", call=call,
          hint="the image files of root (suffix .jpg, .jpeg, .png or .bmp in any case), not those of its subfolders")
    kinds = ["grey", "RGBA", "palette ('P')", "upper-case suffix .PNG", "JPEG"]
    for i, kind in enumerate(kinds):
        first, second = map(plain, dataset[i])
        expected = tensors[i].float() / 255
        for what, view in (("view1", first), ("view2", second)):
            check(tuple(view.shape) == tuple(expected.shape),
                  f"{what} of the {kind} image {i} has shape {list(view.shape)}; expected {list(expected.shape)}",
                  call=call + f"[{i}]", hint="open every image as RGB: load_rgb(path) (Image.open(path).convert('RGB'))")
            assert_close(view, expected, call=call + f"[{i}]", what=f"{what} of the {kind} image",
                         hint="open every image as RGB (load_rgb); images sorted by file name")

    from torchvision.transforms import v2

    oracle = helpers.reference_augmentation(12)
    unseeded = student.officehome.UnlabeledImages(str(sandbox_tmp_path / "mixed"),
                                                  student.augmentations.byol_augmentation(12))
    for global_seed, index in [(7, 1), (8, 1), (9, 4)]:
        worker.torch.manual_seed(global_seed)
        first, second = map(plain, unseeded[index])
        pil = v2.functional.to_pil_image(tensors[index])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(global_seed)
            expected = [oracle(pil).as_subclass(torch.Tensor), oracle(pil).as_subclass(torch.Tensor)]
        call = f"UnlabeledImages(..., byol_augmentation(12)) (seed=None); torch.manual_seed({global_seed}); [{index}]"
        for k, view in enumerate((first, second)):
            assert_close(view, expected[k], rtol=1e-4, atol=1e-4, call=call, what=f"view{k + 1}",
                         hint="with seed=None, item i is two_views(image_i, transform): both views drawn from torch's "
                              "global generator, one after the other (no seed of your own)")

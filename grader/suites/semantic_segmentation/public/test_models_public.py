"""Public tests of joint transforms, FCN32s, DeepLabv3, losses and inference (no reference needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.semantic_segmentation import make_satellite
from grader.student import call_keeping_inputs, module_info, num_parameters

SAT_PALETTE = ((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def nearest_variants(mask: torch.Tensor, size: tuple[int, int]) -> list[torch.Tensor]:
    return [TF.resize(mask[None], list(size), interpolation=mode)[0]
            for mode in (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT)]


def one_hot_conv(student, in_channels: int, weight: torch.Tensor, bias: torch.Tensor):
    """A 1x1 convolution built in the student's process, with the given weights."""
    nn = student.import_library("torch.nn")
    conv = nn.Conv2d(in_channels, weight.shape[0], 1)
    conv.load_state_dict({"weight": weight[:, :, None, None].clone(), "bias": bias.clone()})
    return conv


# Each output channel reads one input channel (one product: exact in any summation order), and the
# biases differ, so no two channels tie.
SAT_WEIGHT = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1], [0, 0, 0]])
SAT_BIAS = torch.tensor([0.0, 0.11, 0.23, 0.37, 0.41, 0.53, 0.67])


def decode(path) -> torch.Tensor:
    """Class indices of a colour-coded satellite mask file (exact colours only)."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    code = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
    out = np.full(code.shape, -1, dtype=np.int64)
    for index, (r, g, b) in enumerate(SAT_PALETTE):
        out[code == r * 65536 + g * 256 + b] = index
    return torch.from_numpy(out)


# -- joint transforms (CSE344 Q3.2a: images resized to 512 x 512) ------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("2.1")
@pytest.mark.parametrize("size", [(64, 48), (20, 90)])
def test_resize_pair_nearest_for_masks(student, size):
    """resize_pair: bilinear image, nearest-neighbour mask"""
    generator = torch.Generator().manual_seed(size[0])
    image = torch.rand(3, 37, 53, generator=generator)
    mask = torch.randint(0, 6, (37, 53), generator=generator)
    mask[5:9] = 255
    call = describe_call("resize_pair", image, mask, size)
    got_image, got_mask = call_keeping_inputs(student.seg_dataset.resize_pair, image, mask, size)
    candidates = nearest_variants(mask, size)
    check(isinstance(got_mask, torch.Tensor) and got_mask.dtype == torch.int64,
          f"expected an int64 mask, got {describe_call('', got_mask)[1:-1]}", call=call)
    new = sorted(set(got_mask.unique().tolist()) - set(mask.unique().tolist()))
    check(not new, f"the resized mask has labels {new[:5]} that the input mask does not have", call=call,
          hint="nearest-neighbour interpolation for masks; bilinear invents labels between classes")
    if not any(torch.equal(got_mask, c) for c in candidates):
        assert_equal(got_mask, candidates[0], call=call, what="mask")
    options = [TF.resize(image, list(size), interpolation=InterpolationMode.BILINEAR, antialias=a) for a in (True, False)]
    errors = [float((got_image - o).abs().max()) if got_image.shape == o.shape else float("inf") for o in options]
    if min(errors) > 1e-4:
        assert_close(got_image, options[0], atol=1e-4, call=call, what="image",
                     hint="resize the image bilinearly (torchvision's resize)")


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2")
def test_joint_transform_flips_both(student):
    """JointTransform: resize, normalise, and flip image and mask together"""
    generator = torch.Generator().manual_seed(2)
    image = torch.randint(0, 256, (30, 40, 3), generator=generator, dtype=torch.uint8).numpy()
    mask = torch.randint(0, 4, (30, 40), generator=generator)
    transform = student.seg_dataset.JointTransform((24, 32), hflip=1.0)
    call = "JointTransform((24, 32), hflip=1.0)(image uint8[30, 40, 3], mask int64[30, 40])"
    got_image, got_mask = call_keeping_inputs(transform, image, mask)
    candidates = [c.flip(-1) for c in nearest_variants(mask, (24, 32))]
    if not any(isinstance(got_mask, torch.Tensor) and torch.equal(got_mask, c) for c in candidates):
        assert_equal(got_mask, candidates[0], call=call, what="mask", hint="flip the mask with the image")
    raw = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    options = [TF.normalize(TF.resize(raw, [24, 32], antialias=a), list(MEAN), list(STD)).flip(-1) for a in (True, False)]
    check(isinstance(got_image, torch.Tensor) and got_image.shape == (3, 24, 32) and got_image.dtype == torch.float32,
          f"expected a float32 image [3, 24, 32], got {describe_call('', got_image)[1:-1]}", call=call)
    error = min(float((got_image - o).abs().max()) for o in options)
    check(error < 0.05, f"the image differs from the resized, normalised, flipped image by up to {error:.3f}",
          call=call, hint="to [0, 1], resize, flip like the mask, normalise with the ImageNet mean and std")


# -- FCN32s and DeepLabv3 (DLCV hw1 P3 models A and B) ------------------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("5.5")
@pytest.mark.parametrize("size", [(64, 64), (96, 128), (33, 45), (7, 70)])
@pytest.mark.parametrize("batch", [1, 3])
def test_fcn32s_output_size(student, size, batch):
    """FCN32s: logits of the input's size (multiples of 32 and odd sizes, batches of 1 and 3)"""
    model = student.seg_models.FCN32s(num_classes=7, width=0.125)
    model, _net = model.eval(), model  # two proxies of one object: keep both alive to the end
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    out = model(x)
    check(isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, 7, *size),
          f"expected logits of shape [{batch}, 7, {size[0]}, {size[1]}], got {describe_call('', out)[1:-1]}",
          call=f"FCN32s(num_classes=7, width=0.125)(float32[{batch}, 3, {size[0]}, {size[1]}])",
          hint="upsample x32 with a transposed convolution; pad or crop so that any input size comes back")
    check(bool(torch.isfinite(out).all()), "the logits are not all finite")


VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def fcn32s_layout(num_classes: int, width: float) -> tuple[dict, list]:
    """Expected parameter shapes of the trunk (torchvision's vgg16().features names) and of the head."""
    trunk, channels, index = {}, 3, 0
    for item in VGG16_CFG:
        if item == "M":
            index += 1
            continue
        out = max(1, int(item * width))
        trunk[f"features.{index}.weight"] = (out, channels, 3, 3)
        trunk[f"features.{index}.bias"] = (out,)
        channels, index = out, index + 2
    fc = max(1, int(4096 * width))
    head = [((fc, channels, 7, 7), f"conv6 ({channels} -> {fc}, 7x7)"), ((fc, fc, 1, 1), f"conv7 ({fc} -> {fc}, 1x1)"),
            ((num_classes, fc, 1, 1), f"the score layer ({fc} -> {num_classes}, 1x1)"),
            ((num_classes, num_classes, 64, 64), "the x32 upsampling (ConvTranspose2d, kernel 64)")]
    return trunk, head


@pytest.mark.weight(1)
@pytest.mark.number("5.6")
def test_fcn32s_vgg16_layers(student):
    """FCN32s: a VGG16 trunk, conv6 7x7 and conv7 1x1 convolutions, x32 transposed convolution"""
    # (tests/semantic_segmentation checks that fcn32s_layout(C, 1.0) is torchvision's vgg16().features)
    model = student.seg_models.FCN32s(num_classes=6, width=0.25)
    info = module_info(model)
    call = "FCN32s(num_classes=6, width=0.25)"
    shapes = {name: tuple(shape) for name, shape, _, _ in info["parameters"]}
    trunk, head = fcn32s_layout(6, 0.25)
    for name, shape in trunk.items():
        got = shapes.get(name)
        check(got == shape, f"parameter {name}: expected shape {list(shape)}, got {list(got) if got else 'none'}",
              call=call, hint="self.features must be laid out as torchvision.models.vgg16().features (to load "
                              "VGG16 weights), every channel count times width")
    values = set(shapes.values())
    for shape, what in head:
        check(shape in values, f"no parameter of shape {list(shape)}: {what} is missing", call=call,
              hint="fc6/fc7 become convolutions in a fully convolutional network")
    transposed = [name for name, kind in info["modules"] if kind.endswith("ConvTranspose2d")]
    check(len(transposed) >= 1, "no ConvTranspose2d layer", call=call)
    stride = tuple(model.get_submodule(transposed[-1]).stride)
    check(stride == (32, 32), f"the transposed convolution has stride {stride}, expected (32, 32)", call=call)
    fc = int(4096 * 0.25)
    expected = sum(a * b * 9 + b for a, b in zip((3, 16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128),
                                                   (16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128)))
    expected += 128 * fc * 49 + fc + fc * fc + fc + fc * 6 + 6 + 6 * 6 * 64 * 64
    got = num_parameters(model)
    check(got == expected, f"expected {expected:,} parameters, got {got:,}", call=call,
          hint="conv6 Conv2d(512w, 4096w, 7), conv7 Conv2d(4096w, 4096w, 1), score Conv2d(4096w, C, 1), "
               "ConvTranspose2d(C, C, 64, stride=32, bias=False)")


@pytest.mark.weight(1.5)
@pytest.mark.number("5.9")
def test_deeplabv3_is_torchvision(student):
    """deeplabv3: torchvision's DeepLabv3-ResNet50 with weights=None"""
    model = student.seg_models.deeplabv3(num_classes=7)
    torch.manual_seed(0)
    expected_model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                                        num_classes=7, aux_loss=False).eval()
    call = "deeplabv3(num_classes=7)"
    model.load_state_dict(expected_model.state_dict())
    model, _net = model.eval(), model  # two proxies of one object: keep both alive to the end
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    got = student.seg_models.segmentation_logits(model, x)
    with torch.no_grad():
        expected = expected_model(x)["out"]
    assert_close(got, expected, rtol=1e-4, atol=1e-4, call=f"{call} then its logits of float32[1, 3, 64, 64]",
                 hint="build torchvision.models.segmentation.deeplabv3_resnet50(weights=None, "
                      "weights_backbone=None, num_classes=..., aux_loss=False)")


# -- losses ---------------------------------------------------------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("5.11")
def test_cross_entropy_ignores_255(student):
    """cross_entropy_loss: equals F.cross_entropy(ignore_index=255) for each reduction; 0 when every pixel is ignored"""
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 5, 6, 7, generator=generator)
    target = torch.randint(0, 5, (2, 6, 7), generator=generator)
    target[0, :4] = 255
    got = call_keeping_inputs(student.seg_losses.cross_entropy_loss, logits, target)
    assert_close(got, F.cross_entropy(logits, target, ignore_index=255), call=describe_call(
        "cross_entropy_loss", logits, target), hint="average over the pixels that are not 255 only")
    for reduction in ("sum", "none"):
        got = call_keeping_inputs(student.seg_losses.cross_entropy_loss, logits, target, reduction=reduction)
        assert_close(got, F.cross_entropy(logits, target, ignore_index=255, reduction=reduction),
                     call=describe_call("cross_entropy_loss", logits, target, reduction=reduction),
                     hint="'sum' adds the valid pixels' losses; 'none' gives [N, H, W] with 0 at ignored pixels")
    ignored = torch.full_like(target, 255)
    got = student.seg_losses.cross_entropy_loss(logits, ignored)
    assert_close(got, torch.tensor(0.0), call=describe_call("cross_entropy_loss", logits, ignored),
                 hint="a mean over no valid pixel is 0, not NaN")


def poly1_by_hand(logits: torch.Tensor, target: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Float64 per-pixel loops: mean over valid pixels of -log p_t + epsilon (1 - p_t)."""
    total, count = 0.0, 0
    n, c, h, w = logits.shape
    for i in range(n):
        for y in range(h):
            for x in range(w):
                t = int(target[i, y, x])
                if t == 255:
                    continue
                scores = [float(logits[i, k, y, x]) for k in range(c)]
                top = max(scores)
                denominator = sum(np.exp(s - top) for s in scores)
                pt = np.exp(scores[t] - top) / denominator
                total += -np.log(pt) + epsilon * (1 - pt)
                count += 1
    return torch.tensor(total / count, dtype=torch.float64)


@pytest.mark.weight(1)
@pytest.mark.number("5.12")
@pytest.mark.parametrize("epsilon", [1.0, -0.5, 3.0])
def test_poly1_loss_value(student, epsilon):
    """poly1_loss: mean over valid pixels of CE + epsilon (1 - p_t)"""
    generator = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 4, 3, 5, generator=generator, dtype=torch.float64) * 3
    target = torch.randint(0, 4, (2, 3, 5), generator=generator)
    target[1, 0] = 255
    got = call_keeping_inputs(student.seg_losses.poly1_loss, logits, target, epsilon=epsilon)
    assert_close(got, poly1_by_hand(logits, target, epsilon), rtol=1e-9, atol=1e-12,
                 call=describe_call("poly1_loss", logits, target, epsilon=epsilon),
                 hint="p_t is the softmax probability of the true class; skip (and do not count) 255 pixels")


# -- inference script (DLCV hw1 P3) and evaluation (CSE344 Q3.2a) -----------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("5.17")
def test_predict_folder_writes_masks(student, sandbox_tmp_path):
    """predict_folder: one colour-coded xxxx_mask.png per xxxx_sat.jpg"""
    source = sandbox_tmp_path / "images"
    make_satellite(source, 3, seed=9, size=(64, 96))
    for path in source.glob("*_mask.png"):
        path.unlink()
    (source / "notes.txt").write_text("not an image")
    output = sandbox_tmp_path / "pred"
    model = one_hot_conv(student, 3, SAT_WEIGHT, SAT_BIAS)
    call = describe_call("predict_folder", "<1x1 conv>", str(source), str(output))
    written = student.inference.predict_folder(model, str(source), str(output), progress=False)
    names = sorted(p.name for p in output.iterdir())
    check(names == ["0000_mask.png", "0001_mask.png", "0002_mask.png"],
          f"expected 0000_mask.png, 0001_mask.png, 0002_mask.png in the output folder, found {names}", call=call)
    check(len(written) == 3, f"expected the 3 written paths back, got {written!r:.200}", call=call)
    for name in ("0000", "0001", "0002"):
        with Image.open(source / f"{name}_sat.jpg") as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255
        logits = F.conv2d(TF.normalize(pixels, list(MEAN), list(STD))[None], SAT_WEIGHT[:, :, None, None], SAT_BIAS)
        expected = logits.argmax(1)[0]
        got = decode(output / f"{name}_mask.png")
        check(got.shape == expected.shape, f"{name}_mask.png has size {list(got.shape)}, expected "
              f"{list(expected.shape)}", call=call)
        check(bool((got >= 0).all()), f"{name}_mask.png has colours outside the satellite code", call=call)
        wrong = int((got != expected).sum())
        check(wrong <= expected.numel() // 1000, f"{name}_mask.png: {wrong} of {expected.numel()} pixels differ from "
              "the model's argmax", call=call,
              hint="RGB in [0, 1], normalised with the ImageNet mean/std, model in eval mode, argmax over classes")


@pytest.mark.weight(1)
@pytest.mark.number("2.3")
def test_evaluate_streams_confusion_matrix(student):
    """evaluate: pooled confusion matrix and per-image IoUs of a model over a loader"""
    generator = torch.Generator().manual_seed(8)
    weight = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]])
    bias = torch.tensor([0.0, 0.1, 0.2, 0.3])
    loader = []
    for _ in range(2):
        images = torch.randint(0, 3, (2, 3, 6, 5), generator=generator).float() / 2
        masks = torch.randint(0, 4, (2, 6, 5), generator=generator)
        masks[:, 0] = 255
        loader.append((images, masks))
    model = one_hot_conv(student, 3, weight, bias)
    got_cm, got_ious = call_keeping_inputs(student.inference.evaluate, model, loader, 4)
    preds = torch.cat([F.conv2d(i, weight[:, :, None, None], bias).argmax(1) for i, _ in loader])
    targets = torch.cat([m for _, m in loader])
    keep = targets != 255
    expected_cm = torch.from_numpy(np.bincount((targets[keep] * 4 + preds[keep]).numpy(), minlength=16).reshape(4, 4))
    call = "evaluate(<1x1 conv>, loader of 2 batches of (float32[2, 3, 6, 5], int64[2, 6, 5]), 4)"
    assert_equal(got_cm, expected_cm, call=call, what="confusion matrix")
    expected_ious = torch.full((4, 4), float("nan"), dtype=torch.float64)
    for i in range(4):
        for c in range(4):
            t, p = targets[i][keep[i]] == c, preds[i][keep[i]] == c
            union = int((t | p).sum())
            if union:
                expected_ious[i, c] = int((t & p).sum()) / union
    assert_close(got_ious, expected_ious, equal_nan=True, call=call, what="per-image IoUs")

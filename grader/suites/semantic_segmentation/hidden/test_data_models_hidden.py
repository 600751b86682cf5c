"""Hidden tests of masks, datasets, models, losses and inference against the reference and edge cases."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torchvision.models.vgg import cfgs, make_layers

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.semantic_segmentation import make_idd, make_satellite
from grader.student import call_keeping_inputs, module_info, num_parameters, student_raises, value_and_grad

SAT_PALETTE = ((0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def one_hot_conv(student, weight: torch.Tensor, bias: torch.Tensor):
    nn = student.import_library("torch.nn")
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
    conv.load_state_dict({"weight": weight[:, :, None, None].clone(), "bias": bias.clone()})
    local = torch.nn.Conv2d(weight.shape[1], weight.shape[0], 1)
    local.load_state_dict({"weight": weight[:, :, None, None].clone(), "bias": bias.clone()})
    return conv, local.eval()


def train_mode_model(student, weight: torch.Tensor, bias: torch.Tensor):
    """A 1x1 convolution, batch norm (non-trivial running statistics) and dropout, left in TRAINING mode in the
    student's process; and the same model in eval mode here. Code that evaluates must call model.eval()."""
    classes = weight.shape[0]
    state = {"0.weight": weight[:, :, None, None].clone(), "0.bias": bias.clone(),
             "1.weight": torch.linspace(0.5, 1.5, classes), "1.bias": torch.linspace(-0.2, 0.2, classes),
             "1.running_mean": torch.linspace(-0.3, 0.3, classes).flip(0), "1.running_var": torch.linspace(0.4, 2.0, classes),
             "1.num_batches_tracked": torch.tensor(100)}
    nn = student.import_library("torch.nn")
    remote = nn.Sequential(nn.Conv2d(weight.shape[1], classes, 1), nn.BatchNorm2d(classes), nn.Dropout(0.5))
    remote.load_state_dict(state)
    remote.train()
    local = torch.nn.Sequential(torch.nn.Conv2d(weight.shape[1], classes, 1), torch.nn.BatchNorm2d(classes),
                                torch.nn.Dropout(0.5))
    local.load_state_dict(state)
    return remote, local.eval()


# -- data ------------------------------------------------------------------------------------------

@pytest.mark.weight(0.5)
@pytest.mark.number("1.4")
def test_class_distribution_pairs_and_errors(student):
    """class_distribution: (image, mask) pairs, no items, labels out of range"""
    masks = [torch.tensor([[0, 1], [1, 255]]), torch.tensor([[2, 2], [255, 1]])]
    pairs = [(torch.zeros(3, 2, 2), m) for m in masks]
    got = student.seg_dataset.class_distribution(pairs, 4)
    assert_equal(got, torch.tensor([1, 3, 2, 0]), call=describe_call("class_distribution", pairs, 4))
    got = student.seg_dataset.class_distribution([], 3)
    assert_equal(got, torch.zeros(3, dtype=torch.int64), call="class_distribution([], 3)")
    with student_raises("ValueError"):
        student.seg_dataset.class_distribution([torch.tensor([[0, 5]])], 3)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.8")
def test_images_with_class(student):
    """images_with_class: the first k items whose mask has the class"""
    masks = [torch.tensor([[0, 1]]), torch.tensor([[2, 255]]), torch.tensor([[1, 1]]), torch.tensor([[1, 2]])]
    for args, expected in (((1, 2), [0, 2]), ((2, 5), [1, 3]), ((3, 2), []), ((1, 1), [0])):
        got = student.seg_dataset.images_with_class(masks, *args)
        assert_equal(list(got), expected, call=describe_call("images_with_class", masks, *args))


@pytest.mark.weight(0.5)
@pytest.mark.number("1.9")
def test_save_mask_figure(student, sandbox_tmp_path):
    """save_mask_figure: writes a PNG of the image and its colour-coded masks"""
    image = torch.randint(0, 256, (16, 20, 3), dtype=torch.uint8)
    mask = torch.randint(0, 7, (16, 20))
    path = sandbox_tmp_path / "example.png"
    student.mask_utils.save_mask_figure(str(path), image, {"ground truth": mask, "prediction": mask.flip(0)})
    check(path.is_file() and path.read_bytes()[:8] == PNG_MAGIC, f"expected a PNG file at {path}",
          call=describe_call("save_mask_figure", str(path), image, {"ground truth": mask}))


@pytest.mark.weight(1)
@pytest.mark.number("5.4")
@settings(max_examples=30)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_rgb_to_mask_random_colours(student, reference, height, width, seed):
    """rgb_to_mask on random colours near and far from the threshold"""
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randint(120, 136, (height, width, 3), generator=generator, dtype=torch.uint8)
    far = torch.rand(height, width, 3, generator=generator) < 0.5
    rgb = torch.where(far, torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8), rgb)
    red = (rgb[..., 0] >= 128) & (rgb[..., 1] < 128) & (rgb[..., 2] < 128)
    rgb[red, 2] = 200  # red is an error (tested in 5.2); make those pixels purple
    got = student.mask_utils.rgb_to_mask(rgb)
    assert_equal(got, reference.mask_utils.rgb_to_mask(rgb), call=describe_call("rgb_to_mask", rgb),
                 hint="value >= 128 is 1, code 4*R + 2*G + B")


@pytest.mark.weight(0.5)
@pytest.mark.number("5.4.1")
def test_read_masks_folder(student, sandbox_tmp_path):
    """read_masks: every .png of a folder, in sorted order, as the course's script"""
    folder = make_satellite(sandbox_tmp_path / "val", 3, seed=4, size=(64, 64), cell=16)
    for path in sandbox_tmp_path.joinpath("val").glob("*_sat.jpg"):
        path.unlink()
    got = student.mask_utils.read_masks(str(sandbox_tmp_path / "val"))
    expected = np.stack([folder.masks[name] for name in sorted(folder.names)])
    check(isinstance(got, np.ndarray) and got.shape == expected.shape,
          f"expected an ndarray of shape {list(expected.shape)}, got {describe_call('', got)[1:-1]}",
          call=describe_call("read_masks", str(sandbox_tmp_path / "val")))
    assert_equal(torch.from_numpy(got.astype(np.int64)), torch.from_numpy(expected),
                 call=describe_call("read_masks", str(sandbox_tmp_path / "val")))


@pytest.mark.weight(0.5)
@pytest.mark.number("5.3.1")
def test_satellite_dataset_items(student, reference, sandbox_tmp_path):
    """SatelliteDataset: sorted xxxx_sat.jpg / xxxx_mask.png pairs, its transform, a missing mask"""
    root = sandbox_tmp_path / "sat"
    folder = make_satellite(root, 3, seed=23, size=(40, 56), cell=8)
    (root / "notes.txt").write_text("not an image")
    call = f"SatelliteDataset({str(root)!r})"
    dataset = student.seg_dataset.SatelliteDataset(str(root))
    check(len(dataset) == 3, f"expected 3 items, got {len(dataset)}", call=call)
    names = list(dataset.names)
    check(names == sorted(folder.names), f"expected names {sorted(folder.names)}, got {names!r:.120}", call=call,
          hint="self.names holds the xxxx prefixes, in sorted file-name order")
    expected_set = reference.seg_dataset.SatelliteDataset(root)
    for index in range(3):
        image, mask = dataset[index]
        expected_image, expected_mask = expected_set[index]
        assert_equal(mask, expected_mask, call=f"{call}[{index}]", what="mask",
                     hint="read the colour-coded mask of the same xxxx prefix (read_mask)")
        assert_close(image, expected_image, rtol=0, atol=1e-5, call=f"{call}[{index}]", what="image",
                     hint="RGB in [0, 1], ImageNet-normalised, the image's own size by default")
    transform = student.seg_dataset.JointTransform((24, 32))
    image, mask = student.seg_dataset.SatelliteDataset(str(root), transform)[1]
    check(tuple(image.shape) == (3, 24, 32) and tuple(mask.shape) == (24, 32),
          f"expected an image [3, 24, 32] and a mask [24, 32], got {list(image.shape)} and {list(mask.shape)}",
          call=f"SatelliteDataset({str(root)!r}, JointTransform((24, 32)))[1]",
          hint="apply the transform you are given to every (image, mask) pair")
    (root / f"{folder.names[1]}_mask.png").unlink()
    with student_raises("FileNotFoundError"):
        student.seg_dataset.SatelliteDataset(str(root))


@pytest.mark.weight(0.5)
@pytest.mark.number("1.2.1")
def test_idd_dataset_png_frames(student, sandbox_tmp_path):
    """IDDDataset: _leftImg8bit.png frames too, its transform, a missing mask"""
    root = sandbox_tmp_path / "idd"
    folder = make_idd(root, {"val": 3}, seed=24, size=(45, 80), ext="png")
    call = f"IDDDataset({str(root)!r}, 'val', JointTransform(None))"
    dataset = student.seg_dataset.IDDDataset(str(root), "val", student.seg_dataset.JointTransform(None))
    check(len(dataset) == 3, f"expected 3 items (the frames are _leftImg8bit.png files), got {len(dataset)}",
          call=call, hint="IDD images are _leftImg8bit.jpg or _leftImg8bit.png")
    lut = torch.full((256,), 255, dtype=torch.int64)
    lut[[0, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 18, 19, 20, 22, 24, 25]] = torch.arange(18)
    for index, (_, _, level3) in enumerate(folder.splits["val"]):
        image, mask = dataset[index]
        check(tuple(image.shape) == (3, 45, 80), f"expected an image [3, 45, 80] (JointTransform(None) keeps the "
              f"size), got {describe_call('', image)[1:-1]}", call=f"{call}[{index}]")
        assert_equal(mask, lut[torch.from_numpy(level3.astype(np.int64))], call=f"{call}[{index}]", what="mask",
                     hint="items in sorted order; level-3 ids mapped to the 18 classes, other ids 255")
    first = folder.splits["val"][0][0]
    frame = first.name[: first.name.rindex("_leftImg8bit")]
    (root / "gtFine" / "val" / first.parent.name / f"{frame}_gtFine_labellevel3Ids.png").unlink()
    with student_raises("FileNotFoundError"):
        student.seg_dataset.IDDDataset(str(root), "val")


def flips(student, hflip: float, seed: int, global_seed: int, count: int = 120) -> list[bool]:
    """Which of ``count`` pairs JointTransform(None, hflip, generator seeded with ``seed``) flipped."""
    remote_torch = student.import_library("torch")
    remote_torch.manual_seed(global_seed)
    transform = student.seg_dataset.JointTransform(None, hflip=hflip,
                                                   generator=remote_torch.Generator().manual_seed(seed))
    image = torch.rand(3, 2, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 1, 2], [3, 4, 5]])
    out = []
    for _ in range(count):
        got = transform(image, mask)[1]
        check(torch.equal(got, mask) or torch.equal(got, mask.flip(-1)),
              f"expected the mask flipped or not, got {got.tolist()}", call=f"JointTransform(None, hflip={hflip})")
        out.append(bool(torch.equal(got, mask.flip(-1))))
    return out


@pytest.mark.weight(0.5)
@pytest.mark.number("2.2.1")
def test_joint_transform_follows_its_generator(student):
    """JointTransform: flips with probability hflip, drawn from the generator it is given"""
    call = "JointTransform(None, hflip=0.25, generator=torch.Generator().manual_seed(s)) on 120 pairs"
    first = flips(student, 0.25, seed=7, global_seed=1)
    count = sum(first)
    check(10 <= count <= 50, f"{count} of 120 pairs flipped; with hflip=0.25 about 30 should be", call=call,
          hint="flip when a uniform draw in [0, 1) is below hflip")
    again = flips(student, 0.25, seed=7, global_seed=2)
    check(again == first, "the same generator seed gave different flips once the global RNG changed", call=call,
          hint="draw the flip with the generator you are given (torch.rand((), generator=self.generator)), "
               "not the global RNG")
    other = flips(student, 0.25, seed=8, global_seed=1)
    check(other != first, "two generator seeds gave the very same 120 flips", call=call,
          hint="draw the flip with the generator you are given, not the global RNG")


# -- evaluation on IDD --------------------------------------------------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("2.4")
def test_evaluate_on_idd_loader(student, reference, sandbox_tmp_path):
    """evaluate: an IDDDataset through a DataLoader, model given in training mode, against the reference"""
    make_idd(sandbox_tmp_path / "idd", {"val": 3}, seed=12, size=(45, 80))
    weight = torch.zeros(18, 3)
    weight[torch.arange(18), torch.arange(18) % 3] = torch.linspace(-2, 2, 18)
    bias = torch.linspace(0, 0.9, 18)
    model, local = train_mode_model(student, weight, bias)
    transform = student.seg_dataset.JointTransform((64, 64))
    dataset = student.seg_dataset.IDDDataset(str(sandbox_tmp_path / "idd"), "val", transform)
    data = student.import_library("torch.utils.data")
    loader = data.DataLoader(dataset, batch_size=2)
    got_cm, got_ious = student.inference.evaluate(model, loader, 18)
    ref_dataset = reference.seg_dataset.IDDDataset(sandbox_tmp_path / "idd", "val",
                                                   reference.seg_dataset.JointTransform((64, 64)))
    ref_loader = torch.utils.data.DataLoader(ref_dataset, batch_size=2)
    expected_cm, expected_ious = reference.inference.evaluate(local, ref_loader, 18)
    call = ("evaluate(<1x1 conv, batch norm, dropout, in training mode>, DataLoader(IDDDataset(root, 'val', "
            "JointTransform((64, 64))), batch_size=2), 18)")
    assert_equal(got_cm, expected_cm, call=call, what="confusion matrix",
                 hint="evaluate puts the model in eval mode (model.eval()): no dropout, batch norm's running statistics")
    assert_close(got_ious, expected_ious, equal_nan=True, call=call, what="per-image IoUs")


# -- models --------------------------------------------------------------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("5.7")
def test_fcn32s_width_and_gradients(student, reference):
    """FCN32s: width multiplier, eval-mode determinism, gradients reach the input"""
    model = student.seg_models.FCN32s(num_classes=5, width=0.25)
    expected = reference.seg_models.fcn32s_num_parameters(5, 0.25)
    got = num_parameters(model)
    check(got == expected, f"expected {expected:,} parameters, got {got:,}", call="FCN32s(num_classes=5, width=0.25)",
          hint="every channel count times width, rounded down (int)")
    # a score layer initialised to zero (as in the FCN paper) blocks every gradient: give it random weights
    fc = int(4096 * 0.25)
    score = [name for name, shape, _, _ in module_info(model)["parameters"] if tuple(shape) == (5, fc, 1, 1)]
    check(len(score) == 1, f"expected one score layer of shape [5, {fc}, 1, 1], found {score}")
    model.load_state_dict({score[0]: torch.randn(5, fc, 1, 1, generator=torch.Generator().manual_seed(6))},
                          strict=False)
    model, _net = model.eval(), model  # two proxies of one object: keep both alive to the end
    x = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(7))
    first, second = model(x), model(x)
    assert_equal(first, second, call="FCN32s(5, 0.25).eval() twice on the same input",
                 hint="dropout must be off in eval mode")
    _, (grad,) = value_and_grad(model, x, wrt=(0,))
    check(grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0,
          "no gradient reaches the input", call="FCN32s(5, 0.25)(x).sum().backward()")


def reference_fcn(reference, num_classes: int, width: float, seed: int):
    """The reference FCN32s with random weights everywhere (its score layer starts at zero)."""
    torch.manual_seed(seed)
    model = reference.seg_models.FCN32s(num_classes=num_classes, width=width).eval()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 0.2)
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.bias.uniform_(-0.05, 0.05)
    return model


def load_like(student_model, local: torch.nn.Module, call: str) -> None:
    """Load ``local``'s weights into the student's model: by name, or else by the order of the layers."""
    info = module_info(student_model)
    names = [(name, tuple(shape)) for name, shape, _, _ in info["parameters"]]
    names += [(name, tuple(shape)) for name, shape in info["buffers"] if not name.endswith("num_batches_tracked")]
    state = local.state_dict()
    mine = [(name, tuple(value.shape)) for name, value in state.items()]
    if sorted(names) == sorted(mine):
        student_model.load_state_dict(dict(state))
        return
    check([s for _, s in names] == [s for _, s in mine],
          f"cannot match your parameters {[list(s) for _, s in names][-4:]} (last four) with the layers the "
          f"docstring lists {[list(s) for _, s in mine][-4:]}", call=call,
          hint="self.features (VGG16), self.head (conv6, conv7, score), self.upsample, in that order")
    student_model.load_state_dict({name: value for (name, _), value in zip(names, state.values())}, strict=False)


@pytest.mark.weight(0.5)
@pytest.mark.number("5.5.1")
@pytest.mark.sandbox(call_timeout=120)
def test_fcn32s_logits_match_reference(student, reference):
    """FCN32s: the logits' values (same weights) on odd, non-square inputs, batches of 1 and 3"""
    local = reference_fcn(reference, 4, 0.125, seed=21)
    call = "FCN32s(num_classes=4, width=0.125) with the reference's weights, in eval mode"
    model = student.seg_models.FCN32s(num_classes=4, width=0.125)
    load_like(model, local, call)
    model, _net = model.eval(), model  # two proxies of one object: keep both alive to the end
    generator = torch.Generator().manual_seed(22)
    for shape in ((1, 3, 37, 70), (3, 3, 50, 33), (1, 3, 64, 96)):
        x = torch.randn(*shape, generator=generator)
        got = call_keeping_inputs(model, x)
        with torch.no_grad():
            expected = local(x)
        scale = float(expected.abs().max())
        assert_close(got, expected, rtol=1e-4, atol=1e-4 * scale, call=f"{call} on float32{list(shape)}",
                     hint="zero-pad the input at the bottom and right to the next multiple of 32, run the network, "
                          "crop the logits back to the top-left H x W")


@pytest.mark.weight(0.5)
@pytest.mark.number("5.6.1")
def test_fcn32s_initialisation(student, reference):
    """FCN32s: bilinear x32 upsampling kernel, score layer at zero, zero biases"""
    model = student.seg_models.FCN32s(num_classes=3, width=0.125)
    call = "FCN32s(num_classes=3, width=0.125)"
    state = dict(model.state_dict())
    fc = int(4096 * 0.125)
    upsample = [k for k, v in state.items() if tuple(v.shape) == (3, 3, 64, 64)]
    check(len(upsample) == 1, f"expected one ConvTranspose2d weight of shape [3, 3, 64, 64], found {upsample}",
          call=call)
    assert_close(state[upsample[0]], reference.seg_models.bilinear_kernel(3, 64), rtol=0, atol=1e-6, call=call,
                 what=upsample[0], hint="copy bilinear_kernel(num_classes, 64) into the transposed convolution")
    score = [k for k, v in state.items() if tuple(v.shape) == (3, fc, 1, 1)]
    check(len(score) == 1, f"expected one score layer weight of shape [3, {fc}, 1, 1], found {score}", call=call)
    check(bool((state[score[0]] == 0).all()), f"the score layer {score[0]} does not start at zero", call=call,
          hint="nn.init.zeros_ on the score layer's weight, as in the FCN paper")
    biases = [k for k, v in state.items() if k.endswith("bias") and v.dim() == 1 and bool((v != 0).any())]
    check(not biases, f"biases not initialised to zero: {biases[:4]}", call=call,
          hint="torchvision's VGG initialisation: Kaiming-normal weights, zero biases")


@pytest.mark.weight(1)
@pytest.mark.number("5.8")
@pytest.mark.sandbox(call_timeout=120)
def test_fcn32s_loads_vgg16_features(student, sandbox_tmp_path):
    """FCN32s(backbone_weights=...): loads a local VGG16 checkpoint into its trunk"""
    torch.manual_seed(3)
    vgg = make_layers(cfgs["D"]).eval()  # vgg16().features, without building the classifier
    path = sandbox_tmp_path / "vgg16_features.pth"
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, path)
    model = student.seg_models.FCN32s(num_classes=7, backbone_weights=str(path))
    model, _net = model.eval(), model  # two proxies of one object: keep both alive to the end
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    got = model.features(x)
    with torch.no_grad():
        expected = vgg(x)
    assert_close(got, expected, rtol=1e-4, atol=1e-5, call=f"FCN32s(7, backbone_weights={str(path)!r}).features(x)",
                 hint="load the checkpoint's 'features.*' weights into self.features")


@pytest.mark.weight(1.5)
@pytest.mark.number("5.10")
@pytest.mark.sandbox(call_timeout=120)
def test_deeplabv3_from_checkpoint(student, sandbox_tmp_path):
    """deeplabv3(checkpoint=...): a local checkpoint, with 'module.' prefixes, under 'model'"""
    torch.manual_seed(10)
    expected_model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                                        num_classes=5, aux_loss=False).eval()
    with torch.no_grad():
        for module in expected_model.modules():  # non-trivial batch-norm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    path = sandbox_tmp_path / "deeplab.pt"
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in expected_model.state_dict().items()}}, path)
    model = student.seg_models.deeplabv3(num_classes=5, checkpoint=str(path))
    model, _net = model.eval(), model  # two proxies of one object: keep both alive to the end
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(11))
    got = student.seg_models.segmentation_logits(model, x)
    with torch.no_grad():
        expected = expected_model(x)["out"]
    assert_close(got, expected, rtol=1e-4, atol=1e-4, call=f"deeplabv3(5, checkpoint={str(path)!r})",
                 hint="torch.load(..., weights_only=True), unwrap 'model', strip 'module.'")


# -- losses --------------------------------------------------------------------------------------------

@st.composite
def loss_inputs(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    n, c, h, w = draw(st.integers(1, 2)), draw(st.integers(2, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    scale = draw(st.sampled_from([0.1, 1.0, 8.0, 60.0]))
    logits = torch.randn(n, c, h, w, generator=generator, dtype=torch.float64) * scale
    target = torch.randint(0, c, (n, h, w), generator=generator)
    target[torch.rand(n, h, w, generator=generator) < 0.3] = 255
    epsilon = draw(st.sampled_from([0.0, 1.0, -1.0, 2.5]))
    return logits, target, epsilon


@pytest.mark.weight(1)
@pytest.mark.number("5.13")
@settings(max_examples=25)
@given(loss_inputs())
def test_poly1_gradient(student, reference, inputs):
    """poly1_loss: value and gradient equal the reference (large logits included)"""
    logits, target, epsilon = inputs
    expected, (expected_grad,) = value_and_grad(reference.seg_losses.poly1_loss, logits, target, epsilon, wrt=(0,))
    got, (grad,) = value_and_grad(student.seg_losses.poly1_loss, logits, target, epsilon, wrt=(0,))
    call = describe_call("poly1_loss", logits, target, epsilon)
    assert_close(got, expected, rtol=1e-7, atol=1e-9, call=call, what="loss")
    if expected_grad is None:
        expected_grad = torch.zeros_like(logits)
    check(grad is not None, "the loss has no gradient with respect to the logits", call=call)
    assert_close(grad, expected_grad, rtol=1e-6, atol=1e-9, call=call, what="gradient",
                 hint="compute p_t from log-softmax (stable) and let autograd differentiate it")


@pytest.mark.weight(1)
@pytest.mark.number("5.14")
def test_poly1_reductions_and_module(student):
    """poly1_loss: 'none' and 'sum' reductions, Poly1Loss, every pixel ignored"""
    generator = torch.Generator().manual_seed(14)
    logits = torch.randn(2, 3, 2, 3, generator=generator, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 2, 3), generator=generator)
    target[0, 0, :2] = 255
    ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none")
    per_pixel = torch.where(target != 255, ce + 0.5 * (1 - torch.exp(-ce)), torch.zeros_like(ce))
    got = student.seg_losses.poly1_loss(logits, target, 0.5, reduction="none")
    assert_close(got, per_pixel, call=describe_call("poly1_loss", logits, target, 0.5, reduction="none"),
                 hint="shape [N, H, W], 0 at ignored pixels")
    got = student.seg_losses.poly1_loss(logits, target, 0.5, reduction="sum")
    assert_close(got, per_pixel.sum(), call=describe_call("poly1_loss", logits, target, 0.5, reduction="sum"))
    module = student.seg_losses.Poly1Loss(epsilon=0.5)
    got = module(logits, target)
    assert_close(got, per_pixel.sum() / 10, call="Poly1Loss(epsilon=0.5)(logits, target)",
                 hint="mean over the 10 pixels that are not ignored")
    ignored = torch.full_like(target, 255)
    value, (grad,) = value_and_grad(student.seg_losses.poly1_loss, logits, ignored, wrt=(0,))
    assert_close(value, torch.tensor(0.0, dtype=torch.float64), call=describe_call("poly1_loss", logits, ignored),
                 hint="a mean over no valid pixel is 0, not NaN")
    check(grad is None or bool((grad == 0).all()), "the gradient of an all-ignored loss should be 0 (not NaN)")


# -- inference -----------------------------------------------------------------------------------------

@pytest.mark.weight(0.5)
@pytest.mark.number("5.18")
def test_predict_folder_with_image_size(student, reference, sandbox_tmp_path):
    """predict_folder(image_size=...): eval mode, resize for the model, logits back to the image size"""
    source = sandbox_tmp_path / "images"
    make_satellite(source, 2, seed=19, size=(48, 80), cell=16)
    weight = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1], [0, 0, 0]])
    bias = torch.tensor([0.0, 0.11, 0.23, 0.37, 0.41, 0.53, 0.67])
    model, local = train_mode_model(student, weight, bias)
    output = sandbox_tmp_path / "pred"
    student.inference.predict_folder(model, str(source), str(output), image_size=(24, 32), progress=False)
    call = describe_call("predict_folder", "<1x1 conv, batch norm, dropout, in training mode>", str(source),
                         str(output), image_size=(24, 32))
    palette = np.array(SAT_PALETTE, dtype=np.int64)
    for name in ("0000", "0001"):
        with Image.open(source / f"{name}_sat.jpg") as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).float() / 255
        expected = reference.inference.predict_image(copy.deepcopy(local), pixels, (24, 32))
        path = output / f"{name}_mask.png"
        check(path.is_file(), f"missing {path.name}", call=call)
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB")).astype(np.int64)
        check(rgb.shape[:2] == tuple(expected.shape), f"{path.name} has size {list(rgb.shape[:2])}, expected "
              f"{list(expected.shape)} (the image's size)", call=call)
        wrong = int((rgb != palette[expected.numpy()]).any(-1).sum())
        check(wrong <= expected.numel() // 100, f"{path.name}: {wrong} of {expected.numel()} pixels differ", call=call,
              hint="model.eval(); resize the normalised image to image_size, run the model, resize the logits back "
                   "bilinearly")

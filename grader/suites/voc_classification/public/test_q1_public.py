"""Q1 public tests: VOC annotations, augmentations, SimpleCNN, the multi-label loss, AP (no reference needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.data.voc import make_voc
from grader.data.voc_classification import annotation_cases, write_voc_images
from grader.student import value_and_grad

MEAN, STD = [0.485, 0.457, 0.407], [0.5, 0.5, 0.5]


# -- 1.1-1.2 annotations ---------------------------------------------------------------------------

@pytest.mark.weight(3)
@pytest.mark.number("1.1")
def test_preload_anno_generated_folder(student, sandbox_tmp_path, check_annotations):
    """preload_anno: label and weight vectors of a generated VOC folder"""
    root = sandbox_tmp_path / "VOC2007"
    folder = make_voc(root, {"trainval": 30}, seed=11, difficult_rate=0.2, objects_per_image=(1, 4))
    dataset = student.voc_dataset.VOCDataset("trainval", 32, data_dir=str(root))
    got = dataset.preload_anno()
    images = [folder.images[i] for i in folder.splits["trainval"]]
    check_annotations(got, images, describe_call("VOCDataset('trainval', 32, data_dir=...).preload_anno"))


@pytest.mark.weight(2)
@pytest.mark.number("1.2")
def test_preload_anno_repeated_and_difficult(student, sandbox_tmp_path, check_annotations):
    """preload_anno: repeated classes, difficult objects, first and last class"""
    root = sandbox_tmp_path / "VOC2007"
    images = annotation_cases()
    write_voc_images(root, images, "cases")
    dataset = student.voc_dataset.VOCDataset("cases", 32, data_dir=str(root))
    check_annotations(dataset.preload_anno(), images,
                      describe_call("VOCDataset('cases', 32, data_dir=...).preload_anno"))


# -- 1.4-1.5 augmentations --------------------------------------------------------------------------

def _expected_test_image(path, size):
    transform = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])
    return transform(Image.open(path).convert("RGB"))


def _augmented(student, root, split, size):
    """``__getitem__``'s image pipeline with the student's ``get_random_augmentations``, in the student's process.

    The augmentations are called on a stand-in for the dataset (its attributes as the handout's ``__init__``
    sets them), so that these points do not depend on ``preload_anno``.
    """
    stand_in = student.import_library("types").SimpleNamespace(
        split=split, size=size, data_dir=str(root), img_dir=str(root / "JPEGImages"),
        ann_dir=str(root / "Annotations"), index_list=[], anno_list=[])
    augmentations = student.voc_dataset.VOCDataset.get_random_augmentations(stand_in)
    check(isinstance(augmentations, (list, tuple)),
          f"get_random_augmentations should return a list of transforms, got {augmentations!r:.80}",
          call=f"get_random_augmentations() on split {split!r}")
    transforms = student.import_library("torchvision.transforms")
    pipeline = transforms.Compose([transforms.Resize(size), *augmentations, transforms.ToTensor(),
                                   transforms.Normalize(MEAN, STD)])
    pil = student.import_library("PIL.Image")

    def read(image_id):
        return pipeline(pil.open(str(root / "JPEGImages" / f"{image_id}.jpg")).convert("RGB"))

    return read


@pytest.mark.weight(2)
@pytest.mark.number("1.4")
def test_test_split_is_deterministic_centre_crop(student, sandbox_tmp_path):
    """get_random_augmentations on the test split: a deterministic centre crop of size x size"""
    root = sandbox_tmp_path / "VOC2007"
    folder = make_voc(root, {"test": 4}, seed=12, size=(50, 90))
    read = _augmented(student, root, "test", 40)
    for image_id in folder.splits["test"]:
        call = f"Resize(40) + get_random_augmentations() (split 'test', size 40) + ToTensor + Normalize on {image_id}.jpg"
        first, second = read(image_id), read(image_id)
        expected = _expected_test_image(root / "JPEGImages" / f"{image_id}.jpg", 40)
        assert_close(first, expected, call=call, atol=1e-5, what="image",
                     hint="on the test split get_random_augmentations must return only a centre crop "
                          "(transforms.CenterCrop(size)): no random crop, flip or resize")
        assert_equal(second, first, call=call + " (second read)", what="image",
                     hint="two reads of one test image must be identical")


@pytest.mark.weight(1)
@pytest.mark.number("1.5")
def test_train_split_is_random(student, sandbox_tmp_path):
    """get_random_augmentations on the trainval split: random, size x size images"""
    root = sandbox_tmp_path / "VOC2007"
    folder = make_voc(root, {"trainval": 2}, seed=13, size=(50, 90))
    read = _augmented(student, root, "trainval", 40)
    image_id = folder.splits["trainval"][0]
    call = f"Resize(40) + get_random_augmentations() (split 'trainval', size 40) + ToTensor + Normalize on {image_id}.jpg"
    reads = [read(image_id) for _ in range(8)]
    for image in reads:
        check(type(image) is torch.Tensor and tuple(image.shape) == (3, 40, 40),
              f"expected an image of shape [3, 40, 40], got {list(getattr(image, 'shape', []))}", call=call,
              hint="the training augmentations must end with a size x size image (e.g. RandomResizedCrop(size) "
                   "or RandomCrop(size))")
    distinct = len({tuple(r.flatten()[::97].tolist()) for r in reads})
    check(distinct > 1, "8 reads of one training image gave identical images", call=call,
          hint="on a training split get_random_augmentations should return random transforms "
               "(random crop, horizontal flip, ...)")


# -- 1.6-1.7 SimpleCNN ------------------------------------------------------------------------------

@pytest.mark.weight(1)
@pytest.mark.number("1.6")
def test_get_fc(student):
    """get_fc: Linear followed by ReLU, Softmax(dim=1) or nothing"""
    nn = student.import_library("torch.nn")
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    for non_linear, count in (("relu", 2), ("softmax", 2), ("none", 1)):
        call = describe_call("get_fc", 4, 3, non_linear)
        layers = student.simple_cnn.get_fc(4, 3, non_linear)
        check(len(layers) == count, f"expected {count} module(s), got {len(layers)}", call=call)
        net = nn.Sequential(*layers)
        weight, bias = layers[0].weight.detach(), layers[0].bias.detach()
        check(tuple(weight.shape) == (3, 4), f"expected a Linear(4, 3) first, its weight is {list(weight.shape)}",
              call=call)
        linear = x @ weight.T + bias
        expected = {"relu": linear.clamp(min=0), "softmax": linear.softmax(dim=1), "none": linear}[non_linear]
        assert_close(net(x), expected, call=call + " applied to float32[5, 4]", atol=1e-6,
                     hint="relu -> nn.ReLU(), softmax -> nn.Softmax(dim=1) over the classes, none -> nothing")


@pytest.mark.weight(2)
@pytest.mark.number("1.7")
@pytest.mark.parametrize("inp_size", [32, 64, 30, 227])
def test_simple_cnn_flat_dim_and_shapes(student, inp_size):
    """SimpleCNN for VOC: flat_dim and output shape for several input sizes"""
    call = describe_call("SimpleCNN", num_classes=20, inp_size=inp_size, c_dim=3)
    model = student.simple_cnn.SimpleCNN(num_classes=20, inp_size=inp_size, c_dim=3)
    expected_flat = 64 * (inp_size // 4) ** 2
    assert_equal(model.flat_dim, expected_flat, call=call, what="flat_dim",
                 hint="each 2x2 average pooling halves the side (rounding down): 64 * (inp_size // 4) ** 2")
    x = torch.randn(2, 3, inp_size, inp_size, generator=torch.Generator().manual_seed(inp_size))
    out = model(x)
    check(type(out) is torch.Tensor and tuple(out.shape) == (2, 20),
          f"expected logits of shape [2, 20], got {list(getattr(out, 'shape', []))}", call=call + "(x[2, 3, s, s])")


# -- 1.8-1.10 loss --------------------------------------------------------------------------------

def oracle_loss(output, target, weight):
    """The loss in float64 with torch's own BCE (the reference reading: mean over all N*C entries)."""
    return F.binary_cross_entropy_with_logits(output.double(), target.double(), weight=weight.double())


def normalised_by_weight(output, target, weight):
    """The other accepted reading: sum of weighted terms over the sum of the weights."""
    terms = F.binary_cross_entropy_with_logits(output.double(), target.double(), reduction="none")
    return (terms * weight.double()).sum() / weight.double().sum()


def check_loss_value(got, output, target, weight, call):
    check(type(got) is torch.Tensor and got.numel() == 1,
          f"expected the loss as a 0-dim tensor, got {got!r:.80}", call=call)
    got = got.reshape(())
    check(bool(torch.isfinite(got)), f"the loss is {got.item()} (not finite)", call=call,
          hint="use max(x, 0) - x * y + log(1 + exp(-|x|)): it never overflows")
    candidates = [oracle_loss(output, target, weight), normalised_by_weight(output, target, weight)]
    for expected in candidates:
        if torch.isclose(got.double(), expected, rtol=1e-4, atol=1e-6):
            return
    assert_close(got, candidates[0], call=call, rtol=1e-4, atol=1e-6, check_dtype=False, what="loss",
                 hint="mean over all N*C entries of w * BCE(x, y) (dividing by the sum of the weights is accepted "
                      "too)")


logit_arrays = st.integers(1, 6).flatmap(lambda n: st.integers(1, 20).flatmap(lambda c: st.tuples(
    st.lists(st.floats(-50, 50, allow_nan=False, width=32), min_size=n * c, max_size=n * c),
    st.lists(st.sampled_from([0.0, 1.0]), min_size=n * c, max_size=n * c),
    st.lists(st.sampled_from([0.0, 1.0, 1.0, 1.0]), min_size=n * c, max_size=n * c),
    st.just((n, c)))))


@pytest.mark.weight(2)
@pytest.mark.number("1.8")
@settings(max_examples=25)
@given(logit_arrays)
def test_loss_matches_float64_oracle(student, case):
    """multilabel_loss equals float64 binary_cross_entropy_with_logits (random inputs)"""
    logits, labels, weights, shape = case
    output = torch.tensor(logits, dtype=torch.float32).reshape(shape)
    target = torch.tensor(labels).reshape(shape)
    weight = torch.tensor(weights).reshape(shape)
    weight.view(-1)[0] = 1.0  # at least one counted entry
    got = student.trainer.multilabel_loss(output, target, weight)
    check_loss_value(got, output, target, weight, describe_call("multilabel_loss", output, target, weight))


@pytest.mark.weight(1)
@pytest.mark.number("1.9")
def test_loss_extreme_logits(student):
    """multilabel_loss is finite and exact for logits of +-1e4, with finite gradients"""
    output = torch.tensor([[1e4, -1e4, 1e4, -1e4, 0.25, 30.0], [-1e3, 1e3, 88.0, -88.0, 1e-3, -17.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]])
    weight = torch.ones_like(output)
    call = describe_call("multilabel_loss", output, target, weight)
    loss, (grad,) = value_and_grad(student.trainer.multilabel_loss, output, target, weight, wrt=(0,))
    check_loss_value(loss, output, target, weight, call)
    check(grad is not None, "the loss has no gradient with respect to the logits", call=call)
    check(bool(torch.isfinite(grad).all()), f"the gradient has non-finite values: {grad.tolist()}", call=call,
          hint="avoid exp(x) of large positive x and log(0): use log(1 + exp(-|x|))")
    expected = (torch.sigmoid(output.double()) - target.double()) / output.numel()
    assert_close(grad, expected.float(), call=call + " gradient", atol=1e-6, rtol=1e-4, what="d loss / d output")


@pytest.mark.weight(1)
@pytest.mark.number("1.10")
def test_loss_honours_weights(student):
    """multilabel_loss: weight 0 entries add nothing to the loss and get no gradient"""
    g = torch.Generator().manual_seed(3)
    output = torch.randn(8, 20, generator=g) * 4
    target = (torch.rand(8, 20, generator=g) < 0.3).float()
    weight = (torch.rand(8, 20, generator=g) < 0.7).float()
    call = describe_call("multilabel_loss", output, target, weight)
    loss, (grad,) = value_and_grad(student.trainer.multilabel_loss, output, target, weight, wrt=(0,))
    check_loss_value(loss, output, target, weight, call)
    check(grad is not None, "the loss has no gradient with respect to the logits", call=call)
    ignored = weight == 0
    check(bool((grad[ignored] == 0).all()),
          f"{int((grad[ignored] != 0).sum())} entries of weight 0 received a gradient", call=call,
          hint="multiply each entry's loss by its weight before reducing")


# -- 1.13 AP --------------------------------------------------------------------------------------

def sklearn_ap(gt, pred, valid, tie_break=False):
    """Per-class AP with scikit-learn on the valid rows (NaN when a class has no valid positive)."""
    from sklearn.metrics import average_precision_score

    result = []
    for c in range(gt.shape[1]):
        keep = valid[:, c] > 0
        y, s = gt[keep, c].astype(np.float32), pred[keep, c].astype(np.float32)
        if tie_break:  # the handout's PhilK rule: ties between a positive and a negative count against
            s = s - 1e-5 * y
        result.append(average_precision_score(y, s) if y.sum() > 0 else np.nan)
    return np.array(result)


def check_ap(got, gt, pred, valid, call):
    check(isinstance(got, (list, tuple, np.ndarray, torch.Tensor)),
          f"expected one AP per class (a list or array), got {type(got).__name__}", call=call)
    got = np.asarray([float(v) for v in got], dtype=np.float64)
    check(got.shape == (gt.shape[1],), f"expected {gt.shape[1]} values (one per class), got {got.shape[0]}",
          call=call)
    readings = [sklearn_ap(gt, pred, valid), sklearn_ap(gt, pred, valid, tie_break=True)]
    no_positive = np.isnan(readings[0])
    # A class without a valid positive: NaN (the reference) or 0.0 (scikit-learn's value) are both accepted.
    ok_empty = np.isnan(got[no_positive]) | (got[no_positive] == 0)
    check(bool(ok_empty.all()), "a class with no valid positive example must get NaN (or 0.0)", call=call)
    for expected in readings:
        if np.allclose(got[~no_positive], expected[~no_positive], rtol=1e-6, atol=1e-9):
            return
    assert_close(torch.from_numpy(got), torch.from_numpy(readings[0]), call=call, rtol=1e-6, atol=1e-9,
                 equal_nan=True, what="AP per class",
                 hint="AP = sum over distinct scores of (recall step) * precision, on the rows with valid > 0 only; "
                      "tied scores enter together (sklearn.metrics.average_precision_score)")


ap_cases = st.integers(1, 30).flatmap(lambda n: st.integers(1, 6).flatmap(lambda c: st.tuples(
    st.lists(st.integers(0, 1), min_size=n * c, max_size=n * c),
    st.lists(st.one_of(st.sampled_from([0.1, 0.2, 0.5, 0.9]), st.floats(0, 1, width=32)), min_size=n * c,
             max_size=n * c),
    st.lists(st.sampled_from([0, 1, 1, 1]), min_size=n * c, max_size=n * c),
    st.just((n, c)))))


@pytest.mark.weight(1)
@pytest.mark.number("1.13")
@settings(max_examples=25)
@given(ap_cases)
def test_compute_ap_matches_sklearn(student, case):
    """compute_ap equals sklearn's average_precision_score per class (with invalid entries and ties)"""
    labels, scores, valid, shape = case
    gt = np.array(labels, dtype=np.float32).reshape(shape)
    pred = np.array(scores, dtype=np.float32).reshape(shape)
    valid = np.array(valid, dtype=np.float32).reshape(shape)
    valid[0] = 1  # every class has a valid row (the handout's sklearn call fails on an empty class)
    got = student.utils.compute_ap(gt, pred, valid)
    check_ap(got, gt, pred, valid, describe_call("compute_ap", gt, pred, valid))

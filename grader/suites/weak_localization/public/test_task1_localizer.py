"""Public tests of Task 1: LocalizerAlexNet, its loss and metrics, heat maps and boxes (no reference needed)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from sklearn.metrics import average_precision_score, recall_score

from grader.compare import assert_close, check, describe, describe_call
from grader.student import module_info, num_parameters, value_and_grad


def alexnet_feature_shapes() -> list[tuple[str, tuple[int, ...]]]:
    features = torchvision.models.alexnet(weights=None).features
    return [(f"features.{name}", tuple(value.shape)) for name, value in features.state_dict().items()]


@pytest.mark.weight(2)
@pytest.mark.number("1.1")
@pytest.mark.parametrize(("batch", "size", "side"), [(1, 512, 29), (2, 224, 11)])
def test_localizer_output_size(student, wl, batch, size, side):
    """LocalizerAlexNet outputs 20 score maps (29 x 29 for a 512 x 512 image)"""
    model = wl.eval_mode(student.AlexNet.LocalizerAlexNet(num_classes=20))
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(size))
    out = model(x)
    check(isinstance(out, torch.Tensor) and tuple(out.shape) == (batch, 20, side, side),
          f"expected score maps of shape {[batch, 20, side, side]}, got {describe(out)}",
          call=describe_call("LocalizerAlexNet()", x),
          hint="AlexNet conv1-conv5 without the last max-pool, then conv 3x3 (no padding), conv 1x1, conv 1x1; "
               "no pooling in forward")


@pytest.mark.weight(1)
@pytest.mark.number("1.2")
def test_localizer_layers(student):
    """LocalizerAlexNet has AlexNet's conv layers (torchvision names) and the 3-conv classifier"""
    model = student.AlexNet.LocalizerAlexNet(num_classes=20)
    info = module_info(model)
    shapes = {name: tuple(shape) for name, shape, _grad, _dtype in info["parameters"]}
    for name, shape in alexnet_feature_shapes():
        check(shapes.get(name) == shape, f"expected a parameter {name} of shape {list(shape)} (as in "
              f"torchvision's alexnet().features), got {shapes.get(name)}", call="LocalizerAlexNet()",
              hint="name the trunk self.features (an nn.Sequential with torchvision's layer order) so that "
                   "ImageNet weights load by name")
    classifier = [shape for name, shape in shapes.items() if name.startswith("classifier.") and len(shape) == 4]
    check(classifier == [(256, 256, 3, 3), (256, 256, 1, 1), (20, 256, 1, 1)],
          f"expected classifier convolutions [256, 256, 3, 3], [256, 256, 1, 1], [20, 256, 1, 1], got "
          f"{[list(s) for s in classifier]}", call="LocalizerAlexNet()")
    total = num_parameters(model)
    check(total == 3_130_708, f"expected 3,130,708 parameters, got {total:,}", call="LocalizerAlexNet()")


@pytest.mark.weight(1)
@pytest.mark.number("1.3")
def test_image_level_scores(student):
    """image_level_scores: global max pooling of the score maps"""
    maps = torch.randn(3, 20, 5, 7, generator=torch.Generator().manual_seed(3)) * 3
    got = student.task_1.image_level_scores(maps)
    assert_close(got, maps.amax(dim=(2, 3)), call=describe_call("image_level_scores", maps),
                 hint="the largest score of each [h, w] map, no sigmoid")


@pytest.mark.weight(2)
@pytest.mark.number("1.4")
def test_localization_loss(student):
    """localization_loss: max pooling, sigmoid, binary cross-entropy (mean), with its gradient"""
    generator = torch.Generator().manual_seed(4)
    maps = torch.randn(4, 20, 6, 6, generator=generator, dtype=torch.float64) * 3
    target = (torch.rand(4, 20, generator=generator) < 0.2).to(torch.float64)
    call = describe_call("localization_loss", maps, target)
    loss, (grad,) = value_and_grad(student.task_1.localization_loss, maps, target, wrt=(0,))
    leaf = maps.clone().requires_grad_(True)
    expected = F.binary_cross_entropy_with_logits(leaf.amax(dim=(2, 3)), target)
    expected.backward()
    assert_close(loss, expected.detach(), call=call, what="loss", rtol=1e-5, atol=1e-7,
                 hint="loss = mean over images and classes of BCE(sigmoid(max over the map), label)")
    check(grad is not None, "the loss has no gradient with respect to the score maps", call=call,
          hint="compute the loss with torch operations on the model output (no .item(), numpy or detach)")
    assert_close(grad, leaf.grad, call=call, what="d loss / d output", rtol=1e-4, atol=1e-8,
                 hint="only the maximum of each map should receive gradient")


@pytest.mark.weight(1)
@pytest.mark.number("1.5")
def test_localizer_pretrained_features(student, alexnet_weights):
    """localizer_alexnet(pretrained=True): conv1-conv5 get AlexNet's ImageNet weights"""
    model = student.AlexNet.localizer_alexnet(pretrained=True)
    state = model.state_dict()
    call = "localizer_alexnet(pretrained=True)"
    for name, value in alexnet_weights.items():
        if name.startswith("features."):
            check(name in state, f"the model has no parameter {name}", call=call)
            assert_close(state[name], value, call=call, what=name,
                         hint="copy the features.* entries of AlexNet's ImageNet state dict (torchvision's "
                              "alexnet weights, read from torch's cache; nothing is downloaded during grading)")


@pytest.mark.weight(1)
@pytest.mark.number("1.6")
def test_localizer_classifier_is_xavier(student, wl):
    """localizer_alexnet: the classifier's convolutions are Xavier-initialised"""
    model = student.AlexNet.localizer_alexnet(pretrained=False)
    state = model.state_dict()
    convs = [(name, value) for name, value in state.items() if name.startswith("classifier.") and value.dim() == 4]
    check(len(convs) == 3, f"expected 3 convolution weights in the classifier, got {len(convs)}",
          call="localizer_alexnet()")
    for name, weight in convs:
        expected = wl.xavier_std(tuple(weight.shape))
        std = float(weight.std())
        check(abs(std - expected) <= 0.12 * expected,
              f"{name} has standard deviation {std:.4g}; Xavier initialisation gives "
              f"sqrt(2 / (fan_in + fan_out)) = {expected:.4g}", call="localizer_alexnet()",
              hint="nn.init.xavier_uniform_ (or xavier_normal_) on every classifier convolution")


def sklearn_map(scores: torch.Tensor, labels: torch.Tensor) -> float:
    values = [average_precision_score(labels[:, c].numpy(), scores[:, c].numpy())
              for c in range(labels.shape[1]) if labels[:, c].any()]
    return float(np.mean(values)) if values else 0.0


def metric_cases() -> list:
    generator = torch.Generator().manual_seed(5)
    random_scores = torch.rand(16, 20, generator=generator)
    random_labels = (torch.rand(16, 20, generator=generator) < 0.25).float()
    random_labels[:, 3] = 0  # a class without positives
    tied = (torch.rand(12, 6, generator=generator) * 3).round() / 3
    tied_labels = (torch.rand(12, 6, generator=generator) < 0.5).float()
    tied_labels[:, 0] = 1  # a class whose images are all positive
    equal = torch.full((5, 4), 0.5)
    equal_labels = torch.tensor([[1.0, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    return [pytest.param(random_scores, random_labels, id="random"), pytest.param(tied, tied_labels, id="ties"),
            pytest.param(equal, equal_labels, id="all-equal-scores"),
            pytest.param(equal, torch.zeros(5, 4), id="no-positives")]


@pytest.mark.weight(2)
@pytest.mark.number("1.7")
@pytest.mark.parametrize(("scores", "labels"), metric_cases())
def test_metric1_is_map(student, scores, labels):
    """metric1: mean average precision over classes with positives (vs scikit-learn)"""
    got = student.task_1.metric1(scores, labels)
    assert_close(got, sklearn_map(scores, labels), call=describe_call("metric1", scores, labels), rtol=1e-6,
                 atol=1e-6, hint="AP per class as sklearn.metrics.average_precision_score; leave out classes "
                                 "without a positive image; 0.0 when no class has one")


@pytest.mark.weight(1)
@pytest.mark.number("1.8")
@pytest.mark.parametrize(("scores", "labels"), metric_cases())
def test_metric2_is_recall_at_half(student, scores, labels):
    """metric2: recall at probability 0.5, micro-averaged (vs scikit-learn)"""
    expected = recall_score(labels.numpy().ravel().astype(int), (scores.numpy().ravel() >= 0.5).astype(int),
                            zero_division=0)
    got = student.task_1.metric2(scores, labels)
    assert_close(got, float(expected), call=describe_call("metric2", scores, labels), rtol=1e-6, atol=1e-6,
                 hint="(present classes with probability >= 0.5) / (present classes), over all images and classes")


@pytest.mark.weight(1)
@pytest.mark.number("1.9")
def test_upsample_heatmap(student):
    """upsample_heatmap: bilinear resize to the image size, then min-max to [0, 1]"""
    score_map = torch.randn(29, 29, generator=torch.Generator().manual_seed(6)) * 5
    got = student.task_1.upsample_heatmap(score_map, (96, 128))
    up = F.interpolate(score_map[None, None].double(), size=(96, 128), mode="bilinear", align_corners=False)[0, 0]
    expected = ((up - up.min()) / (up.max() - up.min())).float()
    call = describe_call("upsample_heatmap", score_map, (96, 128))
    assert_close(got, expected, call=call, rtol=1e-4, atol=1e-5,
                 hint="F.interpolate(..., mode='bilinear', align_corners=False), then (x - min) / (max - min)")
    constant = student.task_1.upsample_heatmap(torch.full((5, 5), 3.0), (8, 8))
    assert_close(constant, torch.zeros(8, 8), call=describe_call("upsample_heatmap", torch.full((5, 5), 3.0), (8, 8)),
                 hint="a constant map has nothing to show: return zeros (no division by zero)")


@pytest.mark.weight(1)
@pytest.mark.number("1.10")
def test_overlay_heatmap(student):
    """overlay_heatmap: blend the colour-mapped heat map over the image"""
    generator = torch.Generator().manual_seed(7)
    image, heat = torch.rand(3, 12, 10, generator=generator), torch.rand(12, 10, generator=generator)
    colours = torch.from_numpy(matplotlib.colormaps["jet"](heat.numpy())[..., :3]).permute(2, 0, 1).float()
    got = student.task_1.overlay_heatmap(image, heat, 0.4)
    assert_close(got, 0.6 * image + 0.4 * colours, call=describe_call("overlay_heatmap", image, heat, 0.4),
                 rtol=1e-5, atol=1e-5, hint="(1 - alpha) * image + alpha * matplotlib.colormaps['jet'](heatmap)[..., :3]")


@pytest.mark.weight(2)
@pytest.mark.number("1.11")
def test_robust_localizer(student, wl):
    """LocalizerAlexNetRobust: same maps, random in training (dropout), deterministic in eval"""
    model = student.AlexNet.localizer_alexnet_robust(pretrained=False)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    call = describe_call("localizer_alexnet_robust()", x)
    wl.eval_mode(model)
    first, second = model(x), model(x)
    check(isinstance(first, torch.Tensor) and tuple(first.shape) == (1, 20, 11, 11),
          f"expected score maps [1, 20, 11, 11], got {describe(first)}", call=call)
    assert_close(second, first, call=call + " twice in eval mode", hint="no randomness in eval mode")
    wl.train_mode(model)
    third, fourth = model(x), model(x)
    check(tuple(third.shape) == (1, 20, 11, 11), f"train mode: expected [1, 20, 11, 11], got {describe(third)}",
          call=call)
    check(not torch.equal(third, fourth), "two forward passes in train mode gave identical maps", call=call,
          hint="the robust model adds dropout (active only in training) so that the max does not rest on one "
               "location")


def blob_map() -> tuple[torch.Tensor, list[list[float]], list[float]]:
    """Three plateaus (the objects), separated, on a low noisy background."""
    generator = torch.Generator().manual_seed(9)
    heat = torch.rand(60, 80, generator=generator) * 0.3
    heat[5:20, 10:30] = 0.8  # rows 5..19, cols 10..29
    heat[12, 20] = 0.85
    heat[30:55, 50:75] = 1.0
    heat[40:44, 5:9] = 0.6
    boxes = [[50.0, 30.0, 75.0, 55.0], [10.0, 5.0, 30.0, 20.0], [5.0, 40.0, 9.0, 44.0]]
    return heat, boxes, [1.0, 0.85, 0.6]


@pytest.mark.weight(2)
@pytest.mark.number("1.12")
def test_boxes_from_heatmap_several_blobs(student, wl):
    """boxes_from_heatmap: one box per blob above the threshold, best first"""
    heat, boxes, scores = blob_map()
    call = describe_call("boxes_from_heatmap", heat, 0.5)
    got = student.task_1.boxes_from_heatmap(heat, 0.5)
    check(isinstance(got, (tuple, list)) and len(got) == 2, f"expected (boxes, scores), got {describe(got)}",
          call=call)
    got_boxes = wl.tensor(got[0], "boxes", call, torch.float64).reshape(-1, 4)
    expected = torch.tensor(boxes, dtype=torch.float64)
    check(got_boxes.shape[0] == 3, f"expected 3 boxes (three separate blobs), got {got_boxes.shape[0]}", call=call,
          hint="label the connected regions of heatmap >= threshold (e.g. scipy.ndimage.label), one box each")
    # (x2, y2) = last column/row + 1 as specified; the inclusive reading (last column/row) is accepted too.
    inclusive = expected.clone()
    inclusive[:, 2:] -= 1
    ok = torch.equal(got_boxes, expected) or torch.equal(got_boxes, inclusive)
    check(ok, f"expected boxes {expected.tolist()} (highest score first), got {got_boxes.tolist()}", call=call,
          hint="box = (min col, min row, max col + 1, max row + 1) of each component, sorted by its largest value")
    assert_close(wl.tensor(got[1], "scores", call, torch.float64).reshape(-1), torch.tensor(scores, dtype=torch.float64),
                 call=call, what="scores", rtol=1e-6, atol=1e-6, hint="a box's score is the largest heat inside it")

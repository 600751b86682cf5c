"""Public tests of Task 1: LocalizerAlexNet, its loss and metrics, heat maps and boxes (no reference needed).

The course's Task 1 (part ``main``) is graded through the F22 starter's own entry points:
``LocalizerAlexNet`` / ``localizer_alexnet``, the loss that ``main()`` defines and ``train()``
computes (``course.run_task_1_train``), ``metric1`` / ``metric2`` on 20 classes. This project's
helper functions (``image_level_scores``, ``localization_loss``, ``upsample_heatmap``,
``overlay_heatmap``, ``boxes_from_heatmap``) and its dropout reading of Q1.7 are part
``extended``: the starter has none of them.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from sklearn.metrics import average_precision_score, recall_score

from grader.compare import GradingFailure, assert_close, check, describe, describe_call
from grader.data.voc import VOC_CLASSES
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


def seeded_localizer_state(seed: int = 123) -> dict[str, torch.Tensor]:
    """Weights for LocalizerAlexNet (torchvision's feature names, the reference's classifier indices): He-scaled
    random convolutions and biases, so that every ReLU cuts some activations and none is dead."""
    features = torchvision.models.alexnet(weights=None).features[:12]
    classifier = torch.nn.Sequential(torch.nn.Conv2d(256, 256, 3), torch.nn.ReLU(), torch.nn.Conv2d(256, 256, 1),
                                     torch.nn.ReLU(), torch.nn.Conv2d(256, 20, 1))
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for group, module in (("features", features), ("classifier", classifier)):
        for name, value in module.state_dict().items():
            fan_in = int(np.prod(value.shape[1:])) if value.dim() > 1 else 1
            scale = (2.0 / fan_in) ** 0.5 if value.dim() > 1 else 0.1
            state[f"{group}.{name}"] = torch.randn(value.shape, generator=generator) * scale
    return state


def localizer_maps(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The handout's LocalizerAlexNet, computed here: AlexNet conv1-conv5 (ReLUs, max-pools 3/2), then
    conv 3x3 (no padding), ReLU, conv 1x1, ReLU, conv 1x1: raw score maps."""
    def conv(name: str, y: torch.Tensor, **options) -> torch.Tensor:
        return F.conv2d(y, state[f"{name}.weight"], state[f"{name}.bias"], **options)

    y = F.max_pool2d(F.relu(conv("features.0", x, stride=4, padding=2)), 3, 2)
    y = F.max_pool2d(F.relu(conv("features.3", y, padding=2)), 3, 2)
    y = F.relu(conv("features.10", F.relu(conv("features.8", F.relu(conv("features.6", y, padding=1)), padding=1)),
                    padding=1))
    y = F.relu(conv("classifier.2", F.relu(conv("classifier.0", y))))
    return conv("classifier.4", y)


def localizer_parameters(info: dict, state: dict[str, torch.Tensor], call: str) -> dict[str, torch.Tensor]:
    """``state`` under the student's parameter names: within ``features`` and ``classifier``, in order, by shape."""
    mapped = {}
    for group in ("features", "classifier"):
        mine = [(n, tuple(shape)) for n, shape, _g, _d in info["parameters"] if n.split(".", 1)[0] == group]
        theirs = [(n, tuple(v.shape)) for n, v in state.items() if n.split(".", 1)[0] == group]
        check([s for _, s in mine] == [s for _, s in theirs],
              f"LocalizerAlexNet.{group} has parameter shapes {[list(s) for _, s in mine]}; expected "
              f"{[list(s) for _, s in theirs]}", call=call,
              hint="features: AlexNet conv1-conv5 (torchvision's alexnet().features[:12]); classifier: conv 3x3 "
                   "(256 -> 256, no padding), conv 1x1 (256 -> 256), conv 1x1 (256 -> 20), with biases")
        mapped.update({name: state[ref] for (name, _), (ref, _) in zip(mine, theirs)})
    return mapped


@pytest.mark.weight(1)
@pytest.mark.number("1.23")
def test_localizer_score_values(student, wl):
    """LocalizerAlexNet's score maps, with given weights, on a batch of 3 non-square images"""
    # Shapes and parameter counts do not see the order of the layers, the ReLUs or the pooling kernels
    # (max-pools 2/2 and 3/2 give the same sizes at 512 x 512): the values with known weights do.
    state = seeded_localizer_state()
    model = wl.eval_mode(student.AlexNet.LocalizerAlexNet(num_classes=20))
    call = "LocalizerAlexNet(num_classes=20).eval() with the grader's weights"
    model.load_state_dict(localizer_parameters(module_info(model), state, call), strict=False)
    x = torch.randn(3, 3, 200, 280, generator=torch.Generator().manual_seed(23))
    call = describe_call(call + ";", x)
    with torch.no_grad():
        expected = localizer_maps(state, x)
    out = model(x)
    check(isinstance(out, torch.Tensor), f"expected score maps {list(expected.shape)}, got {describe(out)}", call=call)
    out = out.detach().to(torch.float32)
    hint = ("AlexNet conv1-conv5 (conv 11x11/4 pad 2, ReLU, max-pool 3/2, conv 5x5 pad 2, ReLU, max-pool 3/2, three "
            "conv 3x3 pad 1 each with its ReLU; no last max-pool), then conv 3x3 (no padding), ReLU, conv 1x1, ReLU, "
            "conv 1x1 (raw scores: no ReLU after the last conv)")
    # Raw maps as the handout's model gives them; a sigmoid at the end (BCELoss in train()) keeps their order.
    readings = [("score maps", expected), ("sigmoid of the score maps", torch.sigmoid(expected)),
                ("max-pooled scores", expected.amax(dim=(2, 3))),
                ("sigmoid of the max-pooled scores", torch.sigmoid(expected.amax(dim=(2, 3))))]
    shaped = [(name, value) for name, value in readings if tuple(value.shape) == tuple(out.shape)]
    check(bool(shaped), f"expected score maps of shape {list(expected.shape)} (20 maps per image, 200 x 280 "
          f"images), got {describe(out)}", call=call, hint=hint)
    scale = float(expected.abs().max())
    for _name, value in shaped:
        if torch.allclose(out, value, rtol=1e-3, atol=1e-4 * max(scale, 1.0)):
            return
    name, value = shaped[0]
    assert_close(out, value, call=call, what=name, rtol=1e-3, atol=1e-4 * max(scale, 1.0), hint=hint)


@pytest.mark.weight(1)
@pytest.mark.number("1.3")
@pytest.mark.part("extended")
def test_image_level_scores(student, wl):
    """image_level_scores: global max pooling of the score maps"""
    maps = torch.randn(3, 20, 5, 7, generator=torch.Generator().manual_seed(3)) * 3
    got = wl.keeping_inputs(student.task_1.image_level_scores, maps, call=describe_call("image_level_scores", maps))
    assert_close(got, maps.amax(dim=(2, 3)), call=describe_call("image_level_scores", maps),
                 hint="the largest score of each [h, w] map, no sigmoid")


@pytest.mark.weight(2)
@pytest.mark.number("1.4")
@pytest.mark.part("extended")
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
def test_localizer_classifier_is_xavier(student, wl, alexnet_weights):
    """localizer_alexnet(pretrained=True): the classifier's convolutions are Xavier-initialised"""
    # Q1.3's case ("Initialize the model from ImageNet (till the conv5 layer). Initialize the rest of
    # layers with Xavier initialization"); the starter says nothing of pretrained=False.
    model = student.AlexNet.localizer_alexnet(pretrained=True)
    state = model.state_dict()
    convs = [(name, value) for name, value in state.items() if name.startswith("classifier.") and value.dim() == 4]
    check(len(convs) == 3, f"expected 3 convolution weights in the classifier, got {len(convs)}",
          call="localizer_alexnet()")
    for name, weight in convs:
        expected = wl.xavier_std(tuple(weight.shape))
        std = float(weight.std())
        check(abs(std - expected) <= 0.12 * expected,
              f"{name} has standard deviation {std:.4g}; Xavier initialisation gives "
              f"sqrt(2 / (fan_in + fan_out)) = {expected:.4g}", call="localizer_alexnet(pretrained=True)",
              hint="nn.init.xavier_uniform_ (or xavier_normal_) on every classifier convolution")


KEEP_HINT = ("the starter's train() passes imoutput.data (the model's output: .data and .detach() share its memory) "
             "to metric1 and then to metric2: work on a copy (x.clone(), torch.sigmoid(x)) or out of place")


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


def course_metric_cases() -> list:
    """20 classes as in the course, scores without ties, every image with a positive; classes without one."""
    cases = []
    for seed, (images, rate, empty) in enumerate([(16, 0.2, (3, 11)), (32, 0.1, (0, 5, 6, 19))]):
        generator = torch.Generator().manual_seed(50 + seed)
        labels = (torch.rand(images, 20, generator=generator) < rate).float()
        labels[:, list(empty)] = 0
        labels[torch.arange(images), torch.randint(0, 2, (images,), generator=generator) + 1] = 1
        scores = torch.randn(images, 20, generator=generator) * 2 + labels
        cases.append(pytest.param(scores, labels, id=f"{images}-images"))
    return cases


@pytest.mark.weight(2)
@pytest.mark.number("1.7")
@pytest.mark.parametrize(("scores", "labels"), course_metric_cases())
def test_metric1_is_map(student, wl, scores, labels):
    """metric1: mean average precision over the classes that have a positive image (vs scikit-learn)"""
    call = describe_call("metric1", scores, labels)
    expected = sklearn_map(scores, labels)
    for name, given in (("scores", scores), ("probabilities", torch.sigmoid(scores))):
        # train() calls metric1(imoutput.data, target) and then metric2 on the same tensor: neither may change it.
        got = wl.number(wl.keeping_inputs(student.task_1.metric1, given, labels, call=call, hint=KEEP_HINT), call)
        check(abs(got - expected) <= 1e-5, f"on {name}: expected {expected:.6g}, got {got:.6g}", call=call,
              hint="AP of each class (sklearn.metrics.average_precision_score), averaged over the classes with a "
                   "positive image (a class without one has no AP: leave it out)")


@pytest.mark.weight(1)
@pytest.mark.number("1.8")
@pytest.mark.parametrize(("scores", "labels"), course_metric_cases())
def test_metric2_is_a_recall(student, wl, scores, labels):
    """metric2: a recall (the handout leaves its threshold and averaging open)"""
    confident = torch.where(labels > 0, 8.0, -8.0)
    checks = [("perfect scores (+8 on every present class, -8 elsewhere)", confident, 1.0),
              ("all scores -8", torch.full_like(scores, -8.0), 0.0)]
    # The starter calls metric2 on whatever train() made of the output: logits or probabilities.
    failures = {}
    for inputs, transform in (("probabilities", torch.sigmoid), ("logits", lambda t: t)):
        for what, given, expected in checks:
            given = transform(given)
            call = describe_call("metric2", given, labels)
            value = wl.number(student.task_1.metric2(given, labels), call)
            if abs(value - expected) > 1e-6:
                failures[inputs] = (f"{what}, given as {inputs}: expected {expected:g}, got {value:.6g}", call)
                break
    if len(failures) == 2:
        message, call = failures["probabilities"]
        raise GradingFailure(f"Called {call}\n{message}\nHint: recall = present classes predicted present / "
                             "present classes, at a threshold you choose")
    base = torch.sigmoid(scores)
    call = describe_call("metric2", base, labels)
    first = wl.number(wl.keeping_inputs(student.task_1.metric2, base, labels, call=call, hint=KEEP_HINT), call)
    check(0.0 <= first <= 1.0, f"a recall is in [0, 1], got {first:.6g}", call=call)
    # Recall does not look at the classes an image does not have: changing their scores changes nothing.
    shuffled = torch.where(labels > 0, base, torch.rand(base.shape, generator=torch.Generator().manual_seed(3)))
    second = wl.number(student.task_1.metric2(shuffled, labels), describe_call("metric2", shuffled, labels))
    check(abs(first - second) <= 1e-6, f"changing only the scores of absent classes changed metric2 from "
          f"{first:.6g} to {second:.6g}: that is not a recall (precision or accuracy?)", call=call,
          hint="recall = true positives / (true positives + false negatives): absent classes do not count")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.18")
@pytest.mark.part("extended")
@pytest.mark.parametrize(("scores", "labels"), metric_cases())
def test_metric1_ties_and_edges(student, scores, labels):
    """metric1 with ties, equal scores and no positives: exactly scikit-learn's (this project's docstring)"""
    got = student.task_1.metric1(scores, labels)
    assert_close(got, sklearn_map(scores, labels), call=describe_call("metric1", scores, labels), rtol=1e-6,
                 atol=1e-6, hint="AP per class as sklearn.metrics.average_precision_score; leave out classes "
                                 "without a positive image; 0.0 when no class has one")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.19")
@pytest.mark.part("extended")
@pytest.mark.parametrize(("scores", "labels"), metric_cases())
def test_metric2_is_recall_at_half(student, scores, labels):
    """metric2: recall at probability 0.5, micro-averaged (vs scikit-learn; this project's docstring)"""
    expected = recall_score(labels.numpy().ravel().astype(int), (scores.numpy().ravel() >= 0.5).astype(int),
                            zero_division=0)
    got = student.task_1.metric2(scores, labels)
    assert_close(got, float(expected), call=describe_call("metric2", scores, labels), rtol=1e-6, atol=1e-6,
                 hint="(present classes with probability >= 0.5) / (present classes), over all images and classes")


@pytest.mark.weight(1)
@pytest.mark.number("1.9")
@pytest.mark.part("extended")
def test_upsample_heatmap(student, wl):
    """upsample_heatmap: bilinear resize to the image size, then min-max to [0, 1]"""
    score_map = torch.randn(29, 29, generator=torch.Generator().manual_seed(6)) * 5
    got = wl.keeping_inputs(student.task_1.upsample_heatmap, score_map, (96, 128),
                            call=describe_call("upsample_heatmap", score_map, (96, 128)),
                            hint="the score map is the model's output: rescale a copy (x - x.min(), not x -= ...)")
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
@pytest.mark.part("extended")
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
@pytest.mark.part("extended")
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
@pytest.mark.part("extended")
def test_boxes_from_heatmap_several_blobs(student, wl):
    """boxes_from_heatmap: one box per blob above the threshold, best first"""
    heat, boxes, scores = blob_map()
    call = describe_call("boxes_from_heatmap", heat, 0.5)
    got = wl.keeping_inputs(student.task_1.boxes_from_heatmap, heat, 0.5, call=call,
                            hint="threshold a copy (heatmap >= threshold gives a new mask); do not zero the caller's map")
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
    # Pixels exactly at the threshold belong to the blob (heatmap >= threshold, as the docstring fixes).
    edge = torch.zeros(6, 7)
    edge[1:3, 2:5] = 0.5
    edge[2, 3] = 0.75
    call = describe_call("boxes_from_heatmap", edge, 0.5) + " (a blob of 0.5 around one pixel of 0.75)"
    got = student.task_1.boxes_from_heatmap(edge, 0.5)
    check(isinstance(got, (tuple, list)) and len(got) == 2, f"expected (boxes, scores), got {describe(got)}",
          call=call)
    got_boxes = wl.tensor(got[0], "boxes", call, torch.float64).reshape(-1, 4).tolist()
    check(got_boxes in ([[2.0, 1.0, 5.0, 3.0]], [[2.0, 1.0, 4.0, 2.0]]),
          f"expected the box [2, 1, 5, 3] (every pixel >= 0.5), got {got_boxes}", call=call,
          hint="a pixel whose value equals the threshold is part of the object: heatmap >= threshold")


def label_rows(data, split: str = "trainval") -> set[tuple[int, ...]]:
    """The image-level label vectors of a generated split (1 for every class with an object, difficult too)."""
    rows = set()
    for image_id in data.voc.splits[split]:
        row = [0] * 20
        for obj in data.voc.images[image_id].objects:
            row[VOC_CLASSES.index(obj.name)] = 1
        rows.add(tuple(row))
    return rows


REDUCTIONS = (("mean over images and classes", lambda n: n * 20), ("sum over classes, mean over images", lambda n: n),
              ("sum", lambda n: 1), ("mean over classes, sum over images", lambda n: 20))


def check_localization_gradient(maps: torch.Tensor, grad: torch.Tensor, labels: set, call: str) -> None:
    """``grad`` = d loss / d ``maps`` of BCE(sigmoid(global max pool(maps)), y) for labels y among ``labels``."""
    n = maps.shape[0]
    pooled = maps.amax(dim=(2, 3))
    at_max = maps == pooled[..., None, None]
    scale = grad.abs().max().item()
    check(scale > 0, "the loss sent no gradient into the model's output", call=call,
          hint="compute the loss from the model's output with torch operations, then loss.backward()")
    leaked = grad.masked_fill(at_max, 0).abs().max().item()
    check(leaked <= 1e-6 * scale + 1e-12,
          f"positions other than the maximum of each score map received gradient (up to {leaked:.3g}, vs "
          f"{scale:.3g} at the maxima): the image-level score is not the global max pool of the map", call=call,
          hint="Oquab et al. / the handout: image score of a class = max over the map's positions "
               "(F.max_pool2d over the whole map, or amax over dims 2 and 3)")
    g = grad.sum(dim=(2, 3))
    probability = torch.sigmoid(pooled)
    readings = []
    for name, factor in REDUCTIONS:
        implied = probability - factor(n) * g
        rounded = implied.round()
        binary = bool(((rounded == 0) | (rounded == 1)).all())
        error = (implied - rounded).abs().max().item()
        readings.append((error, name, rounded, binary))
        if binary and error <= 1e-4 and all(tuple(int(v) for v in row) in labels for row in rounded.tolist()):
            return
    error, name, rounded, binary = min(readings, key=lambda r: r[0])
    raise GradingFailure(
        f"Called {call}\nThe gradient at the maxima is not that of binary cross-entropy of sigmoid(max) with the "
        f"image labels (for any of the reductions {', '.join(r[0] for r in REDUCTIONS)}): with the closest "
        f"reduction ({name}), the labels it implies are off by up to {error:.3g}"
        + ("" if binary else " and not 0 / 1")
        + "\nHint: image-level scores = global max pool of the maps; loss = BCE(sigmoid(scores), labels), e.g. "
          "nn.BCEWithLogitsLoss() on the pooled scores, or nn.BCELoss() on their sigmoid")


@pytest.mark.weight(6)
@pytest.mark.number("1.20")
@pytest.mark.sandbox(call_timeout=180)
def test_loss_in_train(student, alexnet_weights, wl_data, course):
    """the loss main() defines and train() computes: global max pool, sigmoid, binary cross-entropy"""
    # Two objects per image and more than 300 proposals (as real selective search gives): the default
    # collate_fn of the starter's DataLoader batches the items as they are.
    data = wl_data({"trainval": 8, "test": 4}, seed=31, size=(64, 80), objects_per_image=(2, 2),
                   random_boxes=320)
    probe, call = course.run_task_1_train(data)
    outputs = probe.recorded()
    recorded = [(maps, grad) for maps, grad in outputs if grad is not None and grad.abs().max() > 0]
    check(bool(recorded), f"train() ran no backward pass through the model's output (no batch, or no loss.backward()): "
          f"the model gave {len(outputs)} outputs, {sum(g is not None for _, g in outputs)} with a gradient",
          call=call)
    for maps, grad in recorded:
        check_localization_gradient(maps, grad, label_rows(data), call)


@pytest.mark.weight(2)
@pytest.mark.number("1.24")
@pytest.mark.sandbox(call_timeout=180)
def test_train_steps_on_each_batch(student, alexnet_weights, wl_data, course):
    """train() steps the optimizer once per batch, after backward, on that batch's gradient alone"""
    # The optimizer main() makes is replaced by one that changes nothing and notes the gradient at each
    # step(): the gradient of the stand-in's last bias is the batch's d loss / d maps summed, which the
    # grader reads from the outputs. Without zero_grad the gradients of earlier batches add up; a step
    # before backward uses the previous batch's (or none).
    # The data of test_loss_in_train: the same number of objects and proposals in every image, so that the
    # starter's DataLoader (default collate_fn) batches the items as they are.
    data = wl_data({"trainval": 12, "test": 4}, seed=32, size=(64, 80), objects_per_image=(2, 2), random_boxes=320)
    probe, call = course.run_task_1_train(data, batch_size=4, recording_optimizer=True)
    outputs = probe.recorded()
    steps = probe.optimizer.recorded_steps()
    batch_grads = [None if grad is None else grad.sum(dim=(0, 2, 3)) for _maps, grad in outputs]
    trained = sum(g is not None and float(g.abs().max()) > 0 for g in batch_grads)
    check(trained > 0, "train() ran no backward pass through the model's output", call=call,
          hint="loss.backward() on the loss of each batch")
    check(len(steps) == trained, f"train() took {len(steps)} optimizer steps for {trained} batches that had a "
          "gradient", call=call, hint="optimizer.step() once per batch, after loss.backward()")
    hint = "per batch: optimizer.zero_grad(), then loss.backward(), then optimizer.step()"
    previous = 0
    for number, (count, grad) in enumerate(steps, start=1):
        own = [g for g in batch_grads[previous:count] if g is not None]
        expected = torch.stack(own).sum(0) if own else torch.zeros(20, dtype=torch.float64)
        previous = count
        check(bool(own) and float(expected.abs().max()) > 0,
              f"step {number} came before the backward pass of its batch (no gradient of a new output yet)",
              call=call, hint=hint)
        check(grad is not None, f"at step {number} the model's parameters had no gradient (a step before "
              "backward, or zero_grad between them?)", call=call, hint=hint)
        if torch.allclose(grad, expected, rtol=1e-3, atol=1e-6 * float(expected.abs().max())):
            continue
        before = [g for g in batch_grads[:count] if g is not None]
        stale = len(before) > len(own) and torch.allclose(grad, torch.stack(before).sum(0), rtol=1e-3, atol=1e-9)
        raise GradingFailure(
            f"Called {call}\nat optimizer step {number} the gradient is not that of its batch alone"
            + (" but the sum over every batch so far: the gradients are never zeroed" if stale else "")
            + f" (largest difference {float((grad - expected).abs().max()):.3g}, gradient of the batch up to "
              f"{float(expected.abs().max()):.3g})\nHint: {hint}")


@pytest.mark.weight(3)
@pytest.mark.number("1.21")
def test_robust_localizer_builds(student, alexnet_weights, wl):
    """localizer_alexnet_robust(pretrained=True): AlexNet's ImageNet conv layers and 20 class outputs"""
    model = student.AlexNet.localizer_alexnet_robust(pretrained=True)
    call = "localizer_alexnet_robust(pretrained=True)"
    state = model.state_dict()
    for name, value in alexnet_weights.items():
        if name.startswith("features."):
            check(name in state, f"the model has no parameter {name}", call=call,
                  hint="the robust model keeps the AlexNet backbone (the handout: you do not have to change it)")
            assert_close(state[name], value, call=call, what=name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    out = wl.eval_mode(model)(x)
    check(isinstance(out, torch.Tensor) and out.dim() in (2, 4) and tuple(out.shape[:2]) == (2, 20),
          f"expected 20 class outputs per image ([2, 20, h, w] maps or [2, 20] scores), got {describe(out)}",
          call=describe_call(call + ".eval()", x))

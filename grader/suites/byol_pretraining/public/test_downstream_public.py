"""Public tests of the downstream classifier: fine-tuned or frozen backbone, training and evaluation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from grader.compare import assert_close, check
from grader.student import call_keeping_inputs, module_info, num_parameters, type_name


def _batches(count: int, seed: int, num_classes: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, 6, 6, generator=generator) * 2 + 1, torch.randint(0, num_classes, (4,),
                                                                               generator=generator))
            for _ in range(count)]


def _classifier(student, make_backbone, freeze: bool, dropout: float = 0.0):
    return student.downstream.Classifier(make_backbone(6, seed=21), 6, num_classes=5, dropout=dropout,
                                         freeze_backbone=freeze)


def _sizes(batches: list, sizes: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The images and labels of ``batches`` regrouped into batches of ``sizes`` (the last one smaller, as at the end
    of a data set)."""
    images, labels = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
    bounds = [0, *itertools.accumulate(sizes)]
    return [(images[a:b], labels[a:b]) for a, b in zip(bounds, bounds[1:])]


def _local_features(helpers, student_model, train: bool, images: torch.Tensor) -> torch.Tensor:
    """The features of the student's backbone computed here, from its weights, in train or eval mode."""
    backbone = helpers.local_backbone(6)
    backbone.load_state_dict(student_model.backbone.state_dict())
    backbone.train(train)
    with torch.no_grad():
        return backbone(images)


def _floating(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefix) and v.is_floating_point()}


@pytest.mark.weight(1)
@pytest.mark.number("5.1")
def test_classifier_structure(student, make_backbone, helpers):
    """Classifier: backbone, dropout and a linear head to the classes; head(dropout(backbone(x))) in both modes"""
    model = _classifier(student, make_backbone, freeze=False, dropout=0.3)
    call = "Classifier(tiny backbone, 6, num_classes=5, dropout=0.3)"
    info = module_info(model)
    shapes = {name: tuple(shape) for name, shape, *_ in info["parameters"]}
    check(shapes.get("head.weight") == (5, 6) and shapes.get("head.bias") == (5,),
          f"expected head.weight [5, 6] and head.bias [5], got {shapes.get('head.weight')}, {shapes.get('head.bias')}",
          call=call, hint="self.head = nn.Linear(feature_dim, num_classes)")
    check(model.dropout.p == pytest.approx(0.3), f"expected dropout p=0.3, got {model.dropout.p}", call=call)
    check(all(flag for _, _, flag, _ in info["parameters"]), "every parameter must be trainable without freezing",
          call=call)
    model.eval()
    out = model(torch.randn(2, 3, 6, 6))
    check(tuple(out.shape) == (2, 5), f"expected logits [2, 5], got {list(out.shape)}", call=call + "(x[2, 3, 6, 6])")
    # Output values: in eval mode head(backbone(x)) with BatchNorm's running statistics and no dropout ...
    generator = torch.Generator().manual_seed(23)
    images = torch.randn(8, 3, 5, 7, generator=generator) * 2 + 1
    weight, bias = model.head.weight.detach(), model.head.bias.detach()
    got = call_keeping_inputs(model, images)  # the images stay as they were
    expected = _local_features(helpers, model, False, images) @ weight.T + bias
    assert_close(got.detach(), expected, call=call + " in eval mode (x[8, 3, 5, 7])", rtol=1e-4, atol=1e-5,
                 what="logits", hint="forward: head(dropout(backbone(x))); eval mode: no dropout, running statistics")
    # ... in train mode each feature is either dropped or scaled by 1 / (1 - p) (whatever the random draws).
    model.train()
    got = model(images).detach()
    features = _local_features(helpers, model, True, images)
    masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6)))
    dropped = False
    for row in range(images.shape[0]):
        candidates = (features[row] * masks / (1 - 0.3)) @ weight.T + bias
        errors = (candidates - got[row]).abs().amax(dim=1)
        best = int(errors.argmin())
        check(float(errors[best]) < 1e-4, f"train-mode logits of image {row} are {got[row].tolist()}: not "
              "head(dropout(features)) for any dropout mask of the features", call=call + " in train mode",
              hint="dropout on the backbone's features, before the head (nn.Dropout scales kept values by 1/(1-p))")
        dropped = dropped or bool(masks[best].min() == 0)
    check(dropped, "in train mode no feature of 8 images was dropped (dropout p=0.3)", call=call + " in train mode",
          hint="apply self.dropout to the features in forward")


@pytest.mark.weight(1)
@pytest.mark.number("5.2")
def test_frozen_backbone_flags(student, make_backbone):
    """Frozen backbone: requires_grad False, eval mode kept by train(), only the head optimised"""
    model = _classifier(student, make_backbone, freeze=True)
    call = "Classifier(tiny backbone, 6, 5, freeze_backbone=True)"
    for name, _, requires_grad, _ in module_info(model)["parameters"]:
        expected = not name.startswith("backbone.")
        check(requires_grad == expected, f"{name}: requires_grad should be {expected}", call=call,
              hint="freeze with requires_grad_(False) on every backbone parameter; the head stays trainable")
    model.train()
    check(model.training is True and model.head.training is True, "model.train() must put the head in training mode",
          call=call + "; model.train()")
    check(model.backbone.training is False, "a frozen backbone must stay in eval mode after model.train()",
          call=call + "; model.train()", hint="override train(): call super().train(mode), then backbone.eval()")
    optimizer = student.downstream.build_optimizer(model, lr=0.1)
    given = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    check(given == num_parameters(model.head), f"the optimiser holds {given} values; the head has "
          f"{num_parameters(model.head)}", call="build_optimizer(frozen classifier, lr=0.1)",
          hint="optimise only parameters with requires_grad")
    groups = optimizer.param_groups
    check(type_name(optimizer).endswith("Adam") and len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.1)
          and groups[0]["weight_decay"] == pytest.approx(0.0),
          f"expected torch.optim.Adam with one group, lr 0.1, weight_decay 0; got {type_name(optimizer)} with "
          f"{[(g['lr'], g['weight_decay']) for g in groups]}", call="build_optimizer(frozen classifier, lr=0.1)",
          hint="torch.optim.Adam(trainable parameters, lr=lr, weight_decay=weight_decay)")
    groups = student.downstream.build_optimizer(model, lr=0.02, weight_decay=0.01).param_groups
    check(len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.02) and groups[0]["weight_decay"] == pytest.approx(0.01),
          f"expected one group with lr 0.02 and weight_decay 0.01, got {[(g['lr'], g['weight_decay']) for g in groups]}",
          call="build_optimizer(frozen classifier, lr=0.02, weight_decay=0.01)",
          hint="pass lr and weight_decay on to torch.optim.Adam")


def _train_frozen(student, worker, make_backbone):
    model = _classifier(student, make_backbone, freeze=True)
    before = model.state_dict()
    optimizer = worker.torch.optim.Adam(model.parameters(), lr=0.1)  # every parameter: freezing must hold anyway
    student.downstream.train_one_epoch(model, _batches(3, seed=2), optimizer)
    return before, model.state_dict()


@pytest.mark.weight(1)
@pytest.mark.number("5.3")
def test_frozen_backbone_weights_do_not_change(student, worker, make_backbone):
    """Frozen backbone: training changes the head but no backbone parameter"""
    before, after = _train_frozen(student, worker, make_backbone)
    call = "train_one_epoch(Classifier(..., freeze_backbone=True), 3 batches, Adam(model.parameters()))"
    parameters = [k for k in _floating(before, "backbone.") if "running" not in k]
    for name in parameters:
        check(torch.equal(before[name], after[name]), f"backbone parameter {name} changed", call=call,
              hint="requires_grad_(False) on the backbone's parameters")
    check(not torch.equal(before["head.weight"], after["head.weight"]), "the head did not learn", call=call)


@pytest.mark.weight(1)
@pytest.mark.number("5.4")
def test_frozen_backbone_batchnorm_statistics_do_not_move(student, worker, make_backbone):
    """Frozen backbone: BatchNorm running statistics do not move during training"""
    before, after = _train_frozen(student, worker, make_backbone)
    call = "train_one_epoch(Classifier(..., freeze_backbone=True), 3 batches, optimizer)"
    for name in ("backbone.1.running_mean", "backbone.1.running_var", "backbone.1.num_batches_tracked"):
        check(torch.equal(before[name], after[name]), f"{name} changed during training", call=call,
              hint="keep a frozen backbone in eval mode even when model.train() is called")


@pytest.mark.weight(1)
@pytest.mark.number("5.5")
def test_fine_tuned_backbone_learns(student, worker, make_backbone):
    """Full fine-tuning: backbone weights and BatchNorm statistics change"""
    model = _classifier(student, make_backbone, freeze=False)
    before = model.state_dict()
    optimizer = student.downstream.build_optimizer(model, lr=0.1)
    student.downstream.train_one_epoch(model, _batches(3, seed=2), optimizer)
    after = model.state_dict()
    call = "train_one_epoch(Classifier(..., freeze_backbone=False), 3 batches, build_optimizer(model, 0.1))"
    for name in ("backbone.0.weight", "backbone.1.running_mean", "head.weight"):
        check(not torch.equal(before[name], after[name]), f"{name} did not change", call=call,
              hint="without freezing, the whole model trains (and is in training mode)")


@pytest.mark.weight(1)
@pytest.mark.number("5.6")
def test_train_one_epoch_returns_the_mean_loss(student, worker, make_backbone):
    """train_one_epoch: training mode, returns the mean cross-entropy of its batches (0.0 for none)"""
    model = _classifier(student, make_backbone, freeze=False, dropout=0.0)
    batches = _sizes(_batches(3, seed=5), (5, 4, 1))
    model.train()
    expected = sum(float(F.cross_entropy(model(x).detach().double(), y)) for x, y in batches) / len(batches)
    optimizer = worker.torch.optim.SGD(model.parameters(), lr=0.0)
    model.eval()  # as after an evaluation: train_one_epoch must put the model into training mode itself
    call = "model.eval(); train_one_epoch(model, batches of 5, 4 and 1 images, SGD(lr=0))"
    got = call_keeping_inputs(student.downstream.train_one_epoch, model, batches, optimizer)
    assert_close(got, expected, call=call, rtol=1e-5, atol=1e-6,
                 hint="model.train(), then F.cross_entropy of each batch (BatchNorm on batch statistics); return the "
                      "mean of the batch losses as a float")
    check(isinstance(got, float), f"expected a Python float, got {type(got).__name__}", call="train_one_epoch(...)")
    check(model.training is True, "train_one_epoch must leave the model in training mode", call=call)
    empty = student.downstream.train_one_epoch(model, [], optimizer)
    check(empty == 0.0, f"an empty loader gives 0.0, got {empty!r}", call="train_one_epoch(model, [], optimizer)")


@pytest.mark.weight(1)
@pytest.mark.number("5.7")
def test_evaluate(student, make_backbone):
    """evaluate: accuracy over every image (batches of different sizes) in eval mode; 0.0 for none"""
    model = _classifier(student, make_backbone, freeze=False, dropout=0.9)
    batches = _batches(3, seed=6)
    model.eval()
    predictions = torch.cat([model(x).argmax(1) for x, _ in batches])
    labels = torch.cat([y for _, y in batches])
    # Make about half of the labels right so that the accuracy is neither 0 nor 1; the last, smaller batch is
    # all right, so that the mean of per-batch accuracies differs from the accuracy over every image.
    labels[::2] = predictions[::2]
    labels[-2:] = predictions[-2:]
    batches = _sizes([(x, labels[4 * i:4 * i + 4]) for i, (x, _) in enumerate(batches)], (6, 4, 2))
    expected = float((predictions == labels).double().mean())
    model.train()
    got = call_keeping_inputs(student.downstream.evaluate, model, batches)
    assert_close(got, expected, call="evaluate(model in train mode, batches of 6, 4 and 2 images)", rtol=1e-9,
                 atol=1e-9, hint="model.eval() first (no dropout, BatchNorm running statistics); correct / total over "
                                 "every image, not the mean of per-batch accuracies")
    check(model.training is False, "evaluate must leave the model in eval mode", call="evaluate(...)")
    empty = student.downstream.evaluate(model, [])
    check(empty == 0.0, f"an empty loader gives 0.0, got {empty!r}", call="evaluate(model, [])")

"""Helpers shared by the public and hidden tests of voc_classification (no reference needed).

The course's contract is the S24 starter (``q1_q2_classification/``), so the tests
reach the student's work through the starter's own entry points:

* ``voc_dataset(split, size, root)``: the student's ``VOCDataset`` on a generated
  folder, built as the course builds it (``VOCDataset(split, size, data_dir=...)``,
  else ``VOCDataset(split, size)`` from the folder above ``data/VOCdevkit/VOC2007``,
  the starter's default); when its constructor fails (a changed signature, a
  broken ``preload_anno``), a bare instance with the starter's attributes, labelled
  so in messages, so that the augmentations are graded on their own;
* ``train_run(case)``: the student's ``trainer.train`` on a fixed, tiny data set
  and a model whose logits the test chooses, with the course's loaders, writer and
  optimiser replaced (see ``TrainRun``): the loss the student wrote inline in
  ``train()`` is read from its ``Loss/train`` values and from the gradient it
  sends into the model;
* ``worker_chdir(path)``, ``set_mode(model, training)``, ``read_events(folder)``,
  ``check_annotations(got, images, call)``;
* (autouse) the student's process computes on one thread, and proxies of the
  student's objects are released only when the test ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from grader.compare import GradingFailure, check
from grader.data.voc_classification import READINGS, label_vectors, read_tensorboard_events
from grader.data.voc_course import IMAGE_FEATURES, IMAGE_SHAPE, NUM_CLASSES, LossCase, TrainRun
from grader.sandbox.client import RemoteObject, StudentCodeError


@pytest.fixture(autouse=True)
def _one_thread(request):
    if "student" not in request.fixturenames:
        return
    student = request.getfixturevalue("student")
    student.import_library("torch").set_num_threads(1)
    try:
        student.import_library("threadpoolctl").threadpool_limits(1)
    except Exception:  # noqa: BLE001 - threadpoolctl is optional (scikit-learn brings it)
        pass


@pytest.fixture
def set_mode():
    kept = []

    def set_mode(model, training: bool) -> None:
        kept.append(model.train(training))

    yield set_mode
    kept.clear()


@pytest.fixture
def read_events():
    return read_tensorboard_events


# -- the student's dataset, built as the course builds it --------------------------------------------

@dataclass
class BuiltDataset:
    """A student ``VOCDataset`` and how it was made (``how`` is quoted in messages)."""

    dataset: Any
    how: str
    bare: bool = False
    problem: str = ""


def _build_dataset(student, worker_chdir, split: str, size: int, root: Path, *, bare_labels: bool) -> BuiltDataset:
    cls = student.voc_dataset.VOCDataset
    try:
        return BuiltDataset(cls(split, size, data_dir=str(root)), f"VOCDataset({split!r}, {size}, data_dir=...)")
    except StudentCodeError as exc:
        first = exc
    if root.parts[-3:] == ("data", "VOCdevkit", "VOC2007"):
        try:
            with worker_chdir(root.parents[2]):
                return BuiltDataset(cls(split, size), f"VOCDataset({split!r}, {size}) from the folder above "
                                                      "data/VOCdevkit/VOC2007")
        except StudentCodeError:
            pass
    # A bare instance: the attributes the starter's __init__ sets, so that the methods under test
    # run on their own.
    builtins = student.import_library("builtins")
    dataset = builtins.getattr(cls, "__new__")(cls)
    ids = [line.strip() for line in (root / "ImageSets" / "Main" / f"{split}.txt").read_text().splitlines()
           if line.strip()]
    values = {"split": split, "data_dir": str(root), "size": size, "img_dir": str(root / "JPEGImages"),
              "ann_dir": str(root / "Annotations"), "index_list": ids}
    for name, value in values.items():
        setattr(dataset, name, value)
    names = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
             "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
             "tvmonitor")
    if not builtins.hasattr(cls, "CLASS_NAMES"):
        dataset.CLASS_NAMES = list(names)
    if not builtins.hasattr(cls, "INV_CLASS"):
        dataset.INV_CLASS = {name: index for index, name in enumerate(names)}
    if bare_labels:
        zeros, ones = torch.zeros(NUM_CLASSES), torch.ones(NUM_CLASSES)
        dataset.anno_list = [(zeros, ones)] * len(ids)
    message = first.message.splitlines()[-1] if first.message else first.type_name
    return BuiltDataset(dataset, f"VOCDataset (made without its __init__, which raised {first.type_name}: "
                                 f"{message[:160]})", bare=True, problem=message)


@pytest.fixture
def voc_dataset(student, worker_chdir):
    """``build(split, size, root, bare_labels=False) -> BuiltDataset`` (see the module docstring)."""

    def build(split: str, size: int, root: Path, *, bare_labels: bool = False) -> BuiltDataset:
        return _build_dataset(student, worker_chdir, split, size, Path(root), bare_labels=bare_labels)

    return build


def _check_annotations(got, images, call: str) -> None:
    """``got`` (list of (label, weight)) must match ``images`` under one reading, the same for every image."""
    check(isinstance(got, (list, tuple)), f"expected a list of (label, weight) pairs, got {type(got).__name__}",
          call=call)
    check(len(got) == len(images), f"expected {len(images)} pairs (one per image of the split), got {len(got)}",
          call=call)
    labels, weights = [], []
    for index, pair in enumerate(got):
        check(isinstance(pair, (list, tuple)) and len(pair) == 2,
              f"item {index}: expected a (label, weight) pair, got {pair!r:.80}", call=call)
        for what, value, store in (("label", pair[0], labels), ("weight", pair[1], weights)):
            value = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
            check(tuple(value.shape) == (20,), f"item {index}: the {what} must have shape [20], got "
                                               f"{list(value.shape)}", call=call)
            store.append(value.float())
    labels, weights = torch.stack(labels), torch.stack(weights)
    problems = []
    for reading in READINGS:
        expected_labels, expected_weights = label_vectors(images, reading)
        counted = expected_weights > 0
        bad_weight = (weights != expected_weights).any(1)
        # Where the weight is 0 the label does not matter (VOC itself marks such classes 0, the handout 1).
        bad_label = ((labels != expected_labels) & counted).any(1) | ~((labels == 0) | (labels == 1)).all(1)
        bad = bad_weight | bad_label
        if not bad.any():
            return
        row = int(torch.nonzero(bad)[0])
        image = images[row]
        objects = ", ".join(f"{o.name}{' (difficult)' if o.difficult else ''}" for o in image.objects)
        present = lambda v: [VOC_NAMES[i] for i in torch.nonzero(v).flatten().tolist()]  # noqa: E731
        problems.append(
            f"reading '{reading}' (weight 0 when {reading} objects of the class are difficult): first mismatch at "
            f"image {image.image_id} with objects [{objects}]:\n"
            f"  expected label 1 for {present(expected_labels[row])}, weight 0 for "
            f"{present(expected_weights[row] == 0)}\n"
            f"  got      label 1 for {present(labels[row])}, weight 0 for {present(weights[row] == 0)}")
    raise GradingFailure(f"Called {call}\n" + "\n".join(problems) + "\nHint: label[i] = 1 when any object of "
                         "class i is in the image; weight[i] = 0 for classes marked difficult, 1 otherwise "
                         "(absent classes keep weight 1).")


VOC_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


@pytest.fixture
def check_annotations():
    return _check_annotations


# -- the loss, through the starter's train()

def _train_on_case(student, worker_chdir, tmp: Path, case: LossCase, *, banned: tuple = ()) -> TrainRun:
    n = case.logits.shape[0]
    if n > IMAGE_FEATURES:
        raise ValueError(f"at most {IMAGE_FEATURES} images, got {n}")
    images = torch.zeros(n, IMAGE_FEATURES)
    images[torch.arange(n), torch.arange(n)] = 1.0
    images = images.reshape(n, *IMAGE_SHAPE)
    weight = torch.zeros(NUM_CLASSES, IMAGE_FEATURES)
    weight[:, :n] = case.logits.T
    call = (f"train(ARGS(epochs=1, batch_size={case.batch_size}, log_every=1, ...), model, optimizer, scheduler) on "
            f"{case.description} (the grader's data loaders, SummaryWriter, and an optimizer that changes nothing)")
    run = TrainRun(call=call)

    data = student.import_library("torch.utils.data")
    nn = student.import_library("torch.nn")
    mock = student.import_library("unittest.mock")
    os_module = student.import_library("os")
    dataset = data.TensorDataset(images, case.labels.float(), case.weights.float())
    loader = data.DataLoader(dataset, batch_size=case.batch_size, shuffle=False, num_workers=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE_FEATURES, NUM_CLASSES, bias=False))
    model.load_state_dict({"1.weight": weight})
    # An optimiser and a scheduler that change nothing (not even a NaN gradient's parameter): the model's
    # logits stay the test's. Its gradient accumulates, but image i feeds only column i of the weight, so
    # the column of each image of the last batch holds exactly that image's d loss / d logits.
    optimizer = mock.Mock()
    scheduler = mock.Mock()
    scheduler.get_last_lr.return_value = [0.0]
    utils, trainer = student.load("utils"), student.load("trainer")
    args = utils.ARGS(epochs=1, batch_size=case.batch_size, test_batch_size=n, log_every=1, val_every=10**6,
                      inp_size=IMAGE_SHAPE[-1], use_cuda=False, save_at_end=False, save_freq=-1)
    builtins = student.import_library("builtins")
    loaders = mock.Mock(return_value=loader)
    writer = mock.MagicMock()
    saved = []
    # The starter's trainer calls utils.get_data_loader and SummaryWriter(); a trainer that imported
    # get_data_loader by name has its own binding, replaced too.
    replaced = [(utils, "get_data_loader", loaders), (trainer, "get_data_loader", loaders),
                (trainer, "SummaryWriter", writer), *banned]
    for owner, name, value in replaced:
        if builtins.hasattr(owner, name):
            saved.append((owner, name, builtins.getattr(owner, name)))
            setattr(owner, name, value)
    previous_mode = os_module.environ.get("WANDB_MODE")
    os_module.environ["WANDB_MODE"] = "disabled"  # a trainer that logs to wandb too: nothing leaves the box
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o777)  # the student's process writes runs/ (and whatever else its trainer saves) here
    try:
        with worker_chdir(tmp):
            trainer.train(args, model, optimizer, scheduler)
    except StudentCodeError as exc:
        run.error = exc
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)
        if previous_mode is None:
            os_module.environ.pop("WANDB_MODE", None)
        else:
            os_module.environ["WANDB_MODE"] = previous_mode
    if run.error is not None:
        return run
    calls = writer.return_value.add_scalar.call_args_list
    losses = []
    for index in range(len(calls)):
        args_ = calls[index].args
        kwargs_ = calls[index].kwargs
        tag = args_[0] if len(args_) else kwargs_.get("tag")
        if tag == "Loss/train":
            losses.append(float(args_[1] if len(args_) > 1 else kwargs_.get("scalar_value")))
    if losses:
        run.losses, run.logged_through = losses, "SummaryWriter"
    else:
        events = read_tensorboard_events(tmp)["scalars"].get("Loss/train", [])
        if events:
            run.losses, run.logged_through = [v for _, v in events], "event files"
    grad = student.import_library("operator").attrgetter("1.weight.grad")(model)  # .grad stays behind on a copy
    if grad is not None:
        last = case.batches[-1]
        run.last_grad = grad.T[last.start:last.stop].double()
    return run


@pytest.fixture
def train_run(student, worker_chdir, sandbox_tmp_path):
    """``run(case, banned=()) -> TrainRun``: the student's train() on a ``LossCase`` (see the module docstring).

    ``banned`` lists ``(module proxy, name, None)`` to remove while train() runs (torch's losses).
    """
    counter = iter(range(10**6))

    def run(case: LossCase, *, banned: tuple = ()) -> TrainRun:
        return _train_on_case(student, worker_chdir, sandbox_tmp_path / f"train-{next(counter)}", case,
                              banned=banned)

    return run


@pytest.fixture
def banned_losses(student) -> tuple:
    """torch's loss functions and classes, as (module proxy, name, None) triples to remove while train() runs."""
    import torch.nn as local_nn
    import torch.nn.functional as local_functional

    functional = student.import_library("torch.nn.functional")
    nn = student.import_library("torch.nn")
    torch_w = student.import_library("torch")
    names_f = [n for n in dir(local_functional)
               if n.endswith("_loss") or n in ("binary_cross_entropy", "binary_cross_entropy_with_logits",
                                               "cross_entropy", "nll_loss")]
    names_nn = [n for n in dir(local_nn) if n.endswith("Loss")]
    names_torch = [n for n in ("binary_cross_entropy_with_logits",) if hasattr(torch, n)]
    return tuple([(functional, n, None) for n in names_f] + [(nn, n, None) for n in names_nn]
                 + [(torch_w, n, None) for n in names_torch])


def hold_call(student, fn, *args) -> RemoteObject:
    """``fn(*args)`` whose result stays in the student's process (a proxy comes back)."""
    return student.connection.request("call_sync", obj=fn, args=list(args), kwargs={}, hold=True,
                                      label=f"{object.__getattribute__(fn, '_label')}(...)")


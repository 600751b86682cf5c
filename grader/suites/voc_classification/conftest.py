"""Helpers shared by the public and hidden tests of voc_classification (no reference needed).

They are fixtures so that test files never import each other:

* ``worker_chdir(path)``: run the student's code with ``path`` as its current
  folder (the handout's loaders read ``data/VOCdevkit/VOC2007`` and its
  ``SummaryWriter()`` writes ``runs/`` relative to it), restored afterwards;
* ``read_events(folder)``: the TensorBoard scalars and histogram tags written
  below ``folder``;
* ``check_annotations(got, images, call)``: a ``preload_anno`` result against
  the generator's annotations, under either reading of the difficult rule;
* (autouse) the student's process computes on one thread: the models here are
  small, and several threads on a shared or busy machine spin against each
  other (a 10x slowdown measured for ResNet-18 and scikit-learn's t-SNE);
* ``set_mode(model, training)``: ``model.train(training)`` on a student model.
  ``train()``/``eval()`` return the model itself, and the proxy that comes back
  shares the model's handle in the worker: dropping it would release the model
  while the test still uses it, so the fixture keeps it until the test ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from grader.compare import GradingFailure, check
from grader.data.voc_classification import READINGS, label_vectors, read_tensorboard_events


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
def worker_chdir(student):
    @contextlib.contextmanager
    def chdir(path: Path) -> Iterator[None]:
        os_module = student.import_library("os")
        previous = os_module.getcwd()
        os_module.chdir(str(path))
        try:
            yield
        finally:
            os_module.chdir(previous)

    return chdir


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
            check(type(value) is torch.Tensor and tuple(value.shape) == (20,) and value.dtype == torch.float32,
                  f"item {index}: the {what} must be a float32 tensor of shape [20], got "
                  f"{getattr(value, 'dtype', type(value).__name__)} {list(getattr(value, 'shape', []))}", call=call)
            store.append(value)
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

"""Learnability (slow): the reference models train to a stated accuracy on CPU within a time budget.

Run with ``python -m pytest tests/wildlife_classification/test_wc_learnability.py -m slow -s``; each test prints
its curve, test accuracy, wall and CPU time (recorded in reference/wildlife_classification/README.md).
Budgets are asserted in CPU seconds of this process, which a shared, busy machine does not inflate.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from grader.data.wildlife_classification import make_wildlife_folder
from grader.paths import reference_root
from grader.sandbox.loader import load_modules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def ref():
    modules = load_modules(reference_root() / "wildlife_classification",
                           ["wildlife_dataset", "models", "train", "metrics"], isolated=True)
    return type("Reference", (), modules)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """600 images: 10 classes x 60, 48-80 px, one (shape, colour) per class on noisy backgrounds."""
    return make_wildlife_folder(tmp_path_factory.mktemp("wildlife") / "russian_wildlife", 60, seed=0).root


def _report(name: str, history: dict, test: dict, seconds: float, cpu: float) -> None:
    curve = " ".join(f"{v:.3f}" for v in history["val_accuracy"])
    print(f"\n[{name}] val accuracy per epoch: {curve}; test accuracy {test['accuracy']:.3f}; "
          f"{seconds:.0f} s wall, {cpu:.0f} s CPU, {torch.get_num_threads()} thread(s)")


def test_cnn_learns_synthetic_wildlife(ref, synthetic_root):
    """The specified CNN, 64 px, Adam 1e-3, 10 epochs: >= 90 % test accuracy in under 5 CPU minutes."""
    torch.manual_seed(0)
    loaders = ref.wildlife_dataset.make_loaders(synthetic_root, batch_size=32, size=64, seed=0, augment=False)
    model = ref.models.WildlifeCNN(10, 3, 64)
    started, cpu = time.perf_counter(), time.process_time()
    history = ref.train.fit(model, loaders, epochs=10, lr=1e-3)
    test = ref.train.evaluate(model, loaders["test"])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _report("WildlifeCNN synthetic", history, test, seconds, cpu)
    assert test["accuracy"] >= 0.90
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert cpu < 300


def test_vgg13_learns_synthetic_wildlife(ref, synthetic_root):
    """VGG13 (batch norm, hidden 256, dropout 0.2), 32 px, Adam 5e-4, batches of 16, 10 epochs: >= 70 % test."""
    torch.manual_seed(0)
    loaders = ref.wildlife_dataset.make_loaders(synthetic_root, batch_size=16, size=32, seed=0, augment=False)
    model = ref.models.VGG13(10, 3, 32, hidden_dim=256, dropout=0.2, batch_norm=True)
    started, cpu = time.perf_counter(), time.process_time()
    history = ref.train.fit(model, loaders, epochs=10, lr=5e-4)
    test = ref.train.evaluate(model, loaders["test"])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _report("VGG13 synthetic", history, test, seconds, cpu)
    assert test["accuracy"] >= 0.70
    assert cpu < 1200


def test_cnn_reaches_90_percent_on_digits(ref):
    """The specified CNN on sklearn's bundled digits (8x8 upsampled to 32x32, grey): >= 90 % test accuracy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = (images - images.mean()) / images.std()
    labels = torch.tensor(digits.target, dtype=torch.long)
    parts = ref.wildlife_dataset.stratified_split(labels, (0.7, 0.1, 0.2), seed=0)
    data = torch.utils.data
    generator = torch.Generator().manual_seed(0)
    loaders = {name: data.DataLoader(data.TensorDataset(images[idx], labels[idx]), batch_size=64,
                                     shuffle=name == "train", generator=generator if name == "train" else None)
               for name, idx in zip(("train", "val", "test"), parts)}
    torch.manual_seed(0)
    model = ref.models.WildlifeCNN(10, 1, 32)
    started, cpu = time.perf_counter(), time.process_time()
    history = ref.train.fit(model, loaders, epochs=10, lr=1e-3)
    test = ref.train.evaluate(model, loaders["test"])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    _report("WildlifeCNN digits", history, test, seconds, cpu)
    f1 = ref.metrics.f1_score(test["preds"], test["targets"], 10, "macro")
    print(f"[WildlifeCNN digits] macro F1 {f1:.3f}")
    assert test["accuracy"] >= 0.90
    assert cpu < 300

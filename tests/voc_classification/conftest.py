"""Fixtures of the voc_classification project tests: the reference, loaded without leaking flat module names.

The handout's files import each other by flat name (``import utils``); other
assignments have files of the same names, so the reference is imported with
``grader.sandbox.loader.load_modules(isolated=True)`` and its modules are put
back under their flat names only inside ``flat_names()`` (for the scripts'
``main`` functions, which import lazily).
"""

from __future__ import annotations

import contextlib
import sys
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

from grader import manifest as manifests
from grader.sandbox.loader import load_modules

MODULES = ("voc_dataset", "simple_cnn", "caffe_net", "utils", "metrics", "trainer", "train_q1", "train_q2",
           "analysis", "q0_hello_mnist")


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread for torch and OpenMP: on a shared 2-core machine more threads spin against each other
    (scikit-learn's t-SNE and ResNet-18 ran 10x slower)."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ref_modules() -> dict:
    return load_modules(manifests.get("voc_classification").reference_dir, MODULES, isolated=True)


@pytest.fixture(scope="session")
def ref(ref_modules) -> SimpleNamespace:
    """The reference modules as attributes: ``ref.utils.compute_ap``."""
    return SimpleNamespace(**ref_modules)


@pytest.fixture
def flat_names(ref_modules):
    """A context manager under which ``import utils`` etc. find the reference modules."""

    @contextlib.contextmanager
    def context():
        directory = str(manifests.get("voc_classification").reference_dir)
        saved = {name: sys.modules.get(name) for name in ref_modules}
        sys.modules.update(ref_modules)
        sys.path.insert(0, directory)
        try:
            yield
        finally:
            sys.path.remove(directory)
            for name, module in saved.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module

    return context


@pytest.fixture
def offline_resnet(tmp_path, monkeypatch):
    """TORCH_HOME seeded with the grader's stand-in ResNet-18 checkpoint; any download fails the test."""
    from grader.weights import seed_torch_home

    seed_torch_home(tmp_path / "torch-home", ["resnet18"])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.fixture
def train_on_logits(ref, monkeypatch, tmp_path):
    """``run(logits, labels, weights) -> (logged loss, d loss / d logits)``: the reference's train() on one batch.

    The loss is written inline in ``trainer.train`` (the starter's TODO), so it is reached the way the
    grader reaches it: image ``i`` is the one-hot vector ``e_i`` and the model a bias-free linear layer
    whose weight holds the wanted logits, so ``d loss / d weight`` is ``d loss / d logits``. The data
    loaders, the SummaryWriter and the evaluation are replaced; the optimizer changes nothing.
    """

    def run(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor):
        n, classes = logits.shape
        images = torch.eye(n).reshape(n, 1, 1, n)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels, weights), batch_size=n)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n, classes, bias=False))
        model[1].weight.data = logits.detach().T.contiguous().clone()
        writer = mock.MagicMock()
        monkeypatch.setattr(ref.utils, "get_data_loader", mock.Mock(return_value=loader))
        monkeypatch.setattr(ref.utils, "eval_dataset_map", mock.Mock(return_value=(None, 0.0)))
        monkeypatch.setattr(ref.trainer, "SummaryWriter", writer)
        monkeypatch.chdir(tmp_path)
        args = ref.utils.ARGS(epochs=1, batch_size=n, log_every=1, val_every=10**6)
        ref.trainer.train(args, model, mock.Mock(), None)
        logged = [c.args[1] for c in writer.return_value.add_scalar.call_args_list if c.args[0] == "Loss/train"]
        assert len(logged) == 1, logged
        return logged[0], model[1].weight.grad.T

    return run

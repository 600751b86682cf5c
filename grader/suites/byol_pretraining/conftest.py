"""Fixtures of the byol_pretraining suite: small networks and libraries inside the student's process.

Tests build tiny backbones (conv, BatchNorm, pooling) in the student's process
so that BYOL and the classifier run in milliseconds; ResNets appear only where
the interface needs one.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def _hold_proxies(monkeypatch):
    """Keep every proxy of a test alive until the test ends.

    Works around an engine bug: the worker gives the same handle id to every
    reply that contains the same object (``model.train()`` returns the model),
    the trusted side makes one proxy per reply, and the first of them to be
    garbage-collected releases the id for all, so that the others fail with
    "unknown object id". Holding them until teardown makes the release happen
    once the test no longer needs any of them.
    """
    from grader.sandbox import client

    held = []
    original = client.Connection._decode_handle

    def decode(self, handle):
        proxy = original(self, handle)
        held.append(proxy)
        return proxy

    monkeypatch.setattr(client.Connection, "_decode_handle", decode)
    yield
    held.clear()


@pytest.fixture
def worker(student):
    """Library modules inside the student's process (``worker.nn.Linear(2, 3)`` is built there)."""
    return SimpleNamespace(
        torch=student.import_library("torch"),
        nn=student.import_library("torch.nn"),
        builtins=student.import_library("builtins"),
        operator=student.import_library("operator"),
        v2=student.import_library("torchvision.transforms.v2"),
        torchvision=student.import_library("torchvision"),
    )


def tiny_backbone(nn_module, width: int = 6):
    """conv 3x3 -> BatchNorm -> ReLU -> global average pool -> flatten: ``[B, 3, H, W]`` -> ``[B, width]``.

    ``nn_module`` is ``torch.nn`` here or ``worker.nn`` in the student's process.
    """
    return nn_module.Sequential(nn_module.Conv2d(3, width, 3, padding=1), nn_module.BatchNorm2d(width),
                                nn_module.ReLU(), nn_module.AdaptiveAvgPool2d(1), nn_module.Flatten())


@pytest.fixture
def plain(worker):
    """``plain(value)``: a ``tv_tensors.Image`` (or other tensor subclass) from the student as a plain tensor.

    torchvision's v2 transforms return ``tv_tensors.Image``; the grader accepts it
    wherever a tensor is expected.
    """

    def convert(value):
        from grader.sandbox.client import RemoteObject

        if isinstance(value, RemoteObject):
            return worker.torch.Tensor.as_subclass(value, worker.torch.Tensor)
        return value

    return convert


@pytest.fixture
def make_backbone(worker):
    """``make_backbone(width, seed)``: a tiny backbone in the student's process, initialised from ``seed``."""

    def make(width: int = 6, seed: int = 0):
        worker.torch.manual_seed(seed)
        return tiny_backbone(worker.nn, width)

    return make


def local_backbone(width: int = 6, seed: int = 0) -> nn.Module:
    """The same tiny backbone in this process (same initial weights as ``make_backbone``)."""
    torch.manual_seed(seed)
    return tiny_backbone(nn, width)


@pytest.fixture
def grads_of(worker):
    """``grads_of(parameters_proxy)``: the ``.grad`` of each parameter (tensors or None), read in the worker."""

    def grads(parameters):
        return worker.builtins.list(worker.builtins.map(worker.operator.attrgetter("grad"), parameters))

    return grads


def image_tensor(height: int, width: int, seed: int) -> torch.Tensor:
    """A uint8 image ``[3, height, width]`` with structure (gradients and blocks), not just noise."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    base = torch.stack([x.expand(height, width), y.expand(height, width), (x * y)])
    noise = torch.rand(3, height, width, generator=generator) * 0.3
    blocks = (torch.rand(3, 4, 4, generator=generator) > 0.5).float()
    blocks = nn.functional.interpolate(blocks[None], size=(height, width), mode="nearest")[0] * 0.4
    return ((base * 0.5 + noise + blocks).clamp(0, 1) * 255).round().to(torch.uint8)


def reference_augmentation(image_size: int):
    """The seed's pipeline built here with torchvision (the oracle of ``byol_augmentation``)."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomApply([v2.ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.3),
        v2.RandomGrayscale(p=0.2),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.GaussianBlur((3, 3), sigma=(1.0, 2.0))], p=0.2),
        v2.RandomResizedCrop((image_size, image_size)),
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.4705, 0.4495, 0.4037], [0.2170, 0.2149, 0.2145]),
    ])


def seeded(transform, image, seed: int) -> torch.Tensor:
    """``transform(image)`` under ``torch.manual_seed(seed)``, leaving this process's generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transform(image).as_subclass(torch.Tensor)


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files under ``log_dir``: ``{tag: [(step, value), ...]}``, by step."""
    from tensorboard.compat.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            start = offset + 12
            record = data[start:start + length]
            offset = start + length + 4
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif value.HasField("tensor") and value.tensor.float_val:
                    number = value.tensor.float_val[0]
                elif value.HasField("tensor") and value.tensor.double_val:
                    number = value.tensor.double_val[0]
                else:
                    continue
                scalars.setdefault(value.tag, []).append((int(event.step), float(number)))
    return {tag: sorted(values) for tag, values in scalars.items()}


@pytest.fixture
def helpers():
    """Plain helper functions for the tests (no student code)."""
    return SimpleNamespace(local_backbone=local_backbone, image_tensor=image_tensor,
                           reference_augmentation=reference_augmentation, seeded=seeded,
                           read_scalars=read_scalars, tiny_backbone=tiny_backbone)

"""Shared fixtures of the wildlife_classification suite (public and hidden tests).

Everything here runs in the trusted process: synthetic image folders that the
student's process can read, weight copying into student models by layer order,
and readers for what the student's code writes (PNG files, TensorBoard events,
offline wandb runs).
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.compare import check
from grader.data.wildlife_classification import CLASS_TO_IDX, WILDLIFE_CLASSES, make_wildlife_folder
from grader.plugin import STATE
from grader.student import module_info

HANDOUT_CLASS_TO_IDX = {"amur_leopard": 0, "amur_tiger": 1, "birds": 2, "black_bear": 3, "brown_bear": 4,
                        "dog": 5, "roe_deer": 6, "sika_deer": 7, "wild_boar": 8, "people": 9}
assert HANDOUT_CLASS_TO_IDX == CLASS_TO_IDX


def _open_up(directory: Path) -> None:
    """Let the student's (possibly unprivileged) process read a folder written here."""
    for root, _dirs, files in os.walk(directory):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


@pytest.fixture(scope="session")
def wildlife_folder(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A read-only synthetic Russian Wildlife folder: 10 classes x 10 images (48-80 px, a few PNGs).

    It lives in the grading's exchange folder, the one place under ``/tmp`` that the
    workers see (each has its own empty ``/tmp`` otherwise).
    """
    state = request.config.stash.get(STATE, None)
    parent = state.exchange_dir() if state is not None else None
    base = Path(tempfile.mkdtemp(prefix="wildlife-", dir=parent))
    folder = make_wildlife_folder(base / "russian_wildlife", 10, seed=2024, png_every=5)
    _open_up(base)
    yield folder
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_folder(sandbox_tmp_path: Path) -> Any:
    """``make_folder(per_class, seed=..., name=...)``: a fresh synthetic folder the test may change."""

    def _make(per_class: int | dict = 3, seed: int = 0, name: str = "data", **kwargs: Any) -> Any:
        folder = make_wildlife_folder(sandbox_tmp_path / name, per_class, seed=seed, **kwargs)
        _open_up(sandbox_tmp_path / name)
        return folder

    return _make


@pytest.fixture
def keep() -> Iterator[Any]:
    """``keep(proxy)``: hold a proxy until the test ends, and return it.

    Works around the engine's handle bookkeeping: the worker gives every proxy of
    one object the same id, and the first of them to be garbage-collected
    releases the object for all. ``model.eval()`` returns ``model`` itself, so
    discarding its result would release ``model``; write ``keep(model.eval())``.
    """
    held: list[Any] = []

    def _keep(value: Any) -> Any:
        held.append(value)
        return value

    yield _keep
    held.clear()


# -- models --------------------------------------------------------------------

def parameter_shapes(model: Any) -> list[tuple[int, ...]]:
    """Shapes of a (student or local) module's parameters, in registration order."""
    return [tuple(shape) for _, shape, _, _ in module_info(model)["parameters"]]


def copy_weights_by_order(source: torch.nn.Module, target: Any, what: str = "features") -> None:
    """Load ``source``'s parameters and buffers into the student module ``target``, matched by order and shape.

    Raises:
        GradingFailure: the two modules do not have the same layers (listing both).
    """
    info = module_info(target)
    got_params = [(name, tuple(shape)) for name, shape, _, _ in info["parameters"]]
    want_params = [(name, tuple(p.shape)) for name, p in source.named_parameters()]
    check([s for _, s in got_params] == [s for _, s in want_params],
          f"{what}: expected parameters of shapes {[s for _, s in want_params]} (in this order), got "
          f"{[s for _, s in got_params]}", hint="build the layers exactly as the docstring lists them, in order")
    got_buffers = [(name, tuple(shape)) for name, shape in info["buffers"]]
    want_buffers = [(name, tuple(b.shape)) for name, b in source.named_buffers()]
    check([s for _, s in got_buffers] == [s for _, s in want_buffers],
          f"{what}: expected buffers of shapes {[s for _, s in want_buffers]}, got {[s for _, s in got_buffers]}",
          hint="BatchNorm layers only where the docstring asks for them")
    state = {}
    for (name, _), (_, tensor) in zip(got_params, source.named_parameters()):
        state[name] = tensor.detach().clone()
    for (name, _), (_, tensor) in zip(got_buffers, source.named_buffers()):
        state[name] = tensor.detach().clone()
    target.load_state_dict(state)


def seeded_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Re-initialise ``module``'s parameters and BatchNorm statistics from a seed (He-scaled weights)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() > 1:
                parameter.copy_(noise * (2.0 / parameter[0].numel()) ** 0.5)
            else:
                parameter.copy_(noise * 0.1 + (1.0 if name.endswith("weight") else 0.0))
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return module


# -- small models and loaders built inside the student's process ---------------------------

def toy_data(count: int = 24, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [count, 3, 4, 4] whose class shifts the mean (learnable), and int64 labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % classes
    centres = torch.randn(classes, 3, 4, 4, generator=generator)
    images = centres[labels] + 0.5 * torch.randn(count, 3, 4, 4, generator=generator)
    return images, labels


def local_toy_model(classes: int = 3, dropout: float = 0.0, seed: int = 0) -> torch.nn.Sequential:
    """Flatten -> [Dropout] -> Linear(48, classes), seeded; the twin of ``remote_toy_model``."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    if dropout:
        layers.append(torch.nn.Dropout(dropout))
    layers.append(torch.nn.Linear(48, classes))
    return torch.nn.Sequential(*layers)


def remote_toy_model(student: Any, local: torch.nn.Sequential) -> Any:
    """The same model as ``local`` (same layers, same weights), built in the student's process."""
    nn = student.import_library("torch.nn")
    layers = []
    for layer in local:
        if isinstance(layer, torch.nn.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(layer, torch.nn.Dropout):
            layers.append(nn.Dropout(layer.p))
        else:
            layers.append(nn.Linear(layer.in_features, layer.out_features))
    model = nn.Sequential(*layers)
    model.load_state_dict({k: v.detach().clone() for k, v in local.state_dict().items()})
    return model


def remote_feature_model(student: Any, local: torch.nn.Sequential) -> Any:
    """A bare ``nn.Module`` whose ``forward_features`` is a copy of ``local`` (for extract_features)."""
    holder = student.import_library("torch.nn").Module()
    holder.forward_features = remote_toy_model(student, local)
    return holder


def remote_loader(student: Any, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> Any:
    """An unshuffled ``DataLoader(TensorDataset(images, labels))`` in the student's process."""
    data = student.import_library("torch.utils.data")
    return data.DataLoader(data.TensorDataset(images, labels), batch_size=batch_size, shuffle=False)


# -- files written by student code ---------------------------------------------------

def assert_png(path: str | os.PathLike, what: str, min_side: int = 100) -> None:
    """``path`` is a non-blank PNG image of at least ``min_side`` pixels a side."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    check(path.is_file(), f"{what}: no file was written at {path.name}",
          hint="save the figure with fig.savefig(path) and return path")
    try:
        with Image.open(path) as image:
            fmt, size = image.format, image.size
            pixels = np.asarray(image.convert("L"), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - anything unreadable is the student's file
        raise AssertionError(f"{what}: {path.name} is not a readable image ({exc})") from None
    check(fmt == "PNG", f"{what}: expected a PNG file, got {fmt}")
    check(min(size) >= min_side, f"{what}: the image is only {size[0]}x{size[1]} pixels")
    check(float(pixels.std()) > 1.0, f"{what}: the image is blank (a single colour)")


def read_scalars(log_dir: str | os.PathLike) -> tuple[dict[str, list[tuple[int, float]]], list[str]]:
    """TensorBoard scalars ``{tag: [(step, value), ...]}`` and image tags found under ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[tuple[int, float]]] = {}
    images: list[str] = []
    found = False
    for root, _dirs, files in os.walk(log_dir):
        if not any(name.startswith("events.out.tfevents") for name in files):
            continue
        found = True
        accumulator = EventAccumulator(root, size_guidance={"scalars": 0, "images": 0})
        accumulator.Reload()
        tags = accumulator.Tags()
        for tag in tags.get("scalars", []):
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in accumulator.Scalars(tag))
        images.extend(tags.get("images", []))
    check(found, f"no TensorBoard event file was written under the log_dir {Path(log_dir).name!r}",
          hint="create torch.utils.tensorboard.SummaryWriter(log_dir) and close it before returning")
    return scalars, images


def read_wandb_history(folder: str | os.PathLike) -> list[dict[str, str]]:
    """The history rows (key -> JSON text) of the offline wandb runs under ``folder``.

    Reads the ``run-*.wandb`` files directly: a LevelDB-style log (32 KiB blocks,
    7-byte chunk headers) of ``wandb_internal_pb2.Record`` messages after a
    7-byte ``:W&B`` header.
    """
    from wandb.proto import wandb_internal_pb2

    rows: list[dict[str, str]] = []
    files = sorted(Path(folder).rglob("run-*.wandb"))
    check(bool(files), "no offline wandb run (a run-*.wandb file) was written under log_dir",
          hint='wandb.init(mode="offline", dir=log_dir, ...) and run.finish() before returning')
    for path in files:
        data = path.read_bytes()
        position, block, pending = 7, 32768, b""
        records = []
        while position + 7 <= len(data):
            left = block - position % block
            if left < 7:
                position += left
                continue
            _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
            if length == 0 and kind == 0:
                position += left
                continue
            chunk = data[position + 7:position + 7 + length]
            position += 7 + length
            if kind == 1:
                records.append(chunk)
            elif kind == 2:
                pending = chunk
            elif kind == 3:
                pending += chunk
            elif kind == 4:
                records.append(pending + chunk)
        for raw in records:
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(raw)
            except Exception:  # noqa: BLE001 - a torn record at the end of a killed run
                continue
            if record.WhichOneof("record_type") == "history":
                rows.append({"/".join(item.nested_key) or item.key: item.value_json for item in record.history.item})
    return rows


def check_split(parts: Any, labels: list[int], ratios: tuple[float, ...], call: str) -> None:
    """Disjoint, complete, sorted, and within one sample of each class's share."""
    check(isinstance(parts, (list, tuple)) and len(parts) == len(ratios),
          f"expected {len(ratios)} lists of indices, got {type(parts).__name__} of {len(parts)}", call=call)
    every = [i for part in parts for i in part]
    check(all(isinstance(i, int) and not isinstance(i, bool) for i in every),
          "indices must be Python ints", call=call, hint="use .tolist() on index tensors")
    check(len(every) == len(set(every)), "a sample appears in two parts (or twice in one): the split leaks",
          call=call)
    check(sorted(every) == list(range(len(labels))),
          f"the parts must hold every index 0..{len(labels) - 1} exactly once", call=call)
    for j, part in enumerate(parts):
        check(list(part) == sorted(part), f"part {j} is not sorted ascending", call=call)
    labels_t = torch.tensor(labels)
    for cls in sorted(set(labels)):
        total = int((labels_t == cls).sum())
        for j, (part, ratio) in enumerate(zip(parts, ratios)):
            share = int((labels_t[list(part)] == cls).sum()) if part else 0
            check(abs(share - ratio * total) <= 1 + 1e-9,
                  f"class {cls} has {total} samples, so part {j} should hold {ratio * total:g} +- 1 of them, "
                  f"got {share}", call=call, hint="split each class separately (stratify), cut at rounded ratios")


@pytest.fixture(scope="session")
def tools() -> SimpleNamespace:
    """The helpers above, for test modules (which cannot import this conftest by name)."""
    return SimpleNamespace(assert_png=assert_png, check_split=check_split, copy_weights_by_order=copy_weights_by_order,
                           parameter_shapes=parameter_shapes, read_scalars=read_scalars,
                           read_wandb_history=read_wandb_history, seeded_=seeded_, classes=WILDLIFE_CLASSES,
                           class_to_idx=HANDOUT_CLASS_TO_IDX, toy_data=toy_data, local_toy_model=local_toy_model,
                           remote_toy_model=remote_toy_model, remote_feature_model=remote_feature_model,
                           remote_loader=remote_loader)

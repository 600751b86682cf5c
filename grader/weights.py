"""Offline stand-ins for torchvision's pretrained weights, where the sandboxed worker looks for them.

Course starter code asks for ImageNet weights: ``resnet18(weights='IMAGENET1K_V1')`` (16-824 VOC),
``alexnet(pretrained=True)`` and ``model_zoo.load_url(model_urls['alexnet'])`` (WSDDN),
``regnet_x_400mf(pretrained=True)`` (FCOS). Nothing can be downloaded where grading runs, and no
test depends on the trunk's trained values. torchvision resolves every one of these to
``$TORCH_HOME/hub/checkpoints/<file name of the weights' URL>`` and downloads (and checks the
hash) only when that file is missing, so a file with torchvision's checkpoint name and seeded
random weights of the right architecture makes such code build exactly as it would at home.

The files are made once per machine in a cache (``CVGRADE_WEIGHTS_CACHE``, default
``~/.cache/cvgrade/weights``) and hard-linked (or copied) into each worker's ``TORCH_HOME``.
A manifest lists the builders its course uses: ``[grading] offline_weights = ["resnet18"]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SEED = 0
# Checkpoint names of older torchvision releases that course code still has in its own ``model_urls``
# (16-824 F22's AlexNet.py: alexnet-owt-4df8aa71.pth; torchvision < 0.13's resnet18-5c106cde.pth).
LEGACY_NAMES = {"alexnet": ("alexnet-owt-4df8aa71.pth",), "resnet18": ("resnet18-5c106cde.pth",)}


class WeightsError(ValueError):
    """A builder name that torchvision does not know, or one without pretrained weights."""


def checkpoint_names(builder: str) -> list[str]:
    """torchvision's checkpoint file names of every pretrained weight set of ``builder`` (and ``LEGACY_NAMES``).

    Raises:
        WeightsError: for an unknown builder or one without weights, quoting it.
    """
    from torchvision.models import get_model_weights

    try:
        enum = get_model_weights(builder)
    except (ValueError, KeyError) as exc:
        raise WeightsError(f"torchvision has no model builder {builder!r} with pretrained weights") from exc
    names = sorted({weights.url.rsplit("/", 1)[1] for weights in enum} | set(LEGACY_NAMES.get(builder, ())))
    if not names:
        raise WeightsError(f"torchvision's {builder!r} has no pretrained weights")
    return names


def cache_dir() -> Path:
    return Path(os.environ.get("CVGRADE_WEIGHTS_CACHE") or Path.home() / ".cache" / "cvgrade" / "weights")


def _cached(builder: str, cache: Path) -> Path:
    """The seeded state dict of ``builder`` in the cache, made on first use (atomically)."""
    import torch
    from torchvision.models import get_model

    path = cache / f"{builder}-seed{SEED}.pth"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(SEED)
        weights = get_model(builder, weights=None).state_dict()
    finally:
        torch.random.set_rng_state(state)
    handle, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
    os.close(handle)
    torch.save(weights, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def stand_in_state_dict(builder: str, cache: Path | None = None) -> dict:
    """The state dict the stand-in checkpoints of ``builder`` hold (what ``weights=...`` loads in grading).

    Raises:
        WeightsError: for a builder without torchvision weights.
    """
    import torch

    checkpoint_names(builder)  # an unknown builder fails with its name
    path = _cached(builder, Path(cache) if cache is not None else cache_dir())
    return torch.load(path, map_location="cpu", weights_only=True)


def seed_torch_home(torch_home: Path | str, builders: list[str] | tuple[str, ...],
                    cache: Path | None = None) -> list[Path]:
    """Put every checkpoint file of ``builders`` under ``torch_home/hub/checkpoints``.

    Folders are made readable by the worker's unprivileged user; ``torch_home`` itself is left
    writable by it (it is the worker's home).

    Returns:
        The checkpoint files, one per weight set of each builder.

    Raises:
        WeightsError: for a builder without torchvision weights.
    """
    torch_home = Path(torch_home)
    folder = torch_home / "hub" / "checkpoints"
    cache = Path(cache) if cache is not None else cache_dir()
    made = []
    for builder in builders:
        names = checkpoint_names(builder)
        source = _cached(builder, cache)
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / name
            if not target.is_file():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
                    os.chmod(target, 0o644)
            made.append(target)
    if made:
        for path in (torch_home, torch_home / "hub", folder):
            os.chmod(path, 0o777 if path == torch_home else 0o755)
    return made

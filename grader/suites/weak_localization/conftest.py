"""Shared pieces of the weak_localization suite (public and hidden tests; nothing here needs the reference).

* ``alexnet_weights``: the course code builds AlexNet with ImageNet weights
  (``pretrained=True``: torchvision or ``model_zoo.load_url`` read them from torch's
  cache). Nothing can be downloaded where grading runs, so seeded stand-in weights
  are written under torchvision's file names in the cache the student's process
  uses (its ``TORCH_HOME``), and the test compares against them.
* ``wl_data``: writes a small synthetic VOC2007 folder with selective-search
  ``.mat`` files where the student's code can read it.
* ``wl``: comparison helpers whose failures explain themselves.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from grader.compare import GradingFailure, check, describe

ALEXNET_CHECKPOINTS = ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth")
VOC_CLASSES = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
               'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor']


def seeded_alexnet_state(seed: int = 824) -> dict[str, torch.Tensor]:
    """Stand-in "ImageNet" AlexNet weights: torchvision's names and shapes, deterministic values."""
    from torchvision import models

    template = models.alexnet(weights=None).state_dict()
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator) * 0.02 for name, value in template.items()}


@pytest.fixture
def alexnet_weights(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """Write stand-in AlexNet weights where ``pretrained=True`` finds them; return them (a state dict)."""
    from grader.plugin import STATE, sandbox_enabled

    state = seeded_alexnet_state()
    session = request.config.stash.get(STATE, None)
    if session is not None and sandbox_enabled(request.config):
        home = Path(session.scratch()) / "work-weak_localization"  # the worker's TORCH_HOME and cwd
    else:  # --no-sandbox: the student's code runs in this process
        home = tmp_path / "torch_home"
        monkeypatch.setenv("TORCH_HOME", str(home))
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (home, home / "hub", folder):
        os.chmod(path, 0o777 if path == home else 0o755)
    for name in ALEXNET_CHECKPOINTS:
        if not (folder / name).is_file():
            torch.save(state, folder / name)
            os.chmod(folder / name, 0o644)
    return state


@pytest.fixture
def wl_data(sandbox_tmp_path: Path):
    """``make(splits, seed=..., **options)`` writes ``VOCdevkit/VOC2007`` into a folder the student's code can read."""
    from grader.data.weak_localization import make_weak_localization_data

    def make(splits: dict[str, int], seed: int = 0, **options: Any):
        root = sandbox_tmp_path / f"data{seed}"
        data = make_weak_localization_data(root, splits, seed=seed, **options)
        for folder, _dirs, files in os.walk(root):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        return data

    return make


def _tensor(value: Any, what: str, call: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        out = value.detach()
    elif isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, str):
        try:
            out = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise GradingFailure(f"Called {call}\n{what}: expected a tensor, got {describe(value)}") from exc
    else:
        raise GradingFailure(f"Called {call}\n{what}: expected a tensor, got {describe(value)}")
    return out.to(dtype) if dtype is not None else out


def sorted_rows(rows: torch.Tensor) -> torch.Tensor:
    """The rows of a [K, D] tensor in lexicographic order (to compare sets of boxes)."""
    if rows.shape[0] == 0:
        return rows
    keys = np.lexsort(tuple(rows.to(torch.float64).numpy().T[::-1]))
    return rows[torch.from_numpy(keys.copy())]


def same_box_sets(got: torch.Tensor, expected: torch.Tensor, *, atol: float, call: str, what: str, hint: str) -> None:
    """``got`` and ``expected`` hold the same boxes, in any order, within ``atol``."""
    check(tuple(got.shape) == tuple(expected.shape),
          f"{what}: expected shape {list(expected.shape)}, got {list(got.shape)}", call=call, hint=hint)
    a, b = sorted_rows(got.to(torch.float64)), sorted_rows(expected.to(torch.float64))
    if a.numel() and not torch.allclose(a, b, rtol=0, atol=atol):
        bad = int((~torch.isclose(a, b, rtol=0, atol=atol)).any(1).nonzero()[0])
        raise GradingFailure(f"Called {call}\n{what}: the boxes differ (compared as sets, in sorted order); "
                             f"e.g. got {[round(v, 4) for v in a[bad].tolist()]}, expected "
                             f"{[round(v, 4) for v in b[bad].tolist()]} (tolerance {atol:.3g})\nHint: {hint}")


def sort_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> tuple:
    """Detections in a canonical order: class, then score (descending), then box."""
    if boxes.shape[0] == 0:
        return boxes, scores, labels
    columns = tuple(boxes.to(torch.float64).numpy().T[::-1]) + (-scores.to(torch.float64).numpy(), labels.numpy())
    index = torch.from_numpy(np.lexsort(columns).copy())
    return boxes[index], scores[index], labels[index]


def check_aps(got: Any, expected_aps: np.ndarray, call: str, *, atol: float = 1e-6) -> None:
    """``got`` = (class-wise APs, mAP). A class without ground truth may be NaN (as specified) or 0,
    and the mean may then be over the classes with ground truth (as specified) or over all classes."""
    check(isinstance(got, (tuple, list)) and len(got) == 2,
          f"expected a tuple (class-wise APs, mAP), got {describe(got)}", call=call)
    aps = _tensor(got[0], "class-wise APs", call, torch.float64).reshape(-1)
    check(aps.numel() == len(expected_aps), f"expected {len(expected_aps)} class-wise APs, got {aps.numel()}",
          call=call)
    try:
        mean_ap = float(got[1])
    except (TypeError, ValueError):
        raise GradingFailure(f"Called {call}\nmAP: expected a number, got {describe(got[1])}") from None
    expected = torch.as_tensor(expected_aps, dtype=torch.float64)
    present = ~torch.isnan(expected)
    for cls in range(len(expected_aps)):
        value = float(aps[cls])
        if bool(present[cls]):
            check(math.isclose(value, float(expected[cls]), abs_tol=atol),
                  f"AP of class {cls}: expected {float(expected[cls]):.6g}, got {value:.6g}", call=call,
                  hint="a detection is a true positive when its best-overlapping ground-truth box of its class "
                       "has IoU >= 0.5 and was not matched before; AP is the area under the interpolated "
                       "precision-recall curve")
        else:
            check(math.isnan(value) or value == 0.0,
                  f"AP of class {cls} (no ground-truth box of that class): expected NaN, got {value:.6g}", call=call)
    readings = [float(expected[present].mean()) if bool(present.any()) else 0.0,
                float(torch.nan_to_num(expected, nan=0.0).mean())]
    check(any(math.isclose(mean_ap, r, abs_tol=atol) for r in readings),
          f"mAP: expected {readings[0]:.6g} (mean over the classes that have ground truth), got {mean_ap:.6g}",
          call=call)


def xavier_std(shape: tuple[int, ...]) -> float:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return math.sqrt(2.0 / (shape[1] * receptive + shape[0] * receptive))


@pytest.fixture
def wl() -> SimpleNamespace:
    """Helpers: ``tensor``, ``sorted_rows``, ``same_box_sets``, ``sort_detections``, ``check_aps``, ``xavier_std``,
    ``eval_mode(model)`` / ``train_mode(model)``.

    ``model.eval()`` returns the model itself, which comes back as a second proxy with the same
    object id; when that proxy is garbage-collected the engine releases the id and the first proxy
    goes stale ("unknown object id"). ``eval_mode`` keeps the returned proxy alive until the end of
    the test.
    """
    keep: list = []

    def eval_mode(model: Any) -> Any:
        keep.append(model.eval())
        return model

    def train_mode(model: Any) -> Any:
        keep.append(model.train())
        return model

    return SimpleNamespace(tensor=_tensor, sorted_rows=sorted_rows, same_box_sets=same_box_sets,
                           sort_detections=sort_detections, check_aps=check_aps, xavier_std=xavier_std,
                           classes=list(VOC_CLASSES), eval_mode=eval_mode, train_mode=train_mode, _keep=keep)

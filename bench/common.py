"""Shared pieces of the benchmarks: timing, the machine's description, tables and JSON results."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parent.parent


def reference_module(assignment: str, name: str):
    """A module of ``reference/<assignment>`` (its folder goes first on sys.path: flat imports)."""
    import importlib

    folder = str(REPO / "reference" / assignment)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def side_by_side(fns: dict[str, Callable[[], object]], repeats: int = 7, budget: float = 20.0) -> dict[str, float]:
    """Best wall time of each function, the calls interleaved (``a b a b ...``) after one warm-up each.

    Side by side, a burst of noise on a shared machine hits both sides alike instead of one
    function's whole series. ``repeats`` shrinks so that the rounds fit ``budget`` seconds.
    """
    first = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - start
    repeats = max(1, min(repeats, int(budget / max(sum(first.values()), 1e-9))))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, budget: float = 20.0) -> float:
    """Best (shortest) wall time of ``fn()`` over ``repeats`` calls (fewer when one call is slow: at most
    ``budget`` seconds). On a shared machine noise only adds time, so the best call is the steadiest figure."""
    for _ in range(warmup):
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
    if warmup and first * repeats > budget:
        repeats = max(1, int(budget / max(first, 1e-9)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples)


def machine() -> dict:
    """What the numbers were measured on (load averages before the run: this machine is shared)."""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table of ``rows`` (dicts) with ``columns``."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value)

    widths = [max(len(c), *(len(cell(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell(r.get(c, "")).rjust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def save(name: str, payload: dict, out: str | Path | None = None) -> Path:
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path

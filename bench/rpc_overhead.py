"""How much the sandbox costs: round trips per call, per MB, and a whole assignment's grading time.

    python bench/rpc_overhead.py [--assignment fcos_detection] [--out bench/results/rpc_overhead.json]

Compares a direct call, the in-process loopback (``--no-sandbox``: same wire
format, no process boundary) and the sandboxed worker, on the same function.
Prints a table and writes the figures as JSON. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from grader import api
from grader.sandbox.client import LoopbackConnection
from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as

MODULE = "def noop():\n    return None\n\ndef echo(x):\n    return x\n"


def _median_seconds(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def call_overheads(repeats: int = 300) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="cvgrade-bench-"))
    (folder / "bench_mod.py").write_text(MODULE)
    folder.chmod(0o755)
    (folder / "bench_mod.py").chmod(0o644)
    namespace: dict = {}
    exec(MODULE, namespace)  # noqa: S102 - the direct baseline
    loopback = LoopbackConnection(str(folder), ["bench_mod"])
    settings = SandboxSettings(protected=default_protected(), run_as=default_run_as())
    process = ProcessConnection(str(folder), ["bench_mod"], settings)
    results: dict = {"per_call_us": {}, "per_mb_ms": {}}
    started = time.perf_counter()
    process.import_module("bench_mod")
    results["worker_start_s"] = time.perf_counter() - started
    for name, conn in (("loopback", loopback), ("sandbox", process)):
        module = conn.import_module("bench_mod")
        results["per_call_us"][name] = 1e6 * _median_seconds(lambda m=module: m.noop(), repeats)
    results["per_call_us"]["direct"] = 1e6 * _median_seconds(namespace["noop"], repeats)
    for megabytes in (1, 10, 100):
        tensor = torch.randn(megabytes * 2**20 // 4)
        row = {}
        for name, conn in (("loopback", loopback), ("sandbox", process)):
            module = conn.import_module("bench_mod")
            seconds = _median_seconds(lambda m=module, t=tensor: m.echo(t), 5 if megabytes < 100 else 3)
            row[name] = 1e3 * seconds / (2 * megabytes)  # the tensor travels both ways
        results["per_mb_ms"][f"{megabytes} MB"] = row
    process.close()
    return results


def grading_time(assignment: str, repeats: int = 2) -> dict:
    times: dict[str, list[float]] = {"sandbox": [], "no-sandbox": []}
    out = Path(tempfile.mkdtemp(prefix="cvgrade-bench-")) / "results.json"
    for _ in range(repeats):
        for mode in ("sandbox", "no-sandbox"):
            start = time.perf_counter()
            result = api.grade(assignment, "reference", out, sandbox=(mode == "sandbox"))
            times[mode].append(time.perf_counter() - start)
            assert result.score == result.max_score, f"{mode}: the reference did not score full"
    best = {mode: min(values) for mode, values in times.items()}
    return {"assignment": assignment, "seconds": best, "ratio": best["sandbox"] / best["no-sandbox"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assignment", default="fcos_detection")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "rpc_overhead.json")
    parser.add_argument("--skip-grading", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                         f"{torch.get_num_threads()} torch thread(s)",
              "calls": call_overheads()}
    if not args.skip_grading:
        report["grading"] = grading_time(args.assignment)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    calls = report["calls"]
    print(f"worker start: {calls['worker_start_s']:.2f} s")
    print(f"{'per call':<12}" + "".join(f"{k:>12}" for k in calls["per_call_us"]))
    print(f"{'µs':<12}" + "".join(f"{v:>12.1f}" for v in calls["per_call_us"].values()))
    print(f"{'ms per MB':<12}{'loopback':>12}{'sandbox':>12}")
    for size, row in calls["per_mb_ms"].items():
        print(f"{size:<12}{row['loopback']:>12.2f}{row['sandbox']:>12.2f}")
    if "grading" in report:
        grading = report["grading"]
        print(f"grading {grading['assignment']} (reference): sandbox {grading['seconds']['sandbox']:.1f} s, "
              f"in-process {grading['seconds']['no-sandbox']:.1f} s, ratio {grading['ratio']:.2f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

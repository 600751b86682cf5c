"""What grading one submission costs: wall time and peak memory of the real ``grade`` command.

    python -m bench.grading_budget [--quick] [--assignments a,b] [--cores 1,2] [--out bench/results/grading_budget.json]

Grades each assignment's reference with ``python -m grader.cli grade <a> reference``
pinned to one core (``taskset -c 0``) and to two (``taskset -c 0,1``), and samples the
process tree every 0.1 s: peak RSS (VmHWM) of the student's worker, of the reference
worker (speed checks) and of the grading process itself (pytest and anything else),
plus ``wait4``'s resource usage (the largest process of the tree that was waited for). Gradescope's
defaults for comparison: 10 minutes, 768 MB, 0.5 vCPU (docs/performance.md).
``--quick`` measures ``grader.cli list`` instead of a grading (exercises the harness).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, machine, save, table

ASSIGNMENTS = ("byol_pretraining", "fcos_detection", "semantic_segmentation", "voc_classification",
               "weak_localization", "wildlife_classification")
GRADESCOPE = {"timeout_s": 600, "memory_mb": 768, "vcpu": 0.5}


def _children(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found


def _kind(pid: int) -> str:
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if "grader.sandbox.worker" in cmdline or "jail.py" in cmdline:
        return "reference_worker" if "/reference-" in cmdline else "student_worker"
    return "grader"


def _hwm_mb(pid: int) -> float:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure(command: list[str], cores: str) -> dict:
    """Run ``command`` under ``taskset -c cores``; wall time, peak RSS per kind of process, exit status."""
    start = time.perf_counter()
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen(["taskset", "-c", cores, *command], cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
    peaks: dict[str, float] = {"grader": 0.0, "student_worker": 0.0, "reference_worker": 0.0}
    kinds: dict[int, str] = {}
    usage = None
    while True:
        waited, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if waited:
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        for pid in [proc.pid, *_children(proc.pid)]:
            kind = kinds.get(pid) or _kind(pid)
            kinds[pid] = kind
            if kind in peaks:
                peaks[kind] = max(peaks[kind], _hwm_mb(pid))
        time.sleep(0.1)
    wall = time.perf_counter() - start
    errors.seek(0)
    stderr = errors.read().decode(errors="replace")
    errors.close()
    # wait4's usage: the largest of this child and the descendants it waited for (ru_maxrss, kB).
    return {"wall_s": wall, "exit": proc.returncode, "peak_rss_mb": peaks,
            "rusage_children_maxrss_mb": usage.ru_maxrss / 1024, "stderr_tail": stderr[-400:]}


def run(assignments: list[str], cores: list[str], quick: bool = False) -> dict:
    rows = []
    for assignment in assignments:
        for core in cores:
            with tempfile.TemporaryDirectory(prefix="cvgrade-budget-") as tmp:
                out = Path(tmp) / "results.json"
                if quick:
                    command = [sys.executable, "-m", "grader.cli", "list"]
                else:
                    command = [sys.executable, "-m", "grader.cli", "grade", assignment, "reference", "--out", str(out),
                               "--quiet"]
                load = os.getloadavg()[0]
                result = measure(command, core)
                score = max_score = None
                if out.is_file():
                    data = json.loads(out.read_text())
                    score, max_score = data.get("score"), data.get("extra_data", {}).get("max_score")
            peaks = result["peak_rss_mb"]
            rows.append({"assignment": assignment, "cores": core, "load_before": load, "wall_s": result["wall_s"],
                         "student_worker_mb": peaks["student_worker"], "reference_worker_mb": peaks["reference_worker"],
                         "grader_mb": peaks["grader"], "largest_process_mb": result["rusage_children_maxrss_mb"],
                         "score": score, "max_score": max_score, "exit": result["exit"],
                         "under_60s": result["wall_s"] < 60,
                         "fits_768MB": max(peaks.values()) + 0 < GRADESCOPE["memory_mb"]
                         and sum(peaks.values()) < GRADESCOPE["memory_mb"],
                         "stderr_tail": result["stderr_tail"] if result["exit"] else ""})
    return {"rows": rows, "gradescope_defaults": GRADESCOPE}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time `grader.cli list` on one core (smoke run)")
    parser.add_argument("--assignments", default=",".join(ASSIGNMENTS))
    parser.add_argument("--cores", default="0;0,1", help="taskset core lists separated by ';'")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/grading_budget.json)")
    args = parser.parse_args(argv)
    assignments = ["list"] if args.quick else args.assignments.split(",")
    cores = ["0"] if args.quick else args.cores.split(";")
    before = machine()
    result = {"machine_before": before, **run(assignments, cores, args.quick), "machine": machine()}
    print(f"grading budget: `grader.cli grade <a> reference` (load {before['load_average'][0]:.2f})")
    print(table(result["rows"], ["assignment", "cores", "load_before", "wall_s", "student_worker_mb",
                                 "reference_worker_mb", "grader_mb", "largest_process_mb", "score", "max_score",
                                 "under_60s", "fits_768MB"]))
    if not args.quick or args.out:
        print("wrote", save("grading_budget", result, args.out))
    return result


if __name__ == "__main__":
    main()

"""Grading each reference inside Gradescope-sized containers: score, wall time, peak memory.

    python -m bench.containers [--sizes 768MB/0.5,1.5GB/1,3GB/2] [--assignments a,b] [--out JSON]

Each size is a cgroup v1 child of this process's own group (``grader.container.SizedContainer``:
a memory limit with no swap and a CFS CPU quota), in which ``cvgrade grade <assignment>
reference`` runs as Gradescope's ``run_autograder`` would. A row gives the score against the
assignment's points, the wall time, the group's peak memory (page cache included, as the
container's limit counts it: reclaimable, so a peak at the limit alone is no failure), the peak of
its anonymous memory (sampled every 0.1 s: what cannot be reclaimed without swap), how many processes the out-of-memory killer took, and whether the
results name the container as the cause when points were lost. Needs root.

Before each grading the machine's page cache is dropped (``/proc/sys/vm/drop_caches``; ``--keep-caches``
skips it): a page is charged to the group that first reads it, so libraries cached by an earlier run
would otherwise not count against the limit, where a fresh container pays for every page of torch it maps.
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

DEFAULT_SIZES = "768MB/0.5,1.5GB/1,3GB/2"


def parse_sizes(text: str) -> list[tuple[str, int, float]]:
    """``"768MB/0.5,1.5GB/1"`` -> ``[("768MB/0.5", 805306368, 0.5), ...]``."""
    from grader.manifest import parse_container_size

    sizes = []
    for part in text.split(","):
        memory, _, cpus = part.strip().partition("/")
        if not cpus:
            raise SystemExit(f"a size is MEMORY/CPUS, e.g. 1.5GB/1; got {part!r}")
        sizes.append((part.strip(), parse_container_size(memory, where="--sizes"), float(cpus)))
    return sizes


def drop_page_cache() -> None:
    """Write back and drop the machine's clean page cache (root), so that the next run reads every file anew."""
    subprocess.run(["sync"], check=False)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def grade_in_container(assignment: str, memory: int, cpus: float, timeout: float = 1800,
                       drop_caches: bool = True) -> dict:
    """Grade ``assignment``'s reference in a container of ``memory`` bytes and ``cpus`` CPUs."""
    from grader.container import SizedContainer

    if drop_caches:
        drop_page_cache()

    with tempfile.TemporaryDirectory(prefix="cvgrade-bench-containers-") as folder:
        out = Path(folder) / "results.json"
        command = [sys.executable, "-m", "grader.cli", "grade", assignment, "reference", "--out", str(out), "-q"]
        with SizedContainer(memory, cpus) as box:
            start = time.perf_counter()
            proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=box.enter)
            anonymous_peak = 0
            while proc.poll() is None and time.perf_counter() - start < timeout:
                anonymous_peak = max(anonymous_peak, box.anonymous_memory() or 0)
                time.sleep(0.1)
            if proc.poll() is None:
                proc.kill()
            returncode = proc.wait()
            wall = time.perf_counter() - start
            peak, kills = box.peak_memory(), box.oom_kills()
        try:
            results = json.loads(out.read_text())
        except (OSError, ValueError):
            results = {}
    tests = results.get("tests", [])
    score = float(results.get("score", 0.0))
    points = float(results.get("extra_data", {}).get("max_score", 0.0) or sum(t.get("max_score", 0) for t in tests))
    texts = [str(results.get("output", ""))] + [str(t.get("output", "")) for t in tests if t.get("score", 0) <
                                                 t.get("max_score", 0)]
    named = any("grading machine ran out of memory" in t or "This grading machine has" in t for t in texts)
    blamed = any("did it call sys.exit" in t or "Your code's process was killed" in t
                 or ("ran past the time limit" in t and "not about your code" not in t) for t in texts)
    lost = [f"{t.get('name', '?')}: {str(t.get('output', '')).strip().splitlines()[:1]}" for t in tests
            if float(t.get("score", 0)) < float(t.get("max_score", 0))]
    return {"lost": lost, "score": score, "points": points, "wall_s": wall, "peak_mb": (peak or 0) / 2**20,
            "anonymous_peak_mb": anonymous_peak / 2**20, "oom_kills": kills,
            "returncode": returncode, "container_named": named, "student_blamed": blamed}


def main(argv: list[str] | None = None) -> int:
    from grader import manifest as manifests

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"MEMORY/CPUS,... (default {DEFAULT_SIZES})")
    parser.add_argument("--assignments", default="", help="comma-separated (default: all)")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/containers.json)")
    parser.add_argument("--keep-caches", action="store_true",
                        help="do not drop the page cache before each grading (pages cached earlier go uncounted)")
    args = parser.parse_args(argv)
    names = [a for a in args.assignments.split(",") if a] or sorted(manifests.discover())
    rows = []
    for assignment in names:
        for label, memory, cpus in parse_sizes(args.sizes):
            load = os.getloadavg()[0]
            row = {"assignment": assignment, "container": label,
                   **grade_in_container(assignment, memory, cpus, drop_caches=not args.keep_caches),
                   "load_before": round(load, 2), "page_cache_dropped": not args.keep_caches}
            row["result"] = f"{row['score']:g} / {row['points']:g}"
            rows.append(row)
            print(f"{assignment} in {label}: {row['result']} in {row['wall_s']:.0f} s, peak {row['peak_mb']:.0f} MB "
                  f"(anonymous {row['anonymous_peak_mb']:.0f} MB), "
                  f"{row['oom_kills']} OOM kills, container named: {row['container_named']}, load before {load:.1f}", flush=True)
    columns = ["assignment", "container", "result", "wall_s", "peak_mb", "anonymous_peak_mb", "oom_kills", "container_named",
               "student_blamed", "load_before"]
    print(table(rows, columns))
    path = save("containers", {"rows": rows, "machine_note": machine()}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Regrading a whole export: generated submissions through ``cvgrade batch``, N workers against 1.

    python -m bench.batch [--quick] [--submissions 200] [--workers 1,2] [--out bench/results/batch.json]

The export is generated in Gradescope's layout (``submission_<id>/`` folders and
``submission_metadata.yml``) from the fcos_detection reference, in a fixed mix:

* correct: the reference's files;
* buggy: the typical bugs of ``tests/mutants/fcos_detection`` that the nms / box_iou tests catch;
* crashing: ``detection_utils.py`` kills the worker at import (``os._exit``);
* raising: it raises at import; broken: a syntax error;
* hanging: ``nms`` never returns.

So that 200 gradings fit in minutes, the batch grades a *reduced suite*: fcos_detection's nms and
box_iou tests (public and hidden, the same files), served from a temporary project root
(``CVGRADE_ROOT``) whose ``reference/`` and ``student_template/`` link to this repository's and whose
test files are copies of its own.
Its manifest has the real one's settings except the points (those of the kept tests) and a 5 s call
timeout, so that a hanging submission costs seconds per test, not a minute. Everything else (the pytest
process per submission, the sandboxed worker, the fallback for crashes, the reports) is the real
``cvgrade batch``.

Correctness: each distinct variant is first graded alone with ``grader.api.grade``; every batch must then
give every submission exactly its variant's score (correct ones full, crashing and broken ones zero, the
buggy ones in between).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import REPO, machine, save, table

ASSIGNMENT = "fcos_detection"
SUITE_FILES = ("conftest.py", "public/test_nms_public.py", "hidden/test_nms_hidden.py")
STUDENT_FILE = "detection_utils.py"
CALL_TIMEOUT = 5
# Mutants caught by the kept tests (their ``select`` names nms or box_iou and no speed check).
BUGGY = ("iou_no_clamp", "iou_union_wrong", "nms_ge_threshold", "nms_unstable_sort", "nms_ascending")
PROFILE = "extended"  # the kept tests are the extended profile's (box IoU and NMS)
HANG_FIND = "    return _greedy_nms(boxes, scores, iou_threshold)\n"


def reduced_root(root: Path) -> Path:
    """A project root with the real trees linked in and fcos_detection's suite cut to its nms tests."""
    root.mkdir(parents=True, exist_ok=True)
    for tree in ("reference", "student_template"):
        (root / tree).symlink_to(REPO / tree)
    suites = root / "grader" / "suites"
    suite = suites / ASSIGNMENT
    (suite / "public").mkdir(parents=True)
    (suite / "hidden").mkdir()
    # Copies, not links: a test finds its manifest from its own resolved path.
    shutil.copy(REPO / "grader" / "suites" / "conftest.py", suites / "conftest.py")
    for name in SUITE_FILES:
        shutil.copy(REPO / "grader" / "suites" / ASSIGNMENT / name, suite / name)
    return root


def write_manifest(root: Path, points: float) -> None:
    """The suite's manifest with ``points`` for the kept tests, graded in their profile by default."""
    text = (REPO / "grader" / "suites" / ASSIGNMENT / "assignment.toml").read_text()
    lines = []
    table_name = ""
    for line in text.splitlines():
        if line.startswith("["):
            table_name = line.strip("[] ")
        if line.startswith("points =") and table_name in ("", f"profiles.{PROFILE}"):
            line = f"points = {points:g}"
        elif line.startswith("default_profile ="):
            line = f'default_profile = "{PROFILE}"'
        elif line.startswith("call_timeout ="):
            line = f"call_timeout = {CALL_TIMEOUT}"
        elif line.startswith("title =") and not table_name:
            line = 'title = "FCOS detection: nms and box_iou tests only (bench.batch)"'
        lines.append(line)
    (root / "grader" / "suites" / ASSIGNMENT / "assignment.toml").write_text("\n".join(lines) + "\n")


def variants() -> dict[str, str]:
    """``detection_utils.py`` of each kind of submission."""
    from grader import mutation

    source = (REPO / "reference" / ASSIGNMENT / STUDENT_FILE).read_text()
    mutants = {m.name: m for m in mutation.load(REPO / "tests" / "mutants" / ASSIGNMENT / "mutants.py")}
    found = {}
    for name in BUGGY:
        mutant = mutants[name]
        if mutant.file != STUDENT_FILE or source.count(mutant.find) != 1:
            raise ValueError(f"mutant {name!r} no longer applies to {STUDENT_FILE}")
        found[f"buggy:{name}"] = source.replace(mutant.find, mutant.replace)
    if source.count(HANG_FIND) != 1:
        raise ValueError(f"{STUDENT_FILE}: the nms return line to hang on is gone")
    return {
        "correct": source,
        **found,
        "crash": "import os\n\nos._exit(1)\n",
        "raise": source + "\nraise RuntimeError('left-over debugging')\n",
        "syntax": source.replace("def nms(", "def nms(:", 1),
        "hang": source.replace(HANG_FIND, "    while True:\n        pass\n"),
    }


def mix(count: int, kinds: list[str]) -> list[str]:
    """The kind of each of ``count`` submissions: half correct, a third buggy (mutants in turn), the rest
    crashing, raising, broken and (2 %) hanging, interleaved so every worker sees every kind."""
    buggy = [k for k in kinds if k.startswith("buggy:")]
    hang = max(1, count // 50)
    rest = count - count // 2 - count // 3 - hang
    plan = (["correct"] * (count // 2) + [buggy[i % len(buggy)] for i in range(count // 3)]
            + [("crash", "raise", "syntax")[i % 3] for i in range(rest)] + ["hang"] * hang)
    random.Random(0).shuffle(plan)
    return plan


def make_export(export: Path, plan: list[str], sources: dict[str, str]) -> None:
    other_files = ["one_stage_detector.py"]
    meta = []
    for index, kind in enumerate(plan):
        folder = export / f"submission_{1000 + index}"
        folder.mkdir(parents=True)
        for name in other_files:
            shutil.copy(REPO / "reference" / ASSIGNMENT / name, folder / name)
        (folder / STUDENT_FILE).write_text(sources[kind])
        meta.append(f"submission_{1000 + index}:\n  :submitters:\n  - :name: Student {index}\n"
                    f"    :sid: '{index}'\n    :email: s{index}@u.edu\n"
                    f"  :created_at: 2026-11-20 10:00:00.000000000 -05:00\n")
    (export / "submission_metadata.yml").write_text("".join(meta))


def reduced_project(work: Path) -> tuple[Path, float]:
    """Build the reduced project root under ``work``; return it and its points.

    The points are those the reference earns on the kept tests, so the reference is graded once in a
    probe root first (manifests are cached per folder, so the returned root is a second folder).
    ``CVGRADE_ROOT`` is left as it was: point it at the returned root to use it.
    """
    from grader import api

    previous = os.environ.get("CVGRADE_ROOT")
    os.environ["CVGRADE_ROOT"] = str(reduced_root(work / "probe"))
    try:
        write_manifest(work / "probe", 1)
        reference = api.grade(ASSIGNMENT, "reference", work / "reference.json")
    finally:
        if previous is None:
            os.environ.pop("CVGRADE_ROOT", None)
        else:
            os.environ["CVGRADE_ROOT"] = previous
    points = sum(t["max_score"] for t in reference.results["tests"])
    root = reduced_root(work / "root")
    write_manifest(root, points)
    return root, points


def run(count: int, workers: list[int], work: Path) -> dict:
    from grader import api, batch

    root, points = reduced_project(work)
    os.environ["CVGRADE_ROOT"] = str(root)

    sources = variants()
    expected, alone = {}, {}
    for kind, text in sources.items():  # each variant alone: the oracle for the batch
        folder = work / "alone" / kind.replace(":", "_")
        folder.mkdir(parents=True)
        shutil.copy(REPO / "reference" / ASSIGNMENT / "one_stage_detector.py", folder)
        (folder / STUDENT_FILE).write_text(text)
        started = time.perf_counter()
        result = api.grade(ASSIGNMENT, folder, folder / "results.json")
        alone[kind] = time.perf_counter() - started
        expected[kind] = float(result.results["score"])
    if expected["correct"] != points or expected["crash"] or expected["syntax"]:
        raise RuntimeError(f"unexpected scores of the variants graded alone: {expected} (points {points})")

    plan = mix(count, list(sources))
    export = work / "export"
    make_export(export, plan, sources)
    rows = []
    for n in workers:
        out = work / f"batch_{n}"
        started = time.perf_counter()
        result = batch.run_batch(ASSIGNMENT, export, out / "grades.csv", workers=n)
        wall = time.perf_counter() - started
        wrong = {f"submission_{1000 + i}": (kind, result.scores[f"submission_{1000 + i}"], expected[kind])
                 for i, kind in enumerate(plan) if result.scores[f"submission_{1000 + i}"] != expected[kind]}
        rows.append({"workers": n, "submissions": count, "wall_s": wall, "per_submission_s": wall / count,
                     "graded": result.graded, "wrong_scores": len(wrong), "load_after": os.getloadavg()[0]})
        if wrong:
            rows[-1]["wrong"] = dict(list(wrong.items())[:10])
    base = next((r["wall_s"] for r in rows if r["workers"] == 1), None)
    for row in rows:
        row["speedup_vs_1"] = base / row["wall_s"] if base else None
    return {"points": points, "variant_scores": expected, "variant_alone_s": alone,
            "mix": {k: plan.count(k) for k in sources}, "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 submissions, 2 workers, nothing written")
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, each a full batch")
    parser.add_argument("--keep", default=None, help="keep the generated export and results in this folder")
    parser.add_argument("--out", default=None, help="JSON path (default bench/results/batch.json)")
    args = parser.parse_args(argv)
    count = 12 if args.quick else args.submissions
    workers = [2] if args.quick else [int(w) for w in args.workers.split(",")]
    before = machine()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cvgrade-bench-batch-"))
    previous = os.environ.get("CVGRADE_ROOT")
    try:
        result = {"machine_before": before, **run(count, workers, work), "machine": machine()}
    finally:
        if previous is None:
            os.environ.pop("CVGRADE_ROOT", None)
        else:
            os.environ["CVGRADE_ROOT"] = previous
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"batch regrade: {count} submissions of fcos_detection's nms tests ({result['points']:g} points), "
          f"load {before['load_average'][0]:.2f} before")
    print("mix:", ", ".join(f"{k} {v}" for k, v in result["mix"].items()))
    print(table(result["rows"], ["workers", "submissions", "wall_s", "per_submission_s", "speedup_vs_1",
                                 "wrong_scores", "load_after"]))
    if not args.quick or args.out:
        print("wrote", save("batch", result, args.out))
    return result


if __name__ == "__main__":
    main()

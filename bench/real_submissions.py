"""Grade real course submissions (public checkouts) unchanged and tabulate every lost point.

    python -m bench.real_submissions fcos_detection CHECKOUT [CHECKOUT ...] --subdir detection \\
        [--out docs/real-fcos.md] [--json results.json]

A CHECKOUT is a folder, or a git directory without a work tree (what the search tool's ``fetch``
brings: ``/work/.mirror/<owner>+<name>/repo``), whose ``--subdir`` holds the student's files as the
course laid them out. Each is copied to a scratch folder (a git directory is read with
``git archive``), graded by ``grader.api.grade`` with the whole suite, and listed with its score
and each test that lost points, with the first line of what the grader said. Whether a lost
point is the student's bug or the grader's is for a person to decide: the table has a column for
it. Nothing of the checkouts is written inside the project unless ``--out`` points there (the
table holds test names and the grader's messages, not their code).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Graded:
    """One checkout's grading."""

    label: str
    score: float
    max_score: float
    lost: list[tuple[str, float, str]] = field(default_factory=list)  # (test, points lost, first line)
    output: str = ""


def _label(checkout: Path) -> str:
    name = checkout.parent.name if checkout.name == "repo" else checkout.name
    commit = ""
    if (checkout / "HEAD").is_file() or (checkout / ".git").exists():
        result = subprocess.run(["git", f"--git-dir={checkout if (checkout / 'HEAD').is_file() else checkout / '.git'}",
                                 "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        commit = result.stdout.strip()
    return f"{name.replace('+', '/')}" + (f" @ {commit}" if commit else "")


def materialize(checkout: Path, subdir: str, into: Path) -> Path:
    """The checkout's ``subdir`` as a plain folder under ``into`` (from ``git archive`` for a bare git dir)."""
    into.mkdir(parents=True, exist_ok=True)
    if (checkout / "HEAD").is_file() and not (checkout / subdir).exists():
        archive = subprocess.run(["git", f"--git-dir={checkout}", "archive", "--format=tar", "HEAD", subdir],
                                 capture_output=True, timeout=120, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(into, filter="data")
        return into / subdir
    source = checkout / subdir
    if not source.is_dir():
        raise FileNotFoundError(f"{checkout}: no folder {subdir!r}")
    import shutil

    shutil.copytree(source, into / subdir)
    return into / subdir


def grade_checkout(assignment: str, checkout: Path, subdir: str, scratch: Path) -> Graded:
    from grader import api

    folder = materialize(checkout, subdir, scratch)
    result = api.grade(assignment, folder, scratch / "results.json")
    lost = []
    for test in result.tests:
        missing = float(test.get("max_score", 0.0)) - float(test.get("score", 0.0))
        if missing > 1e-9:
            first = next((line.strip() for line in str(test.get("output", "")).splitlines() if line.strip()), "")
            lost.append((str(test.get("name", "")), missing, first[:160]))
    return Graded(_label(checkout), result.score, result.max_score, lost, str(result.results.get("output", "")))


def table(rows: list[Graded]) -> str:
    lines = ["| submission | score | lost |", "| --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row.label} | {row.score:g} / {row.max_score:g} | {sum(p for _, p, _ in row.lost):g} |")
    for row in rows:
        lines += ["", f"### {row.label}: {row.score:g} / {row.max_score:g}", "",
                  "| test | points lost | what the grader said | student bug or grader |", "| --- | --- | --- | --- |"]
        for name, points, said in row.lost:
            lines.append(f"| {name} | {points:g} | {said.replace('|', '/')} | ? |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.real_submissions", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--subdir", default=".", help="the folder of the course's files inside each checkout")
    parser.add_argument("--out", type=Path, help="write the markdown table here as well")
    parser.add_argument("--json", type=Path, help="write the gradings as JSON")
    args = parser.parse_args(argv)
    rows = []
    for index, checkout in enumerate(args.checkouts, 1):
        with tempfile.TemporaryDirectory(prefix="cvgrade-real-") as scratch:
            print(f"[{index}/{len(args.checkouts)}] grading {checkout} ...", file=sys.stderr, flush=True)
            row = grade_checkout(args.assignment, checkout, args.subdir, Path(scratch))
            print(f"    {row.score:g} / {row.max_score:g}", file=sys.stderr, flush=True)
            rows.append(row)
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

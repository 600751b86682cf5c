"""Grade real course submissions (public checkouts) unchanged and tabulate every lost point.

    python -m bench.real_submissions fcos_detection CHECKOUT [CHECKOUT ...] --subdir detection \\
        [--profile course] [--out docs/real-fcos.md] [--json results.json]

A CHECKOUT is a folder, or a git directory without a work tree (what the search tool's ``fetch``
brings: ``/work/.mirror/<owner>+<name>/repo``), whose ``--subdir`` holds the student's files as the
course laid them out. Each is copied to a scratch folder (a git directory is read with
``git archive``), graded by ``grader.api.grade`` with the whole suite, and listed with its score
and each test that lost points, with the first line of what the grader said (after its "Called ..." line). Whether a lost
point is the student's bug or the grader's is for a person to decide: the table has a column for
it. Nothing of the checkouts is written inside the project unless ``--out`` points there (the
table holds test names and the grader's messages, not their code).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

WHOSE = ("student", "grader")


@dataclass(frozen=True)
class Verdict:
    """A person's decision on lost points: whose they are and why."""

    submission: str  # a substring of the submission's label ("PengtaoNi/16824_hw1")
    test: str  # a substring of the test's name
    whose: str  # "student" or "grader"
    why: str


def load_verdicts(path: Path) -> list[Verdict]:
    """The ``[[verdict]]`` tables of a TOML file.

    Raises:
        ValueError: naming the entry with a missing key or a ``whose`` other than student / grader.
    """
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    verdicts = []
    for index, entry in enumerate(data.get("verdict", [])):
        missing = [key for key in ("submission", "test", "whose", "why") if not isinstance(entry.get(key), str)]
        if missing:
            raise ValueError(f"{path}: verdict {index + 1} needs {missing} (strings)")
        if entry["whose"] not in WHOSE:
            raise ValueError(f"{path}: verdict {index + 1}: whose must be one of {list(WHOSE)}, got {entry['whose']!r}")
        verdicts.append(Verdict(entry["submission"], entry["test"], entry["whose"], entry["why"]))
    return verdicts


def verdict_for(verdicts: list[Verdict], label: str, test: str) -> Verdict | None:
    """The first verdict whose submission and test match (substrings), if any."""
    return next((v for v in verdicts if v.submission in label and v.test in test), None)


@dataclass
class Graded:
    """One checkout's grading."""

    label: str
    score: float
    max_score: float
    lost: list[tuple[str, float, str]] = field(default_factory=list)  # (test, points lost, first line)
    output: str = ""
    problem: str = ""  # why the checkout could not be graded at all


def _label(checkout: Path) -> str:
    name = checkout.parent.name if checkout.name == "repo" else checkout.name
    commit = ""
    if (checkout / "HEAD").is_file() or (checkout / ".git").exists():
        result = subprocess.run(["git", f"--git-dir={checkout if (checkout / 'HEAD').is_file() else checkout / '.git'}",
                                 "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30)
        commit = result.stdout.strip()
    return f"{name.replace('+', '/')}" + (f" @ {commit}" if commit else "")


def materialize(checkout: Path, subdir: str, into: Path) -> Path:
    """The checkout's ``subdir`` as a plain folder under ``into`` (read blob by blob from a bare git dir).

    A snapshot may list large files (checkpoints) without holding them: those are left out, and
    said so on stderr.
    """
    into = into / "files"  # a checkout's root (``subdir`` ".") is a fresh folder too
    into.mkdir(parents=True, exist_ok=True)
    bare_git = (checkout / "HEAD").is_file() and (checkout / "objects").is_dir()
    if bare_git:
        git = ["git", f"--git-dir={checkout}"]
        listing = subprocess.run([*git, "ls-tree", "-r", "-z", "HEAD", "--", subdir], capture_output=True,
                                 timeout=120, check=True).stdout.decode()
        missing = []
        for entry in filter(None, listing.split("\0")):
            meta, name = entry.split("\t", 1)
            _mode, kind, sha = meta.split()
            if kind != "blob" or ".." in Path(name).parts:
                continue
            blob = subprocess.run([*git, "cat-file", "blob", sha], capture_output=True, timeout=120)
            if blob.returncode != 0:
                missing.append(name)
                continue
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob.stdout)
        if missing:
            print(f"    left out (not in the snapshot): {', '.join(missing)}", file=sys.stderr, flush=True)
        if not (into / subdir).is_dir():
            raise FileNotFoundError(f"{checkout}: no folder {subdir!r} at HEAD")
        return into / subdir
    source = checkout / subdir
    if not source.is_dir():
        raise FileNotFoundError(f"{checkout}: no folder {subdir!r}")
    import shutil

    shutil.copytree(source, into / subdir)
    return into / subdir


def grade_checkout(assignment: str, checkout: Path, subdir: str, scratch: Path, profile: str | None = None) -> Graded:
    from grader import api

    folder = materialize(checkout, subdir, scratch)
    result = api.grade(assignment, folder, scratch / "results.json", profile=profile)
    lost = []
    for test in result.tests:
        missing = float(test.get("max_score", 0.0)) - float(test.get("score", 0.0))
        if missing > 1e-9:
            lines = [line.strip() for line in str(test.get("output", "")).splitlines() if line.strip()]
            # "Called f(...)" says where; the line after it says what was wrong.
            first = next((line for line in lines if not line.startswith("Called ")), lines[0] if lines else "")
            lost.append((str(test.get("name", "")), missing, first[:160]))
    return Graded(_label(checkout), result.score, result.max_score, lost, str(result.results.get("output", "")))


def _totals(row: Graded, verdicts: list[Verdict]) -> dict[str, float]:
    totals = {"student": 0.0, "grader": 0.0, "?": 0.0}
    for name, points, _ in row.lost:
        verdict = verdict_for(verdicts, row.label, name)
        totals[verdict.whose if verdict else "?"] += points
    return totals


def table(rows: list[Graded], verdicts: list[Verdict] | None = None) -> str:
    """Markdown: a summary line per submission, then each lost point with its verdict (``?`` when none)."""
    verdicts = verdicts or []
    lines = ["| submission | score | lost | to the student | to the grader | not classified |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row.problem:
            lines.append(f"| {row.label} | not graded: {row.problem.replace('|', '/')} | | | | |")
            continue
        totals = _totals(row, verdicts)
        lines.append(f"| {row.label} | {row.score:g} / {row.max_score:g} | {sum(p for _, p, _ in row.lost):g} | "
                     f"{totals['student']:g} | {totals['grader']:g} | {totals['?']:g} |")
    for row in rows:
        if row.problem:
            continue
        lines += ["", f"### {row.label}: {row.score:g} / {row.max_score:g}", "",
                  "| test | points lost | what the grader said | student bug or grader |", "| --- | --- | --- | --- |"]
        for name, points, said in row.lost:
            verdict = verdict_for(verdicts, row.label, name)
            whose = f"{verdict.whose}: {verdict.why}" if verdict else "?"
            lines.append(f"| {name} | {points:g} | {said.replace('|', '/')} | {whose.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.real_submissions", description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--subdir", default=".", help="the folder of the course's files inside each checkout")
    parser.add_argument("--out", type=Path, help="write the markdown table here as well")
    parser.add_argument("--json", type=Path, help="write the gradings as JSON")
    parser.add_argument("--profile", help="the manifest's profile to grade (default: its default, the course's)")
    parser.add_argument("--verdicts", type=Path, help="TOML of earlier decisions: whose each lost point is")
    args = parser.parse_args(argv)
    verdicts = load_verdicts(args.verdicts) if args.verdicts else []
    rows = []
    for index, checkout in enumerate(args.checkouts, 1):
        with tempfile.TemporaryDirectory(prefix="cvgrade-real-") as scratch:
            print(f"[{index}/{len(args.checkouts)}] grading {checkout} ...", file=sys.stderr, flush=True)
            try:
                row = grade_checkout(args.assignment, checkout, args.subdir, Path(scratch), args.profile)
            except (OSError, subprocess.SubprocessError) as exc:  # one unreadable checkout never stops the rest
                row = Graded(_label(checkout), 0.0, 0.0, problem=f"{type(exc).__name__}: {exc}")
            print(f"    {row.problem or f'{row.score:g} / {row.max_score:g}'}", file=sys.stderr, flush=True)
            rows.append(row)
    text = table(rows, verdicts)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

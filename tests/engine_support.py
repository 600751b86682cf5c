"""Helpers for the engine's own tests: a throw-away cvgrade project inside ``pytester``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from grader.api import validate_results

MANIFEST = """\
name = "toy"
title = "Toy assignment"
points = {points}
student_files = ["mod.py"]
provided_files = ["given.py"]

[grading]
call_timeout = {call_timeout}
hidden_visibility = "after_published"
"""

REFERENCE_MOD = """\
def add(a, b):
    print("adding", a, b)
    return a + b

def scale(x, k):
    return x * k
"""

TEMPLATE_MOD = """\
def add(a, b):
    raise NotImplementedError("TODO: add")

def scale(x, k):
    raise NotImplementedError("TODO: scale")
"""


def make_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tests: dict[str, str],
                 points: float = 10, reference: str = REFERENCE_MOD, call_timeout: float = 30) -> Path:
    """A project root with one assignment ``toy``; ``tests`` maps paths under its suite to sources."""
    root = pytester.path
    monkeypatch.setenv("CVGRADE_ROOT", str(root))
    suite = root / "grader" / "suites" / "toy"
    (suite / "public").mkdir(parents=True)
    (suite / "hidden").mkdir(parents=True)
    (suite / "assignment.toml").write_text(MANIFEST.format(points=points, call_timeout=call_timeout))
    for directory, mod in (("reference", reference), ("student_template", TEMPLATE_MOD)):
        (root / directory / "toy").mkdir(parents=True)
        (root / directory / "toy" / "mod.py").write_text(mod)
        (root / directory / "toy" / "given.py").write_text("GIVEN = 42\n")
    for relative, source in tests.items():
        path = suite / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    return root


def run(pytester: pytest.Pytester, *args: str, inprocess: bool = True) -> tuple[dict, pytest.RunResult]:
    """Run pytest on the toy suite and return (validated results.json, run result)."""
    out = pytester.path / "out" / "results.json"
    argv = ["grader/suites/toy", f"--results-json={out}", *args]
    result = pytester.runpytest_inprocess(*argv) if inprocess else pytester.runpytest_subprocess(*argv)
    data = json.loads(out.read_text())
    problems = validate_results(data)
    assert not problems, problems
    return data, result


def by_name(data: dict) -> dict[str, dict]:
    return {t["name"]: t for t in data["tests"]}

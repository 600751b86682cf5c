"""Every mutant (a typical student bug) of every assignment loses points."""

from __future__ import annotations

from pathlib import Path

import pytest
from suite_runner import grade_in_process

from grader import manifest as manifests
from grader.mutation import apply, load

MUTANTS_DIR = Path(__file__).parent / "mutants"


def _cases() -> list:
    cases = []
    for path in sorted(MUTANTS_DIR.glob("*/mutants.py")):
        for mutant in load(path):
            cases.append(pytest.param(path.parent.name, mutant, id=f"{path.parent.name}:{mutant.name}"))
    return cases


@pytest.mark.parametrize(("assignment", "mutant"), _cases())
def test_mutant_loses_points(pytester: pytest.Pytester, tmp_path: Path, assignment: str, mutant) -> None:
    manifest = manifests.get(assignment)
    submission = apply(manifest.reference_dir, mutant, tmp_path / "mutant")
    run = grade_in_process(pytester, manifest, submission, select=mutant.select, profile=mutant.profile)
    assert run.results["tests"], f"mutant {mutant.name}: no test matched -k {mutant.select!r}"
    assert run.score < run.max_score, (
        f"mutant {mutant.name} ({mutant.why}) kept every point of the tests selected by {mutant.select!r}")


@pytest.mark.parametrize("assignment", sorted(p.parent.name for p in MUTANTS_DIR.glob("*/mutants.py")))
def test_every_mutant_applies_to_the_reference(tmp_path: Path, assignment: str) -> None:
    manifest = manifests.get(assignment)
    for mutant in load(MUTANTS_DIR / assignment / "mutants.py"):
        apply(manifest.reference_dir, mutant, tmp_path / mutant.name)

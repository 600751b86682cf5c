"""Course-convention submissions (right answers in the courses' own styles) keep full marks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from suite_runner import grade_in_process

from grader import manifest as manifests
from grader.mutation import apply

CONVENTIONS_DIR = Path(__file__).parent / "conventions"


def _load(path: Path) -> list:
    spec = importlib.util.spec_from_file_location(f"conventions_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.CONVENTIONS)


def _cases() -> list:
    return [pytest.param(path.parent.name, convention, id=f"{path.parent.name}:{convention.name}")
            for path in sorted(CONVENTIONS_DIR.glob("*/conventions.py")) for convention in _load(path)]


@pytest.mark.parametrize(("assignment", "convention"), _cases())
def test_a_course_convention_keeps_full_marks(pytester: pytest.Pytester, tmp_path: Path, assignment: str,
                                              convention) -> None:
    manifest = manifests.get(assignment)
    submission = apply(manifest.reference_dir, convention, tmp_path / "convention")
    # In the real sandbox: it is where the manifest's conveniences for course code (cuda_on_cpu, offline_weights,
    # definitions_only) take effect.
    run = grade_in_process(pytester, manifest, submission, select=convention.select, sandbox=True,
                           profile=convention.profile)
    assert run.results["tests"], f"{convention.name}: no test matched -k {convention.select!r}"
    lost = [(t["name"], t.get("output", "")[:300]) for t in run.results["tests"] if t["score"] < t["max_score"]]
    assert run.score == pytest.approx(run.max_score), f"{convention.name} ({convention.why}) lost points: {lost}"

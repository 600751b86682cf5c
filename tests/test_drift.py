"""The committed tree agrees with itself: template current, manifests match the files."""

from __future__ import annotations

import pytest

from grader import manifest as manifests
from grader import template

ASSIGNMENTS = sorted(manifests.discover())


def test_committed_template_is_current() -> None:
    report = template.build(check=True)
    assert report.clean, "student_template/ is stale; run `cvgrade build`\n" + report.diff + \
        "\nmissing: " + ", ".join(report.missing) + "\nextra: " + ", ".join(report.extra)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_manifest_files_exist(assignment: str) -> None:
    manifest = manifests.get(assignment)
    for name in manifest.student_files:
        assert (manifest.reference_dir / name).is_file(), f"reference/{assignment}/{name} is missing"
        assert (manifest.template_dir / name).is_file(), f"student_template/{assignment}/{name} is missing"
    for name in manifest.provided_files:
        assert (manifest.template_dir / name).exists(), f"provided file student_template/{assignment}/{name} missing"
    assert (manifest.suite_dir / "public").is_dir() and (manifest.suite_dir / "hidden").is_dir()


def test_test_module_names_are_unique() -> None:
    """pytest's default import mode needs distinct basenames across tests/ and grader/suites/."""
    from collections import Counter
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    names = Counter(p.name for folder in ("tests", "grader/suites") for p in (root / folder).rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], f"duplicate test module names: {names.most_common(5)}"


def test_all_suites_collect_together() -> None:
    """What TAs run, `pytest grader/`, collects every suite in one session (graded in tests/test_assignments.py)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-m", "pytest", "grader/suites", "--collect-only", "-q", "-p", "no:randomly"],
                         cwd=root, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "error" not in run.stdout.splitlines()[-1].lower(), run.stdout[-3000:]

"""The same submission gets the same score, also on a busy machine (issue 22).

``-m slow``: each assignment's reference and three of its mutants, graded ``CVGRADE_REPRO_RUNS``
times (default 5) with the whole suite in real sandboxed workers while another process keeps a core
busy; every grading of one submission must give the same score and the same points per test.
About 6-10 minutes per assignment on the 2-core VM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import api
from grader import manifest as manifests
from grader.mutation import apply, load

MUTANTS_DIR = Path(__file__).parent / "mutants"
BURNER = "import time\nwhile True:\n    time.perf_counter()\n"
ASSIGNMENTS = sorted(p.parent.name for p in MUTANTS_DIR.glob("*/mutants.py"))


def per_test(results: dict) -> dict[str, float]:
    """``{test name: score}`` of a results.json."""
    return {test["name"]: float(test.get("score", 0.0)) for test in results["tests"]}


def test_per_test_scores_tell_apart_a_changed_grading() -> None:
    """The comparison the slow test makes: a test that lost half a point in one run shows."""
    one = {"score": 10.0, "tests": [{"name": "a", "score": 5.0}, {"name": "b", "score": 5.0}]}
    two = {"score": 9.5, "tests": [{"name": "a", "score": 5.0}, {"name": "b", "score": 4.5}]}
    assert per_test(one) != per_test(two) and per_test(one) == per_test(json.loads(json.dumps(one)))


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_same_submission_gets_the_same_score_on_a_busy_machine(tmp_path: Path, assignment: str) -> None:
    runs = int(os.environ.get("CVGRADE_REPRO_RUNS", "5"))
    manifest = manifests.get(assignment)
    mutants = load(MUTANTS_DIR / assignment / "mutants.py")
    chosen = [m for m in mutants if m.profile is None][:3]
    submissions = {"reference": manifest.reference_dir}
    for mutant in chosen:
        submissions[mutant.name] = apply(manifest.reference_dir, mutant, tmp_path / mutant.name)
    burner = subprocess.Popen([sys.executable, "-c", BURNER])
    seen: dict[str, list[dict[str, float]]] = {}
    totals: dict[str, list[float]] = {}
    full = 0.0
    try:
        for round_number in range(runs):
            for name, folder in submissions.items():
                out = tmp_path / f"{name}-{round_number}.json"
                result = api.grade(assignment, folder, out)
                seen.setdefault(name, []).append(per_test(result.results))
                totals.setdefault(name, []).append(float(result.results["score"]))
                full = float(result.results["extra_data"]["max_score"])
                print(f"{assignment} {name} run {round_number + 1}: {result.results['score']} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        burner.kill()
        burner.wait()
    for name, runs_seen in seen.items():
        differing = {test for run in runs_seen for test, score in run.items()
                     if any(other.get(test) != score for other in runs_seen)}
        assert not differing, f"{assignment} {name}: scores {totals[name]}; tests that changed: {sorted(differing)}"
    assert totals["reference"][0] == full, f"{assignment}'s reference: {totals['reference']} of {full}"
    for mutant in chosen:
        assert totals[mutant.name][0] < totals["reference"][0], f"mutant {mutant.name} kept full marks"

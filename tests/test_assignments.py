"""Every assignment: the reference earns every point, the template earns none and never crashes the grader."""

from __future__ import annotations

import pytest
from suite_runner import grade_in_process

from grader import manifest as manifests

ASSIGNMENTS = sorted(manifests.discover())
PROFILES = [(name, profile.name) for name, manifest in manifests.discover().items() for profile in manifest.all_profiles]


@pytest.mark.parametrize(("assignment", "profile"), PROFILES)
def test_reference_scores_full(pytester: pytest.Pytester, assignment: str, profile: str) -> None:
    """In every profile, in the real sandbox (the template, the mutants and the public-only runs use the faster
    in-process mode)."""
    manifest = manifests.get(assignment)
    run = grade_in_process(pytester, manifest, "reference", sandbox=True, profile=profile)
    assert run.results["extra_data"]["sandbox"][assignment]["mode"] == "sandbox", run.results["extra_data"]
    assert run.score == pytest.approx(manifest.profile(profile).points), run.outputs()
    assert run.max_score == pytest.approx(manifest.profile(profile).points)
    assert run.results["extra_data"]["profiles"][assignment].startswith(f"{profile} (")


@pytest.mark.parametrize(("assignment", "profile"), PROFILES)
def test_template_scores_zero_without_crashing(pytester: pytest.Pytester, assignment: str, profile: str) -> None:
    manifest = manifests.get(assignment)
    run = grade_in_process(pytester, manifest, "template", profile=profile)
    assert run.score == 0, [t["name"] for t in run.results["tests"] if t["score"] > 0]
    assert run.max_score == pytest.approx(manifest.profile(profile).points)
    # GPU variants (marker ``cuda``) are skipped, not counted, on a machine without CUDA.
    outcomes = {t["extra_data"].get("outcome") for t in run.results["tests"]
                if not (t["extra_data"].get("outcome") == "skipped" and "needs a CUDA device" in t.get("output", ""))}
    assert outcomes <= {"failed", "error"}, outcomes
    for test in run.results["tests"]:
        assert "internal error" not in test.get("output", "").lower(), test


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_public_tests_need_no_reference(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                        assignment: str) -> None:
    """Students run the public tests without the reference: they must pass on the reference's code alone."""
    monkeypatch.setenv("CVGRADE_NO_REFERENCE", "1")
    manifest = manifests.get(assignment)
    run = grade_in_process(pytester, manifest, manifest.reference_dir, public_only=True)
    assert run.results["tests"]
    assert run.score == pytest.approx(run.max_score), run.outputs()

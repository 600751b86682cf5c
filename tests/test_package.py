"""``cvgrade package`` and a simulated Gradescope run of the zip it builds.

The simulated run unpacks the zip where Gradescope would (a temporary folder
standing in for /autograder), runs setup.sh (without the package installs) and
run_autograder as root, and validates results/results.json: reference full,
template zero, and, for one assignment, a buggy and a malicious submission.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import manifest as manifests
from grader import paths
from grader.api import validate_results
from grader.mutation import apply, load
from grader.package import build_package

ASSIGNMENTS = sorted(manifests.discover())
DOCKER = paths.project_root() / "docker"


@pytest.fixture(scope="module")
def zips(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    return {name: build_package(manifests.get(name), out).path for name in ASSIGNMENTS}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_zip_holds_only_what_the_assignment_needs(zips, assignment):
    names = zipfile.ZipFile(zips[assignment]).namelist()
    assert {"setup.sh", "run_autograder", "requirements.txt", "cvgrade-assignment.json"} <= set(names)
    others = [a for a in ASSIGNMENTS if a != assignment]
    for name in names:
        assert not name.startswith(("tests/", ".git", "bench/", "docs/")), name
        assert not any(f"/{other}/" in f"/{name}" for other in others), name
        assert "__pycache__" not in name and not name.endswith(".pyc")
    assert f"reference/{assignment}/" in "".join(names) and f"grader/suites/{assignment}/" in "".join(names)
    with zipfile.ZipFile(zips[assignment]) as zf:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in zf.infolist()}
        meta = json.loads(zf.read("cvgrade-assignment.json"))
        requirements = zf.read("requirements.txt").decode()
    assert modes["setup.sh"] == 0o755 and modes["run_autograder"] == 0o755
    assert meta["assignment"] == assignment and set(meta["files"]) <= set(names)
    assert "download.pytorch.org/whl/cpu" in requirements and re.search(r"^torch==[\d.]+\+cpu$", requirements, re.M)


def test_zip_is_reproducible(tmp_path):
    manifest = manifests.get(ASSIGNMENTS[0])
    a = build_package(manifest, tmp_path / "a").path
    b = build_package(manifest, tmp_path / "b").path
    assert json.loads(zipfile.ZipFile(a).read("cvgrade-assignment.json"))["content_sha256"] == \
        json.loads(zipfile.ZipFile(b).read("cvgrade-assignment.json"))["content_sha256"]


def test_dockerfile_is_a_thin_wrapper_over_the_same_scripts():
    text = (DOCKER / "Dockerfile").read_text()
    instructions = [line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[0] == "FROM" and re.search(r"^FROM gradescope/autograder-base:\S+$", text, re.M)
    assert "bash /autograder/source/setup.sh" in text
    assert "cp /autograder/source/run_autograder /autograder/run_autograder" in text
    assert 'CMD ["/autograder/run_autograder"]' in text
    assert "pip" not in text, "installs belong in setup.sh, which Gradescope runs too"
    for script in ("setup.sh", "run_autograder"):
        result = subprocess.run(["bash", "-n", str(DOCKER / script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert os.access(DOCKER / script, os.X_OK)


MALICIOUS_SOURCE = """
import os, glob
for path in ["/autograder/results/results.json", os.environ.get("RESULTS_GUESS", "")]:
    try:
        open(path, "w").write('{"score": 9999, "tests": []}')
    except OSError:
        pass
for path in glob.glob("/autograder/source/**/*.py", recursive=True):
    print(open(path).read())
raise SystemExit(0)
"""


def _simulate(zip_path: Path, root: Path, submission: Path, metadata: dict | None = None) -> dict:
    source = root / "source"
    source.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(source)
    for script in ("setup.sh", "run_autograder"):
        os.chmod(source / script, 0o755)
    shutil.copytree(submission, root / "submission")
    if metadata is not None:
        (root / "submission_metadata.json").write_text(json.dumps(metadata))
    env = {**os.environ, "CVGRADE_SKIP_INSTALL": "1", "CVGRADE_AUTOGRADER_ROOT": str(root),
           "CVGRADE_PYTHON": sys.executable, "RESULTS_GUESS": str(root / "results" / "results.json")}
    env.pop("CVGRADE_ROOT", None)
    setup = subprocess.run(["bash", str(source / "setup.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    if os.geteuid() == 0:
        assert (source.stat().st_mode & 0o077) == 0, "setup.sh must make the source root-only"
    run = subprocess.run([str(source / "run_autograder")], env=env, capture_output=True, text=True, timeout=900,
                         cwd=str(root))
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads((root / "results" / "results.json").read_text())
    assert not validate_results(data), validate_results(data)
    return data


# The packaging scripts are the same for every assignment and each zip's contents are checked above;
# fcos_detection's reference and template go through setup.sh + run_autograder by default, the others
# with -m slow (each simulated run is a full sandboxed grading, 30-200 s on 2 cores). Every reference
# is graded in the real sandbox by tests/test_assignments.py.
SIMULATED_RUNS = [pytest.param(a, kind, id=f"{a}-{kind}", marks=() if a == "fcos_detection" else pytest.mark.slow)
                  for a in ASSIGNMENTS for kind in ("reference", "template")]


@pytest.mark.parametrize(("assignment", "kind"), SIMULATED_RUNS)
def test_simulated_gradescope_run(zips, tmp_path, assignment, kind):
    manifest = manifests.get(assignment)
    submission = manifest.reference_dir if kind == "reference" else manifest.template_dir
    data = _simulate(zips[assignment], tmp_path / "autograder", submission)
    if kind == "reference":
        assert data["score"] == pytest.approx(manifest.points), [t for t in data["tests"] if t["status"] == "failed"]
    else:
        assert data["score"] == 0
    assert data["extra_data"]["max_score"] == pytest.approx(manifest.points)


def test_simulated_run_of_a_buggy_and_a_malicious_submission_with_a_late_penalty(zips, tmp_path):
    assignment = "fcos_detection"
    manifest = manifests.get(assignment)
    mutant = load(paths.project_root() / "tests" / "mutants" / assignment / "mutants.py")[0]
    buggy = apply(manifest.reference_dir, mutant, tmp_path / "buggy")
    late = {"created_at": "2024-02-23T10:00:00-05:00", "assignment": {"due_date": "2024-02-21T23:59:00-05:00"},
            "users": [{"id": 1}], "previous_submissions": []}
    data = _simulate(zips[assignment], tmp_path / "run1", buggy, metadata=late)
    assert 0 < data["extra_data"]["max_score"] and 0 < sum(t["score"] for t in data["tests"]) < manifest.points
    if manifest.gradescope.late_penalty_per_day:
        assert "late" in data["output"]

    malicious = tmp_path / "malicious"
    malicious.mkdir()
    for name in manifest.student_files:
        (malicious / name).write_text(MALICIOUS_SOURCE)
    data = _simulate(zips[assignment], tmp_path / "run2", malicious)
    assert data["score"] == 0
    text = json.dumps(data)
    assert "9999" not in text and "BEGIN SOLUTION" not in text and "def _greedy_nms" not in text

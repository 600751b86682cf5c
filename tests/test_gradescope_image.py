"""The faithful simulated Gradescope run: a fresh Python 3.10, the zip's real setup.sh, real installs.

Gradescope's Ubuntu 22.04 image has Python 3.10 and nothing of ours. For each assignment this
builds a fresh virtual environment of Python 3.10 (pyenv's 3.10.13 on the development machines,
or ``CVGRADE_TEST_PYTHON310``), unpacks the zip where Gradescope would (a folder standing in for
``/autograder``), runs its ``setup.sh`` against that interpreter (real ``pip install`` from the
package registry at the lock's pins; only the torch index is overridden, since the CPU wheel
index cannot be reached from here, so torch is PyPI's CUDA build of the same version), then runs
``run_autograder`` with it, as root, on the reference (full marks), the template (zero), a
buggy submission (some points lost) and a malicious one (zero, nothing leaked), and validates
every ``results.json``. No development interpreter and no skipped install anywhere. For
fcos_detection it then shows that setup.sh stops loudly when an install fails.

fcos_detection runs by default (about 2-3 minutes of installs plus four gradings); the other
assignments with ``-m slow``. Each image takes about 6 GB on disk while its test runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from grader import manifest as manifests
from grader import paths
from grader.api import validate_results
from grader.mutation import apply, load
from grader.package import build_package

ASSIGNMENTS = sorted(manifests.discover())
# PyPI's torch for Linux is the CUDA build; the version is the lock's, so the grading code is the same.
TORCH_INDEX = os.environ.get("CVGRADE_TEST_TORCH_INDEX_URL", "https://pypi.org/simple")

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


def python310() -> str:
    """A Python 3.10 interpreter that is not the development one."""
    candidates = [os.environ.get("CVGRADE_TEST_PYTHON310", ""), shutil.which("python3.10") or ""]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.10*/bin/python3.10"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                                   capture_output=True, text=True, timeout=60)
            if probe.stdout.strip() == "True":
                return candidate
    pytest.fail("no Python 3.10 interpreter found (set CVGRADE_TEST_PYTHON310); Gradescope's image has 3.10")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh image: no development virtualenv, no PYTHONPATH, no cvgrade settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_FIND_LINKS",
            "PIP_DISABLE_PIP_VERSION_CHECK", "SSL_CERT_FILE", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = ":".join(p for p in env.get("PATH", "/usr/bin:/bin").split(":")
                           if ".venv" not in p and "pyenv/shims" not in p)
    env.update(extra)
    return env


class Image:
    """One simulated Gradescope image: /autograder's stand-in and the image's Python."""

    def __init__(self, root: Path, python: Path, setup_log: str, setup_seconds: float) -> None:
        self.root, self.python, self.setup_log, self.setup_seconds = root, python, setup_log, setup_seconds

    @property
    def source(self) -> Path:
        return self.root / "autograder" / "source"

    def grade(self, submission: Path, metadata: dict | None = None) -> dict:
        autograder = self.root / "autograder"
        for stale in ("submission", "results"):
            shutil.rmtree(autograder / stale, ignore_errors=True)
        (autograder / "submission_metadata.json").unlink(missing_ok=True)
        shutil.copytree(submission, autograder / "submission")
        if metadata is not None:
            (autograder / "submission_metadata.json").write_text(json.dumps(metadata))
        env = _clean_env(CVGRADE_AUTOGRADER_ROOT=str(autograder), CVGRADE_PYTHON=str(self.python),
                         RESULTS_GUESS=str(autograder / "results" / "results.json"))
        run = subprocess.run([str(autograder / "run_autograder")], env=env, capture_output=True, text=True,
                             timeout=900, cwd=str(autograder))
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        data = json.loads((autograder / "results" / "results.json").read_text())
        assert not validate_results(data), validate_results(data)
        return data


def build_image(assignment: str, base: Path) -> Image:
    """Unpack the assignment's zip into ``base/autograder/source`` and run its setup.sh on a fresh 3.10."""
    zip_path = build_package(manifests.get(assignment), base / "dist").path
    source = base / "autograder" / "source"
    source.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(source)
    for script in ("setup.sh", "run_autograder"):
        os.chmod(source / script, 0o755)
    shutil.copy2(source / "run_autograder", base / "autograder" / "run_autograder")
    venv = base / "python"
    subprocess.run([python310(), "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    started = time.monotonic()
    setup = subprocess.run(["bash", str(source / "setup.sh")], capture_output=True, text=True, timeout=1800,
                           env=_clean_env(CVGRADE_PYTHON=str(python), CVGRADE_TORCH_INDEX_URL=TORCH_INDEX))
    seconds = time.monotonic() - started
    log = setup.stdout + setup.stderr
    assert setup.returncode == 0, log[-6000:]
    assert "cvgrade: image ready: Python 3.10" in log, log[-3000:]
    return Image(base, python, log, seconds)


@pytest.fixture
def image_root():
    # The worker runs as an unprivileged user and must reach the image's Python: not under pytest's
    # root-only tmp_path. About 6 GB (PyPI's CUDA torch), removed afterwards.
    root = Path(tempfile.mkdtemp(prefix="cvgrade-image-", dir="/var/tmp"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _failed(data: dict) -> list[tuple[str, str]]:
    return [(t["name"], t.get("output", "")[:400]) for t in data["tests"] if t["status"] == "failed"]


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("assignment", [pytest.param(a, marks=() if a == "fcos_detection" else pytest.mark.slow)
                                        for a in ASSIGNMENTS])
def test_faithful_gradescope_image(assignment, image_root, tmp_path):
    manifest = manifests.get(assignment)
    image = build_image(assignment, image_root)
    report = {"assignment": assignment, "setup_seconds": round(image.setup_seconds, 1),
              "image_python_bytes": _size(image_root / "python")}

    started = time.monotonic()
    reference = image.grade(manifest.reference_dir)
    report["reference_seconds"] = round(time.monotonic() - started, 1)
    assert reference["score"] == pytest.approx(manifest.points), _failed(reference)
    assert reference["extra_data"]["max_score"] == pytest.approx(manifest.points)
    sandbox = reference["extra_data"]["sandbox"][assignment]
    assert sandbox["forked"] is True, sandbox  # the fork server works on the image's Python 3.10

    template = image.grade(manifest.template_dir)
    assert template["score"] == 0, _failed(template)
    assert template["extra_data"]["max_score"] == pytest.approx(manifest.points)

    mutant = load(paths.project_root() / "tests" / "mutants" / assignment / "mutants.py")[0]
    late = {"created_at": "2024-02-23T10:00:00-05:00", "assignment": {"due_date": "2024-02-21T23:59:00-05:00"},
            "users": [{"id": 1}], "previous_submissions": []}
    buggy = image.grade(apply(manifest.reference_dir, mutant, tmp_path / "buggy"), metadata=late)
    earned = sum(t["score"] for t in buggy["tests"])
    assert 0 < earned < manifest.points, (mutant.name, earned)
    if manifest.gradescope.late_penalty_per_day:
        assert "late" in buggy["output"]

    malicious = tmp_path / "malicious"
    malicious.mkdir()
    for name in manifest.student_files:
        (malicious / name).write_text(MALICIOUS_SOURCE)
    attacked = image.grade(malicious)
    assert attacked["score"] == 0
    text = json.dumps(attacked)
    assert "9999" not in text and "BEGIN SOLUTION" not in text and "def _greedy_nms" not in text

    print(json.dumps(report))  # wall time and the image's installed size, for the README (pytest -s)
    if assignment == "fcos_detection":
        setup_fails_loudly_when_an_install_fails(image)


def setup_fails_loudly_when_an_install_fails(image: Image) -> None:
    """A package that cannot be installed stops setup.sh with a clear line, before anything is graded."""
    requirements = image.source / "requirements.txt"
    requirements.write_text(requirements.read_text() + "cvgrade-no-such-package-anywhere==0.0.1\n")
    setup = subprocess.run(["bash", str(image.source / "setup.sh")], capture_output=True, text=True, timeout=900,
                           env=_clean_env(CVGRADE_PYTHON=str(image.python), CVGRADE_TORCH_INDEX_URL=TORCH_INDEX))
    assert setup.returncode != 0
    assert "cvgrade setup FAILED: the packages of requirements.txt did not install" in setup.stderr, \
        setup.stderr[-2000:]
    assert "cvgrade: set up" not in setup.stdout


"""``cvgrade package``: what goes in the zip, its pins, and the plugin loading that needs no install.

The faithful simulated Gradescope run of the zips (a fresh Python 3.10, the real setup.sh and
run_autograder) is in ``test_gradescope_image.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader import image, paths
from grader import manifest as manifests
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
    assert meta["torch_index_url"] == "https://download.pytorch.org/whl/cpu" and meta["python"] == "3.10"
    assert "CPU-only build" in requirements


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_package_of_the_zip_is_pinned_by_the_lock(zips, assignment):
    """requirements.txt pins each top-level package at the lock's version; constraints.txt is the lock."""
    manifest = manifests.get(assignment)
    with zipfile.ZipFile(zips[assignment]) as zf:
        requirements = zf.read("requirements.txt").decode()
        constraints = zf.read("constraints.txt").decode()
    assert constraints == image.lock_path().read_text()
    lock = image.parse_lock(constraints)
    lines = [line for line in requirements.splitlines() if line and not line.startswith("#")]
    pinned = {}
    for line in lines:
        name, _, version = line.split(";")[0].strip().partition("==")
        assert version, f"not pinned: {line!r}"
        pinned[image.canonical(name)] = version
        assert lock[image.canonical(name)] == version, line
    for package in ("torch", "torchvision", "pytest", "pytest-xdist", "pytest-timeout", "numpy",
                    *manifest.gradescope.course_packages):
        assert image.canonical(package) in pinned, package


def test_the_lock_pins_the_development_torch_and_no_cuda_only_package():
    """The image's torch is the one the project tests with (constraints.txt); CPU torch needs no nvidia-*."""
    lock = image.read_lock()
    dev = {image.canonical(n): v for n, _, v in (line.partition("==") for line in
           (paths.project_root() / "constraints.txt").read_text().splitlines()) if v and not n.startswith("#")}
    assert {k: lock[k] for k in dev} == dev
    assert not [name for name in lock if image.CUDA_ONLY.match(name)]
    for name, _marker in image.top_level(p for m in manifests.discover().values()
                                        for p in m.gradescope.course_packages):
        assert image.canonical(name) in lock, f"{name} is not in the lock: run docker/make-lock.sh"


def test_course_packages_of_the_16_824_starters_are_declared():
    """What the official starter code imports at module level is installed in the image."""
    assert "imageio" in manifests.get("voc_classification").gradescope.course_packages
    assert "wandb" in manifests.get("weak_localization").gradescope.course_packages
    assert "opencv-python-headless" in manifests.get("fcos_detection").gradescope.course_packages


def test_a_course_package_outside_the_lock_is_refused_with_its_name():
    with pytest.raises(image.LockError, match="not-a-locked-package.*make-lock.sh"):
        image.image_requirements(["not-a-locked-package"])


@pytest.mark.parametrize("text", ["torch>=2.0\n", "torch==\n", "==1.0\n", "torch==1.0 extra\n"])
def test_a_malformed_lock_line_is_quoted(text):
    with pytest.raises(image.LockError, match=re.escape(repr(text.strip("\n")))):
        image.parse_lock(text)


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


PLUGIN_PROBE = """
def test_probe():
    assert True
"""


def test_grading_loads_the_plugin_by_module_name_without_the_entry_point(tmp_path):
    """A Gradescope image has no installed cvgrade, so no pytest11 entry point: grading must not need one.

    ``-p no:cvgrade`` blocks the entry point exactly as its absence would (pytest then does not know
    --results-json); api.grade's own command line loads ``grader.plugin`` by name and still writes results.
    """
    (tmp_path / "test_probe.py").write_text(PLUGIN_PROBE)
    out = tmp_path / "results.json"
    base = [sys.executable, "-m", "pytest", str(tmp_path / "test_probe.py"), "-p", "no:cacheprovider", "-q",
            f"--rootdir={tmp_path}", f"--results-json={out}"]
    env = {**os.environ, "PYTHONPATH": str(paths.project_root())}
    blocked = subprocess.run(base[:3] + ["-p", "no:cvgrade"] + base[3:], capture_output=True, text=True, env=env,
                             cwd=tmp_path, timeout=120)
    assert blocked.returncode != 0 and "--results-json" in blocked.stderr, blocked.stderr
    loaded = subprocess.run(base[:3] + ["-p", "no:cvgrade", "-p", "grader.plugin"] + base[3:], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=120)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert json.loads(out.read_text())["extra_data"]["generator"] == "cvgrade"


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in a file, leaving out those guarded by ``except ImportError``."""
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_module_grading_imports_comes_from_a_locked_distribution():
    """The engine, the graded suites, the references and the templates import only the standard library,
    the project's own modules and distributions the Gradescope image installs (a suite that imported a
    development-only oracle lost 13.5 points on the image)."""
    import importlib.metadata

    root = paths.project_root()
    files = [p for tree in ("grader", "reference", "student_template") for p in (root / tree).rglob("*.py")]
    local = {p.stem for p in files} | {p.name for p in files for p in p.parents} | {"grader", "reference"}
    owners = importlib.metadata.packages_distributions()
    lock = image.read_lock()
    unlocked = {}
    for path in files:
        for name in _imports(path) - set(sys.stdlib_module_names) - local:
            dists = owners.get(name, [name])  # not installed here (tomli on 3.11): the module's own name
            if not any(image.canonical(d) in lock for d in dists):
                unlocked.setdefault(name, []).append(str(path.relative_to(root)))
    assert not unlocked, f"imported, not in docker/{image.LOCK_NAME} (add to pyproject.toml, run make-lock.sh): " \
        f"{unlocked}"


def test_a_zip_grades_the_profile_it_was_built_for(tmp_path):
    """``cvgrade package --profile extended``: the zip's metadata names it and run_autograder passes it on."""
    manifest = manifests.get("fcos_detection")
    path = build_package(manifest, tmp_path / "dist", profile="extended").path
    root = tmp_path / "autograder"
    with zipfile.ZipFile(path) as zf:
        zf.extractall(root / "source")
        meta = json.loads(zf.read("cvgrade-assignment.json"))
    assert (meta["profile"], meta["points"], meta["parts"]) == ("extended", 79.5, ["main", "extended", "non_square", "speed"])
    default = json.loads(zipfile.ZipFile(build_package(manifest, tmp_path / "d2").path).read("cvgrade-assignment.json"))
    assert (default["profile"], default["points"]) == ("course", 60.0)
    # An interpreter that runs the script's small `-c` helpers and records how the grader is called.
    calls = tmp_path / "calls.txt"
    shim = tmp_path / "python"
    shim.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi\n'
                    f'echo "$@" >> {calls}\n')
    shim.chmod(0o755)
    (root / "submission").mkdir()
    env = {**os.environ, "CVGRADE_AUTOGRADER_ROOT": str(root), "CVGRADE_PYTHON": str(shim)}
    subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, check=True, timeout=60)
    assert calls.read_text().split() == ["-m", "grader.cli", "grade", "fcos_detection", str(root / "submission"),
                                         "--out", str(root / "results" / "results.json"), "--profile", "extended"]
    with pytest.raises(manifests.ManifestError, match="has no profile 'x'"):
        build_package(manifest, tmp_path / "d3", profile="x")

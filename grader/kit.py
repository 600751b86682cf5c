"""``cvgrade kit``: the folder a student starts from.

A kit holds what a student needs and nothing that gives answers away::

    <files of student_template/<assignment>/>   the starter code to fill in (its README.md as ASSIGNMENT.md)
    public_tests/                               the public tests that ``cvgrade check`` runs, to read
    cvgrade-<version>-py3-none-any.whl           cvgrade for students (unless the course names its own install)
    README.md                                   the install line and the check command

Nothing of ``reference/`` and no hidden test goes in: the kit is built from the
template and the suite's ``public/`` folder only, and its wheel from a copy of the
source tree without them (the wheel is opened and checked before it is shipped).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from grader import manifest as manifests
from grader import paths
from grader.manifest import Manifest
from grader.package import _tree

PUBLIC_TESTS = "public_tests"
# What the student distribution is built from: the engine, the notebook entry point, the template (its
# course-provided files are graded as the course's copies). Never reference/ and never a hidden/ folder.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "grader", "cvgrade", "student_template")
TEMPLATE_README = "ASSIGNMENT.md"  # the template's own README.md (the kit's README.md is the kit's)


class KitError(ValueError):
    """A kit that cannot be written (the message quotes the bad value)."""


@dataclass
class KitReport:
    """What ``build_kit`` wrote.

    Attributes:
        folder (Path): the kit's folder.
        files (list[str]): every file written, relative to ``folder``.
    """

    folder: Path
    files: list[str] = field(default_factory=list)


def kit_sources(manifest: Manifest) -> list[tuple[Path, str]]:
    """The files of a kit: (source path, name in the kit), template first, then the public tests.

    Args:
        manifest: the assignment.

    Raises:
        KitError: when the assignment has no student template (run ``cvgrade build``).
    """
    if not manifest.template_dir.is_dir():
        raise KitError(f"no student template at {str(manifest.template_dir)!r}: run 'cvgrade build' first")
    template = [(path, TEMPLATE_README if name == "README.md" else name)
                for path, name in _tree(manifest.template_dir, manifest.template_dir) if name != "__init__.py"]
    public = manifest.suite_dir / "public"
    tests = [(path, f"{PUBLIC_TESTS}/{name}") for path, name in _tree(public, public) if name.endswith(".py")]
    return template + tests


def examples(public_tests: list[str]) -> tuple[str, str]:
    """A test-name keyword and a question number that the public tests have, for the README's commands.

    Args:
        public_tests: the texts of the public test files.

    Returns:
        (keyword, question), e.g. ("centerness", "3"); ("", "") parts when none is found.
    """
    # A file marked with a part may be graded only by another profile than the default one.
    text = "\n".join(t for t in public_tests if "mark.part(" not in t) or "\n".join(public_tests)
    name = re.search(r"^def test_([a-z0-9]+)", text, re.MULTILINE)
    number = re.search(r"number\(\s*[\"'](\d+)", text)
    return (name.group(1) if name else "", number.group(1) if number else "")


def secret_entries(names: list[str]) -> list[str]:
    """The entries of a distribution's file list that students must not get (reference code, hidden tests).

    Args:
        names: paths inside a wheel or source tree, "/"-separated.
    """
    return [name for name in names
            if name.split("/")[0] == "reference" or "hidden" in name.split("/")[:-1]]


def build_student_wheel(folder: str | Path) -> Path:
    """Build cvgrade for students (engine, public tests, template) as a wheel in ``folder``.

    The wheel is built from a staged copy of the source tree that leaves out ``reference/`` and every
    suite's ``hidden/`` folder, with ``pip wheel`` (no dependencies, no build isolation: nothing is
    downloaded); then it is opened and checked.

    Args:
        folder: where the wheel goes (it exists).

    Returns:
        The wheel's path, ``folder/cvgrade-<version>-py3-none-any.whl``.

    Raises:
        KitError: when this cvgrade has no source tree to build from (an installed wheel: give the course's
            install line instead), when pip fails (its last lines quoted), or when the built wheel holds a
            reference or hidden-test file.
    """
    root = paths.project_root()
    if not (root / "pyproject.toml").is_file():
        raise KitError(f"no source tree at {str(root)!r} to build cvgrade for students from (this cvgrade is "
                       "installed from a wheel): give the course's install line with --install")
    with tempfile.TemporaryDirectory(prefix="cvgrade-wheel-") as stage:
        for name in WHEEL_SOURCES:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, Path(stage) / name,
                                ignore=shutil.ignore_patterns("hidden", "__pycache__", "*.pyc", "*.egg-info"))
            elif source.is_file():
                shutil.copyfile(source, Path(stage) / name)
        before = set(Path(folder).glob("*.whl"))
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--disable-pip-version-check", "-w", str(folder), stage],
                              capture_output=True, text=True)
    built = sorted(set(Path(folder).glob("*.whl")) - before)
    if proc.returncode != 0 or len(built) != 1:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise KitError(f"pip could not build cvgrade's wheel (exit status {proc.returncode}):\n{tail}")
    with zipfile.ZipFile(built[0]) as wheel:
        secret = secret_entries(wheel.namelist())
    if secret:
        built[0].unlink()
        raise KitError(f"the built wheel holds files students must not get: {secret[:5]}")
    return built[0]


def _aligned(rows: list[tuple[str, str]]) -> str:
    width = max(len(command) for command, _ in rows) + 2
    return "\n".join(f"{command:<{width}}# {comment}" for command, comment in rows)


def readme_text(manifest: Manifest, install: str, public_tests: list[str] | None = None) -> str:
    """The kit's README: what to write, the one install line, and the commands to check one's work.

    Args:
        manifest: the assignment.
        install: the install command the course gives its students.
        public_tests: the public test files' texts (for example commands).
    """
    keyword, question = examples(public_tests or [])
    keyword, question = keyword or "name", question or "1"
    files = "\n".join(f"- `{name}`" for name in manifest.student_files)
    commands = _aligned([
        (f"cvgrade check {manifest.name}", "every public test, with explanations"),
        (f"cvgrade check {manifest.name} -k {keyword}", "only the tests whose names match"),
        (f"cvgrade check {manifest.name} --question {question}",
         f"only question {question} (tests {question}.1, {question}.2, ...)"),
        (f"cvgrade check {manifest.name} --no-sandbox", "your code in this process: breakpoint() stops in pdb"),
    ])
    return f"""# {manifest.title}

Fill in the `TODO`s (`raise NotImplementedError`) of:

{files}

You may write them as notebooks instead (`{Path(manifest.student_files[0]).stem}.ipynb`): their code cells,
in order, are the module.

## Install (once)

```bash
{install}
```

## Check your work

In this folder:

```bash
{commands}
```

From a notebook cell: `from cvgrade import check; check("{manifest.name}", "{keyword}")`.

`{PUBLIC_TESTS}/` holds the public tests that `cvgrade check` runs, for reading. The autograder also
runs hidden tests, so a full score here is not yet a full score.
"""


def build_kit(assignment: str, folder: str | Path, *, install: str | None = None) -> KitReport:
    """Write the student kit of ``assignment`` into ``folder`` (new or empty).

    Args:
        assignment: its name (see ``cvgrade list``).
        folder: where the kit goes; it must not hold files already.
        install: the install line for the README, when the course publishes cvgrade itself; None puts
            cvgrade's student wheel in the kit (``build_student_wheel``) and installs that.

    Raises:
        ManifestError: for an unknown assignment.
        KitError: when ``folder`` is a file or is not empty, there is no template, or the wheel cannot be built.
    """
    manifest = manifests.get(assignment)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise KitError(f"{str(folder)!r} is not an empty folder; give a new one")
    if install is not None and not install.strip():
        raise KitError(f"the install line must be a command, got {install!r}")
    sources = kit_sources(manifest)
    folder.mkdir(parents=True, exist_ok=True)
    report = KitReport(folder=folder)
    if install is None:
        wheel = build_student_wheel(folder)
        install = f"pip install ./{wheel.name}"
        report.files.append(wheel.name)
    for source, name in sources:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        report.files.append(name)
    tests = [source.read_text(encoding="utf-8") for source, name in sources if name.startswith(PUBLIC_TESTS)]
    (folder / "README.md").write_text(readme_text(manifest, install, tests), encoding="utf-8")
    report.files.append("README.md")
    return report

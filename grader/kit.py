"""``cvgrade kit``: the folder a student starts from.

A kit holds what a student needs and nothing that gives answers away::

    <files of student_template/<assignment>/>   the starter code to fill in (its README.md as ASSIGNMENT.md)
    public_tests/                               the public tests that ``cvgrade check`` runs, to read
    README.md                                   the install line and the check command

Nothing of ``reference/`` and no hidden test goes in: the kit is built from the
template and the suite's ``public/`` folder only.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from grader import __version__
from grader import manifest as manifests
from grader.manifest import Manifest
from grader.package import _tree

PUBLIC_TESTS = "public_tests"
DEFAULT_INSTALL = f"pip install cvgrade=={__version__}"
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


def _aligned(rows: list[tuple[str, str]]) -> str:
    width = max(len(command) for command, _ in rows) + 2
    return "\n".join(f"{command:<{width}}# {comment}" for command, comment in rows)


def readme_text(manifest: Manifest, install: str = DEFAULT_INSTALL, public_tests: list[str] | None = None) -> str:
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


def build_kit(assignment: str, folder: str | Path, *, install: str = DEFAULT_INSTALL) -> KitReport:
    """Write the student kit of ``assignment`` into ``folder`` (new or empty).

    Args:
        assignment: its name (see ``cvgrade list``).
        folder: where the kit goes; it must not hold files already.
        install: the install line for the README.

    Raises:
        ManifestError: for an unknown assignment.
        KitError: when ``folder`` is a file or is not empty, or there is no template.
    """
    manifest = manifests.get(assignment)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise KitError(f"{str(folder)!r} is not an empty folder; give a new one")
    if not install.strip():
        raise KitError(f"the install line must be a command, got {install!r}")
    sources = kit_sources(manifest)
    report = KitReport(folder=folder)
    for source, name in sources:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        report.files.append(name)
    tests = [source.read_text(encoding="utf-8") for source, name in sources if name.startswith(PUBLIC_TESTS)]
    (folder / "README.md").write_text(readme_text(manifest, install, tests), encoding="utf-8")
    report.files.append("README.md")
    return report

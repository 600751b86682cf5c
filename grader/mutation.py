"""Mutants: typical student bugs, applied to the reference, that a graded suite must catch.

A suite is only as good as the wrong answers it catches. Each assignment keeps a
list of mutants in ``tests/mutants/<assignment>/mutants.py``::

    MUTANTS = [
        Mutant("nms_ge", "detection_utils.py",
               find="above = inter.div_(union) > threshold",
               replace="above = inter.div_(union) >= threshold",
               select="nms", why=">= instead of > at the IoU threshold"),
    ]

``find`` must occur exactly once in the reference file; ``select`` is a pytest
``-k`` expression for the tests that should catch the bug (empty: the whole
suite). ``tests/test_mutants.py`` grades every mutant and requires that it
loses points.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path


class MutantError(ValueError):
    """A mutant that cannot be applied (its snippet is missing or ambiguous)."""


@dataclass(frozen=True)
class Mutant:
    """One typical student bug.

    Attributes:
        name: short identifier, unique within the assignment.
        file: the reference file to change, relative to the assignment folder.
        find: an exact snippet of that file (must occur once).
        replace: what the student wrote instead.
        select: pytest ``-k`` expression of the tests expected to catch it.
        why: the bug in words.
        profile: the manifest profile that grades the mutated code (None: the default profile).
    """

    name: str
    file: str
    find: str
    replace: str
    select: str = ""
    why: str = ""
    profile: str | None = None


def apply(source_dir: Path, mutant: Mutant, destination: Path) -> Path:
    """Copy ``source_dir`` to ``destination`` with the mutant applied.

    Raises:
        MutantError: when ``find`` does not occur exactly once.
    """
    source_dir, destination = Path(source_dir), Path(destination)
    shutil.copytree(source_dir, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    dirs_exist_ok=True)
    target = destination / mutant.file
    if not target.is_file():
        raise MutantError(f"mutant {mutant.name}: no file {mutant.file} in {source_dir}")
    text = target.read_text(encoding="utf-8")
    count = text.count(mutant.find)
    if count != 1:
        raise MutantError(f"mutant {mutant.name}: its snippet occurs {count} times in {mutant.file} "
                          f"(must be once): {mutant.find!r}")
    target.write_text(text.replace(mutant.find, mutant.replace), encoding="utf-8")
    return destination


def load(path: Path) -> list[Mutant]:
    """The ``MUTANTS`` list of a ``mutants.py`` file, with unique names checked."""
    spec = importlib.util.spec_from_file_location(f"_cvgrade_mutants_{Path(path).parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    mutants = list(getattr(module, "MUTANTS", []))
    names = [m.name for m in mutants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MutantError(f"{path}: duplicate mutant names {duplicates}")
    return mutants

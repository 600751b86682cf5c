"""Find a student's files in what they uploaded and lay them out for grading.

Students upload loose files, a zip, or a folder with their files one or more
levels down (``hw1/detection/detection_utils.py``). ``prepare`` finds each file
the manifest expects, copies it into a fresh folder at its expected place, adds
the course's own copies of the provided files (a submitted ``train.py`` never
replaces the course's), keeps extra ``.py`` modules that sit beside the student's
files (their own helpers), and reports what was missing, ambiguous or ignored.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grader.manifest import Manifest

IGNORED_DIRS = {"__MACOSX", "__pycache__", ".git", ".ipynb_checkpoints", ".idea", ".vscode", "node_modules"}
MAX_ZIP_MEMBERS = 5000
MAX_UNZIPPED_BYTES = 512 * 2**20
# Names a student helper module may not take: they would shadow libraries the grader needs.
_PROTECTED_MODULES = {"torch", "torchvision", "numpy", "scipy", "sklearn", "PIL", "matplotlib", "pytest",
                      "grader", "hypothesis", "tensorboard", "tqdm", "reference", "cvgrade"}


class SubmissionError(ValueError):
    """What was uploaded cannot be read at all (not a folder or zip, unsafe zip)."""


@dataclass
class PreparedSubmission:
    """A submission laid out for grading.

    Attributes:
        directory (Path): the folder the student's code runs from.
        found (dict[str, str]): expected file -> where it was found in the upload.
        missing (list[str]): expected student files that were not found.
        ambiguous (dict[str, list[str]]): expected file -> all candidates, when several.
        overridden (list[str]): submitted copies of course files that were ignored.
        extra_modules (list[str]): the student's own helper modules that were kept.
        ignored (list[str]): other uploaded files that play no part in grading.
        misnamed (dict[str, str]): missing file -> the uploaded file whose name is nearly its name.
        notebooks (list[str]): expected ``.py`` files that were made from an uploaded ``.ipynb``.
    """

    directory: Path
    found: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    overridden: list[str] = field(default_factory=list)
    extra_modules: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    misnamed: dict[str, str] = field(default_factory=dict)
    notebooks: list[str] = field(default_factory=list)

    def report(self) -> str:
        """A few lines for the student about what was found."""
        lines = []
        for expected, where in self.found.items():
            note = "" if where == expected else f" (found at {where})"
            if expected in self.notebooks:
                note = f" (from the notebook {where}: its code cells in order)"
            lines.append(f"found {expected}{note}")
        for expected, candidates in self.ambiguous.items():
            lines.append(f"several copies of {expected}: {', '.join(candidates)}; graded {self.found[expected]}")
        for name in self.missing:
            near = self.misnamed.get(name)
            hint = f"; you uploaded {near}: did you mean `{name}`? (rename it; names are case-sensitive)" \
                if near else ""
            lines.append(f"MISSING {name}: tests that need it score 0{hint}")
        for name in self.overridden:
            lines.append(f"ignored your {name}: the course's copy is used")
        if self.extra_modules:
            lines.append("kept your helper modules: " + ", ".join(self.extra_modules))
        if self.ignored:
            shown = self.ignored[:10]
            more = f" and {len(self.ignored) - 10} more" if len(self.ignored) > 10 else ""
            lines.append("not used for grading: " + ", ".join(shown) + more)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"found": self.found, "missing": self.missing, "ambiguous": self.ambiguous,
                "overridden": self.overridden, "extra_modules": self.extra_modules, "ignored": self.ignored,
                "misnamed": self.misnamed, "notebooks": self.notebooks}


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract a zip, refusing absolute paths, ``..``, links and zip bombs.

    Raises:
        SubmissionError: naming the offending member.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise SubmissionError(f"{archive.name}: {len(members)} files is more than {MAX_ZIP_MEMBERS}")
            total = sum(m.file_size for m in members)
            if total > MAX_UNZIPPED_BYTES:
                raise SubmissionError(f"{archive.name}: unpacks to {total} bytes, more than {MAX_UNZIPPED_BYTES}")
            root = destination.resolve()
            for member in members:
                name = member.filename
                pure = PurePosixPath(name)
                if name.startswith("/") or ".." in pure.parts or ":" in name.split("/")[0]:
                    raise SubmissionError(f"{archive.name}: unsafe path {name!r}")
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise SubmissionError(f"{archive.name}: symbolic link {name!r} is not allowed")
                target = (root / pure).resolve()
                if root != target and root not in target.parents:
                    raise SubmissionError(f"{archive.name}: unsafe path {name!r}")
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    except zipfile.BadZipFile as exc:
        raise SubmissionError(f"{archive.name}: not a readable zip file ({exc})") from None


def _walk(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files under root, skipping junk folders."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            files.append(full.relative_to(root).as_posix())
    return files


def _pick(expected: str, files: list[str]) -> list[str]:
    """Candidates for an expected relative path, best first (shallowest, then by name)."""
    candidates = [f for f in files if f == expected or f.endswith("/" + expected)]
    return sorted(candidates, key=lambda f: (f.count("/"), f))


def _write_notebook_module(notebook: Path, target: Path) -> None:
    """Write the module a student's notebook stands for (an unreadable notebook gives a module that says so)."""
    from grader.notebook import NotebookError, notebook_to_module

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = notebook_to_module(notebook.read_text(encoding="utf-8", errors="replace"), notebook.name)
    except NotebookError as exc:
        source = f"raise ImportError({str(exc)!r})\n"
    target.write_text(source, encoding="utf-8")


def near_name(expected: str, files: list[str]) -> str | None:
    """The uploaded file that was most likely meant as ``expected`` (another case, a typo), or None.

    Args:
        expected: the student file's relative path, e.g. ``"detection_utils.py"``.
        files: the uploaded files' relative paths.

    Returns:
        The shallowest file whose name matches ``expected``'s but for case, else the closest name of the
        same extension (difflib ratio 0.85 or more), else None.
    """
    name = Path(expected).name
    suffix = Path(expected).suffix.lower()
    same_case = [f for f in files if Path(f).name.lower() == name.lower() and Path(f).name != name]
    if same_case:
        return sorted(same_case, key=lambda f: (f.count("/"), f))[0]
    typed = [f for f in files if Path(f).suffix.lower() == suffix]
    close = difflib.get_close_matches(name.lower(), [Path(f).name.lower() for f in typed], n=1, cutoff=0.85)
    if not close:
        return None
    return sorted((f for f in typed if Path(f).name.lower() == close[0]), key=lambda f: (f.count("/"), f))[0]


def prepare(source: Path | str, manifest: Manifest, destination: Path | str | None = None,
            provided_from: Path | None = None) -> PreparedSubmission:
    """Lay out a submission for grading.

    Args:
        source: a folder or a ``.zip`` (a single zip inside the folder is opened too).
        manifest: the assignment's manifest.
        destination: an empty or new folder to fill; a temporary one when None.
        provided_from: where the course's copies of provided files come from
            (the student template by default).

    Raises:
        SubmissionError: when ``source`` does not exist or is not a folder or zip.
    """
    source = Path(source)
    if not source.exists():
        raise SubmissionError(f"no submission at {source}")
    dest = Path(destination) if destination else Path(tempfile.mkdtemp(prefix="cvgrade-submission-"))
    dest.mkdir(parents=True, exist_ok=True)
    provided_root = Path(provided_from) if provided_from else manifest.template_dir

    with tempfile.TemporaryDirectory(prefix="cvgrade-upload-") as scratch:
        upload = source
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise SubmissionError(f"{source.name} is neither a folder nor a zip file")
            upload = Path(scratch) / "upload"
            safe_extract(source, upload)
        files = _walk(upload)
        zips = [f for f in files if f.endswith(".zip")]
        if not any(_pick(e, files) for e in manifest.student_files) and len(zips) == 1:
            inner = Path(scratch) / "inner"
            safe_extract(upload / zips[0], inner)
            upload, files = inner, _walk(inner)

        result = PreparedSubmission(directory=dest)
        used: set[str] = set()
        student_dirs: set[str] = set()
        known = {Path(f).name for f in (*manifest.student_files, *manifest.provided_files, *manifest.optional_files)}
        for expected in manifest.student_files:
            candidates = _pick(expected, files)
            as_notebook = expected[: -len(".py")] + ".ipynb" if expected.endswith(".py") else ""
            notebooks = _pick(as_notebook, files) if as_notebook else []
            if not candidates and notebooks:
                result.found[expected] = notebooks[0]
                result.notebooks.append(expected)
                used.update(notebooks)
                student_dirs.add(notebooks[0][: len(notebooks[0]) - len(as_notebook)])
                _write_notebook_module(upload / notebooks[0], dest / expected)
                continue
            if not candidates:
                result.missing.append(expected)
                near = near_name(expected, [f for f in files if f not in used and Path(f).name not in known])
                if near is not None:
                    result.misnamed[expected] = near
                    used.add(near)  # not kept as a helper module: it was meant as the student file
                continue
            chosen = candidates[0]
            result.found[expected] = chosen
            if len(candidates) > 1:
                result.ambiguous[expected] = candidates
            used.update(candidates)
            prefix = chosen[: len(chosen) - len(expected)]
            student_dirs.add(prefix)
            target = dest / expected
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(upload / chosen, target)

        for expected in list(manifest.provided_files) + list(manifest.optional_files):
            for candidate in _pick(expected, files):
                used.add(candidate)
                if expected in manifest.provided_files and candidate not in result.overridden:
                    result.overridden.append(candidate)
            if expected in manifest.optional_files:
                candidates = _pick(expected, files)
                if candidates:
                    target = dest / expected
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(upload / candidates[0], target)

        course_names = {Path(f).name for f in (*manifest.student_files, *manifest.provided_files)}
        for rel in files:
            if rel in used:
                continue
            name = Path(rel).name
            parent = rel[: len(rel) - len(name)]
            stem = name[:-3] if name.endswith(".py") else ""
            if (stem and parent in student_dirs and stem.isidentifier() and name not in course_names
                    and stem not in _PROTECTED_MODULES and stem not in sys.stdlib_module_names):
                shutil.copyfile(upload / rel, dest / name)
                result.extra_modules.append(name)
            else:
                result.ignored.append(rel)

    for rel in manifest.provided_files:
        src = provided_root / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, dirs_exist_ok=True)
        elif src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    return result

"""Import the modules of one folder of course files (a submission or the reference).

Course files import each other by flat name, as in the handouts
(``from detection_utils import nms``). Two such folders in one process would
collide (both ``voc_classification`` and ``weak_localization`` have a
``utils.py``), so the trusted process loads the reference with ``isolated=True``:
the flat names exist in ``sys.modules`` only while the folder is being imported,
and the loaded modules keep their references to each other afterwards.

The worker that runs student code loads the submission with ``isolated=False``:
the folder stays on ``sys.path`` as if the student ran ``python train.py`` there.
"""

from __future__ import annotations

import importlib
import linecache
import os
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

_LOCK = threading.RLock()


class ModuleImportError(Exception):
    """A course module that could not be imported; ``str()`` is written for a student.

    Attributes:
        module (str): the module name, e.g. ``"one_stage_detector"``.
        filename (str): the file as the student knows it, e.g. ``"one_stage_detector.py"``.
        summary (str): one line, e.g. ``"SyntaxError at line 12: invalid syntax"``.
        details (str): the offending line or the traceback through the student's files.
    """

    def __init__(self, module: str, filename: str, summary: str, details: str = ""):
        self.module = module
        self.filename = filename
        self.summary = summary
        self.details = details
        text = f"Could not import {filename}: {summary}"
        if details:
            text += "\n" + details
        super().__init__(text)


def _local_modules(directory: Path) -> set[str]:
    names = set()
    for entry in directory.iterdir():
        if entry.suffix == ".py" and entry.is_file():
            names.add(entry.stem)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            names.add(entry.name)
    return names


def _belongs(name: str, local: set[str]) -> bool:
    return name.split(".", 1)[0] in local


def describe_exception(exc: BaseException, directory: Path | None) -> tuple[str, str]:
    """(summary line, details) of an exception, showing only frames in ``directory``."""
    if isinstance(exc, SyntaxError):
        line = exc.lineno or 0
        where = f" at line {line}" if line else ""
        filename = Path(exc.filename).name if exc.filename else "?"
        summary = f"{type(exc).__name__}{where} of {filename}: {exc.msg}"
        details = ""
        if exc.text:
            text = exc.text.rstrip("\n")
            details = "    " + text.strip()
            if exc.offset and exc.offset > 0:
                indent = len(text) - len(text.lstrip())
                details += "\n    " + " " * max(0, exc.offset - 1 - indent) + "^"
        return summary, details
    if isinstance(exc, SystemExit):
        return f"the code called sys.exit({exc.code!r}) while being imported", ""
    message = str(exc)
    summary = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return summary, format_student_traceback(exc, directory)


def format_student_traceback(exc: BaseException, directory: Path | None, limit: int = 12) -> str:
    """The traceback of ``exc`` through files under ``directory`` only, with relative names."""
    frames = traceback.extract_tb(exc.__traceback__)
    root = str(directory.resolve()) + os.sep if directory else None
    lines = []
    for frame in frames:
        filename = frame.filename
        if root is not None:
            try:
                resolved = str(Path(filename).resolve())
            except OSError:
                continue
            if not resolved.startswith(root):
                continue
            filename = resolved[len(root):]
        code = frame.line or linecache.getline(frame.filename, frame.lineno).strip()
        lines.append(f'  File "{filename}", line {frame.lineno}, in {frame.name}')
        if code:
            lines.append(f"    {code.strip()}")
    if len(lines) > 2 * limit:
        lines = lines[: limit] + ["  ..."] + lines[-limit:]
    return "\n".join(lines)


def load_modules(directory: Path | str, names: Iterable[str], *, isolated: bool = True) -> dict[str, ModuleType]:
    """Import ``names`` from ``directory`` and return them by name.

    Args:
        directory: the folder holding the course files.
        names: module names (``"detection_utils"`` for ``detection_utils.py``).
        isolated: when True the folder's flat module names are removed from
            ``sys.modules`` and ``sys.path`` afterwards (see the module docstring).

    Raises:
        ModuleImportError: for the first module that fails, with a message for
            the student (syntax errors point at the line; other errors show the
            traceback through the student's files only).
    """
    directory = Path(directory).resolve()
    names = list(names)
    with _LOCK:
        local = _local_modules(directory)
        saved = {n: m for n, m in sys.modules.items() if _belongs(n, local)}
        for n in saved:
            del sys.modules[n]
        sys.path.insert(0, str(directory))
        importlib.invalidate_caches()
        modules: dict[str, ModuleType] = {}
        try:
            for name in names:
                if name.split(".", 1)[0] not in local:
                    raise ModuleImportError(name, name.replace(".", "/") + ".py", "the file is missing")
                try:
                    modules[name] = importlib.import_module(name)
                except ModuleImportError:
                    raise
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - student code raises anything
                    summary, details = describe_exception(exc, directory)
                    raise ModuleImportError(name, name.replace(".", "/") + ".py", summary, details) from None
        finally:
            if isolated:
                try:
                    sys.path.remove(str(directory))
                except ValueError:
                    pass
                for n in [n for n in sys.modules if _belongs(n, local)]:
                    del sys.modules[n]
                sys.modules.update(saved)
    return modules

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

import ast
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
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


def load_modules(directory: Path | str, names: Iterable[str], *, isolated: bool = True,
                 definitions_only: Iterable[str] = (), definitions_on_error: bool = False) -> dict[str, ModuleType]:
    """Import ``names`` from ``directory`` and return them by name.

    Args:
        directory: the folder holding the course files.
        names: module names (``"detection_utils"`` for ``detection_utils.py``).
        isolated: when True the folder's flat module names are removed from
            ``sys.modules`` and ``sys.path`` afterwards (see the module docstring).
        definitions_only: module names always imported as their definitions only
            (``import_definitions``: script-style files that run their work when imported).
        definitions_on_error: when a plain import of a top-level file raises (not a
            ``SyntaxError``), import its definitions only instead. A module imported that way
            has ``__cvgrade_left_out__``: the statements left out, one line each.

    Raises:
        ModuleImportError: for the first module that fails, with a message for
            the student (syntax errors point at the line; other errors show the
            traceback through the student's files only).
    """
    directory = Path(directory).resolve()
    names = list(names)
    finder = DefinitionsFinder(directory, definitions_only)
    with _LOCK:
        installed = bool(finder.names) and not any(
            isinstance(f, DefinitionsFinder) and f.directory == finder.directory and f.names == finder.names
            for f in sys.meta_path)
        if installed:
            sys.meta_path.insert(0, finder)
        local = _local_modules(directory)
        # Isolated: the folder's modules are imported afresh and the previous ones put back afterwards.
        # Not isolated (the worker): a module this folder's files imported earlier stays, so that
        # trainer's ``import utils`` and a later import of ``utils`` are the same module; one of that
        # name from another folder (the reference's, in a --no-sandbox run) is dropped.
        saved = {n: m for n, m in sys.modules.items()
                 if _belongs(n, local) and (isolated or not _from_folder(m, directory))}
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
                    modules[name] = _import_one(name, directory, definitions_on_error)
                except ModuleImportError:
                    raise
                except (Exception, SystemExit) as exc:  # noqa: BLE001 - student code raises anything
                    summary, details = describe_exception(exc, directory)
                    raise ModuleImportError(name, name.replace(".", "/") + ".py", summary, details) from None
        finally:
            if installed and isolated:
                sys.meta_path.remove(finder)
            if isolated:
                try:
                    sys.path.remove(str(directory))
                except ValueError:
                    pass
                for n in [n for n in sys.modules if _belongs(n, local)]:
                    del sys.modules[n]
                sys.modules.update(saved)
    return modules


def _from_folder(module: ModuleType, directory: Path) -> bool:
    """Whether ``module`` was imported from a file under ``directory`` (a resolved path)."""
    filename = getattr(module, "__file__", None)
    if not filename:
        return False
    try:
        return Path(filename).resolve().is_relative_to(directory)
    except OSError:
        return False


def _import_one(name: str, directory: Path, on_error: bool) -> ModuleType:
    path = directory / f"{name}.py"
    try:
        return importlib.import_module(name)
    except (Exception, SystemExit) as original:
        # The file's own syntax error is never hidden; a sibling's (``import trainer``) is left out as the
        # definitions-only import leaves out any failing sibling import.
        own_syntax_error = isinstance(original, SyntaxError) and (
            not original.filename or Path(original.filename).resolve() == path.resolve())
        if own_syntax_error or not (on_error and "." not in name and path.is_file()):
            raise
        sys.modules.pop(name, None)
        try:
            module, left_out = import_definitions(name, path)
        except (Exception, SystemExit):  # noqa: BLE001 - the plain import's error is the one to show
            raise original from None
        return module


# Calls a definitions-only import still makes at the top level of a script-style file: building a constant.
_SAFE_CALLS = {"dict", "list", "tuple", "set", "frozenset", "range", "enumerate", "zip", "len", "sorted",
               "str", "int", "float", "bool", "reversed", "min", "max", "sum", "abs", "round"}


def _imported_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _is_main_guard(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) \
        and test.left.id == "__name__"


def _kept_statement(node: ast.stmt, libraries: set[str]) -> bool:
    """Whether a top-level statement is a definition: an import, a def or class, or a constant."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Try):
        return all(_kept_statement(n, libraries) for n in node.body)
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # a docstring
    if _configures_parser(node):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        for sub in ast.walk(node.value):
            if isinstance(sub, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
                return False
            if isinstance(sub, ast.Call):
                func = sub.func
                if isinstance(func, ast.Name) and func.id in _SAFE_CALLS:
                    continue
                root = func
                while isinstance(root, ast.Attribute):
                    root = root.value
                # torch.device(...), transforms.Compose([...]): a library's constructor, not the student's code
                if isinstance(root, ast.Name) and root.id in libraries and root is not func:
                    continue
                return False
        return True
    return False


_PARSER_METHODS = {"add_argument", "add_argument_group", "add_mutually_exclusive_group", "set_defaults"}


def _configures_parser(node: ast.stmt) -> bool:
    """``parser.add_argument(...)`` at the top level: argparse configuration, kept (the starters' scripts
    declare their hyper-parameters this way, and their functions read ``args``)."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in _PARSER_METHODS
            and isinstance(node.value.func.value, ast.Name))


def _imports_sibling(node: ast.stmt, folder: Path) -> bool:
    """Whether ``node`` imports a flat module of ``folder`` (``import trainer``, ``from utils import ARGS``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
        names = [node.module]
    else:
        return False
    return any((folder / f"{n.split('.')[0]}.py").is_file() for n in names)


def import_definitions(name: str, path: Path | str) -> tuple[ModuleType, list[str]]:
    """Import a script-style course file as its definitions only.

    Students' files often run their work when imported (argparse, building data sets from
    ``data/VOCdevkit``, training). This runs the file's imports, functions, classes and constants
    (assignments whose calls are only to builtins or to attributes of imported libraries) and
    argparse configuration (``parser.add_argument(...)``) in order, and leaves out everything else: the ``if __name__ == "__main__":`` block, bare calls,
    loops. A kept constant that raises (e.g. a data set path that does not exist here) is left
    out too, and so is an import of a sibling file of the folder that raises (``import trainer``
    in ``train_q2.py`` when ``trainer.py`` is broken: it is graded, and blamed, on its own).

    Args:
        name: the module's name (``"task_2"``); the module is put in ``sys.modules`` under it.
        path: the file.

    Returns:
        The module, and one line per left-out statement (``"line 40: train(args, model)"``).

    Raises:
        SyntaxError: when the file does not parse.
        Exception: whatever an import, def or class statement raises.
    """
    path = Path(path)
    module = ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    try:
        left_out = _exec_definitions(module, path)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    module.__cvgrade_left_out__ = left_out
    return module, left_out


def _exec_definitions(module: ModuleType, path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8", errors="replace")
    tree = ast.parse(source, filename=str(path))
    libraries = _imported_names(tree)
    lines = source.splitlines()
    left_out = []

    def describe(node: ast.stmt) -> str:
        text = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
        return f"line {node.lineno}: {text[:80]}"

    for node in tree.body:
        if _is_main_guard(node):
            continue
        if not _kept_statement(node, libraries):
            left_out.append(describe(node))
            continue
        code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
        if isinstance(node, (ast.Assign, ast.AnnAssign)) or _configures_parser(node) or \
                _imports_sibling(node, path.parent):
            try:
                exec(code, module.__dict__)  # noqa: S102 - the student's own file, in the worker
            except Exception:  # noqa: BLE001 - a constant that cannot be built here (or a sibling file that
                # fails to import: it is graded, and blamed, on its own) is left out
                left_out.append(describe(node) + " (raised here, left out)")
            continue
        exec(code, module.__dict__)  # noqa: S102
    return left_out


class _DefinitionsLoader(importlib.abc.Loader):
    """Executes a course file as its definitions only (see ``import_definitions``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__cvgrade_left_out__ = _exec_definitions(module, self.path)


class DefinitionsFinder(importlib.abc.MetaPathFinder):
    """Finds the named flat modules of one folder and imports them as definitions only, whoever imports
    them (``from voc_dataset import VOCDataset`` in another student file included)."""

    def __init__(self, directory: Path, names: Iterable[str]) -> None:
        self.directory = Path(directory)
        self.names = set(names)

    def find_spec(self, fullname: str, path: object = None, target: object = None):
        candidate = self.directory / f"{fullname}.py"
        if fullname in self.names and candidate.is_file() and self._first_on_path(fullname):
            return importlib.util.spec_from_file_location(fullname, candidate, loader=_DefinitionsLoader(candidate))
        return None

    def _first_on_path(self, fullname: str) -> bool:
        """Whether a plain ``import fullname`` would find this folder's file: no folder before it on
        ``sys.path`` holds one (in a --no-sandbox run another submission's folder may come first)."""
        mine = self.directory.resolve()
        for entry in sys.path:
            folder = Path(entry or ".")
            if (folder / f"{fullname}.py").is_file() or (folder / fullname / "__init__.py").is_file():
                try:
                    return folder.resolve() == mine
                except OSError:
                    return False
        return False

"""Jupyter notebooks as student files, and ``check`` for a notebook cell.

A notebook ``detection_utils.ipynb`` stands for ``detection_utils.py`` when no
``.py`` of that name is uploaded: its code cells, in order, become the module.
IPython-only lines (``%magic``, ``!shell``, ``%%cell`` magics that are not Python)
are dropped, since plain Python cannot run them; a script-style cell is graded as
a script-style module is (its definitions are kept when its top level fails, where
the manifest allows).

From a notebook cell, a student checks the saved notebooks of the current folder::

    from cvgrade import check
    check("fcos_detection", "centerness")
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# Cell magics whose body is still Python (kept without the magic line); every other %%magic cell is dropped.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
_LINE_MAGIC = re.compile(r"^\s*[%!]")


class NotebookError(ValueError):
    """A notebook that cannot be read as one (the message names the file)."""


def code_cells(notebook: dict, name: str = "notebook") -> list[str]:
    """The sources of a notebook's code cells, in order.

    Args:
        notebook: the notebook's JSON (nbformat 4).
        name: its file name, for errors.

    Raises:
        NotebookError: when ``notebook`` has no list of cells.
    """
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise NotebookError(f"{name} is not a Jupyter notebook (no 'cells' list)")
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        sources.append("".join(source) if isinstance(source, list) else str(source))
    return sources


def python_of_cell(source: str) -> str:
    """A code cell as plain Python: line magics and shell lines dropped, non-Python cell magics emptied.

    Args:
        source: the cell's text.

    Returns:
        The cell's Python ("" when nothing of it is Python).
    """
    lines = source.splitlines()
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        if magic not in PYTHON_CELL_MAGICS:
            return ""
        lines = lines[1:]
    return "\n".join(line for line in lines if not _LINE_MAGIC.match(line))


def notebook_to_module(text: str, name: str = "notebook") -> str:
    """The module a notebook stands for: its code cells, in order, each headed by a ``# cell N`` comment.

    Args:
        text: the ``.ipynb`` file's text.
        name: its file name, for errors.

    Raises:
        NotebookError: for a file that is not a notebook's JSON.
    """
    try:
        notebook = json.loads(text)
    except ValueError as exc:
        raise NotebookError(f"{name} is not a Jupyter notebook (not JSON: {exc})") from None
    parts = [f"# cell {index}\n{python_of_cell(source)}\n"
             for index, source in enumerate(code_cells(notebook, name), start=1)]
    return f"# from {name}: its code cells in order (IPython magics and shell lines dropped)\n" + "\n".join(parts)


def module_to_notebook(source: str) -> dict:
    """A notebook (nbformat 4) whose code cells, in order, are ``source`` split before each top-level statement
    that starts a definition (for tests and for students who want a notebook of a template).

    Args:
        source: a module's text.
    """
    cells: list[list[str]] = [[]]
    for line in source.splitlines(keepends=True):
        if re.match(r"(def |class |async def |@)", line) and cells[-1] and not cells[-1][-1].startswith("@"):
            cells.append([])
        cells[-1].append(line)
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
            "cells": [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                       "source": cell} for cell in cells if cell]}


def check(assignment: str, keyword: str | None = None, *, question: str | int | None = None,
          folder: str | Path = ".", profile: str | None = None, sandbox: bool = True) -> Any:
    """Run the public tests of ``assignment`` on the saved files of ``folder`` and print what failed.

    For a notebook cell (``from cvgrade import check``); save the notebook first, since the
    saved ``.ipynb`` (or ``.py``) files are what is checked.

    Args:
        assignment: its name, e.g. ``"fcos_detection"``.
        keyword: only the tests whose names match this pytest ``-k`` expression, e.g. ``"centerness"``.
        question: only this question's tests (numbered so or below, e.g. ``3`` or ``"3.1"``).
        folder: the folder with your files (default: the notebook's folder).
        profile: the assignment's profile (default: its default).
        sandbox: False runs your code in this process.

    Returns:
        The ``grader.api.GradeResult`` (its ``score``, ``max_score``, ``tests``).
    """
    from grader import api

    result = api.check(assignment, folder, sandbox=sandbox, profile=profile, keyword=keyword,
                       questions=[] if question is None else [question])
    print(report_text(result))
    return result


def report_text(result: Any) -> str:
    """Plain text of a check for a notebook's output: the score, then each failure once."""
    from grader.cli import failure_groups

    if result.unmatched:
        return f"No public test matches {result.unmatched}."
    hidden = f"; {result.hidden_points:g} more points are in hidden tests" if result.hidden_points else ""
    lines = [f"Score {result.score:g} / {result.max_score:g}{hidden}"]
    lines += [f"  {'ok  ' if t.get('status') == 'passed' else 'FAIL'} {t.get('number', ''):>5} {t.get('name')}"
              for t in result.tests]
    for names, output in failure_groups(result.failed):
        lines += ["", "-- " + "; ".join(names), output]
    return "\n".join(lines)

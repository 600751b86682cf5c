"""Build ``student_template/`` from ``reference/`` by stripping solution regions.

Markers (each alone on its line; anything that looks like a marker but is not
one of these is an error, as are unbalanced, nested or mis-indented markers)::

    # BEGIN SOLUTION            the region becomes
    ...                         raise NotImplementedError("TODO: <function>")
    # END SOLUTION              at the indentation of the BEGIN line

    # BEGIN SOLUTION NO PROMPT  the region is removed, nothing replaces it
    ...
    # END SOLUTION

    # BEGIN PROMPT              commented lines that are uncommented in the
    # loss = None  # TODO       template; a prompt directly before a solution
    # END PROMPT                region replaces that region's ``raise``

``<function>`` is the qualified name of the innermost function around the
region (``FCOS.forward``), or the file's module name at top level. Files
without markers are copied byte for byte; a file whose first lines contain
``# cvgrade: reference-only`` (or that a manifest lists under
``reference_only``) never reaches the template. The result must parse as Python.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader import paths

MARKER = re.compile(r"^(?P<indent>[ \t]*)#[ \t]*(?P<kind>BEGIN|END)[ \t]+(?P<what>SOLUTION|PROMPT)"
                    r"(?P<noprompt>[ \t]+NO[ \t]+PROMPT)?[ \t]*$")
NEAR_MARKER = re.compile(r"^[ \t]*#[ \t]*(BEGIN|END)\b", re.IGNORECASE)
REFERENCE_ONLY = "# cvgrade: reference-only"
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".pyo")


class MarkerError(ValueError):
    """A solution marker problem; ``str()`` starts with ``file:line:``."""


@dataclass
class _Region:
    kind: str  # "solution" | "solution-noprompt" | "prompt"
    start: int  # 0-based line index of BEGIN
    end: int  # 0-based line index of END
    indent: str


def _regions(lines: list[str], filename: str) -> list[_Region]:
    regions: list[_Region] = []
    open_region: tuple[str, int, str] | None = None
    for index, line in enumerate(lines):
        text = line.rstrip("\r\n")
        match = MARKER.match(text)
        if match is None:
            if NEAR_MARKER.match(text):
                raise MarkerError(f"{filename}:{index + 1}: malformed marker {text.strip()!r}; expected "
                                  "'# BEGIN SOLUTION', '# BEGIN SOLUTION NO PROMPT', '# END SOLUTION', "
                                  "'# BEGIN PROMPT' or '# END PROMPT'")
            continue
        kind, what, indent = match["kind"], match["what"], match["indent"]
        noprompt = bool(match["noprompt"])
        if noprompt and (kind == "END" or what == "PROMPT"):
            raise MarkerError(f"{filename}:{index + 1}: 'NO PROMPT' only follows '# BEGIN SOLUTION'")
        if kind == "BEGIN":
            if open_region is not None:
                raise MarkerError(f"{filename}:{index + 1}: '# BEGIN {what}' inside the region opened at line "
                                  f"{open_region[1] + 1}; regions cannot nest")
            region_kind = "prompt" if what == "PROMPT" else ("solution-noprompt" if noprompt else "solution")
            open_region = (region_kind, index, indent)
            continue
        if open_region is None:
            raise MarkerError(f"{filename}:{index + 1}: '# END {what}' without a matching '# BEGIN {what}'")
        region_kind, start, start_indent = open_region
        expected = "PROMPT" if region_kind == "prompt" else "SOLUTION"
        if what != expected:
            raise MarkerError(f"{filename}:{index + 1}: '# END {what}' closes the '# BEGIN {expected}' "
                              f"of line {start + 1}")
        if indent != start_indent:
            raise MarkerError(f"{filename}:{index + 1}: '# END {what}' is indented differently from its "
                              f"'# BEGIN' at line {start + 1}")
        regions.append(_Region(region_kind, start, index, start_indent))
        open_region = None
    if open_region is not None:
        raise MarkerError(f"{filename}:{open_region[1] + 1}: '# BEGIN' region is never closed")
    return regions


def _qualnames(tree: ast.AST) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function, 1-based."""
    found: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def _enclosing(functions: list[tuple[int, int, str]], line: int, default: str) -> str:
    best = None
    for first, last, name in functions:
        if first <= line <= last and (best is None or first >= best[0]):
            best = (first, last, name)
    return best[2] if best else default


def _uncomment(line: str, indent: str, filename: str, number: int) -> str:
    stripped = line.rstrip("\r\n")
    ending = line[len(stripped):]
    if not stripped.strip():
        return line
    if not stripped.startswith(indent) or not stripped[len(indent):].startswith("#"):
        raise MarkerError(f"{filename}:{number}: lines in a PROMPT region must be comments at the region's "
                          "indentation")
    body = stripped[len(indent) + 1:]
    if body.startswith(" "):
        body = body[1:]
    return indent + body + ending


def strip_solutions(source: str, filename: str = "<source>") -> str:
    """The template version of one Python file.

    Raises:
        MarkerError: for malformed, unbalanced, nested or mis-indented markers,
            or when the reference or the result is not valid Python.
    """
    lines = source.splitlines(keepends=True)
    regions = _regions(lines, filename)
    if not regions:
        return source
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise MarkerError(f"{filename}:{exc.lineno}: the reference is not valid Python: {exc.msg}") from None
    functions = _qualnames(tree)
    module = Path(filename).stem
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    out: list[str] = []
    cursor = 0
    previous_prompt_end: int | None = None
    for region in regions:
        out.extend(lines[cursor:region.start])
        if region.kind == "prompt":
            for offset, line in enumerate(lines[region.start + 1:region.end]):
                out.append(_uncomment(line, region.indent, filename, region.start + 2 + offset))
            previous_prompt_end = region.end
        elif region.kind == "solution":
            between = lines[previous_prompt_end + 1:region.start] if previous_prompt_end is not None else None
            follows_prompt = between is not None and all(not line.strip() for line in between)
            if not follows_prompt:
                name = _enclosing(functions, region.start + 1, module)
                out.append(f'{region.indent}raise NotImplementedError("TODO: {name}"){newline}')
            previous_prompt_end = None
        else:
            previous_prompt_end = None
            cursor = region.end + 1
            if out and not out[-1].strip():  # do not leave a double gap where the region was
                while cursor < len(lines) and not lines[cursor].strip() and not MARKER.match(lines[cursor]):
                    cursor += 1
            continue
        cursor = region.end + 1
    out.extend(lines[cursor:])
    result = "".join(out)
    try:
        ast.parse(result, filename=filename)
    except SyntaxError as exc:
        raise MarkerError(f"{filename}:{exc.lineno}: the template would not be valid Python ({exc.msg}); "
                          "check the regions around this line") from None
    return result


def _is_reference_only(path: Path, data: bytes, patterns: list[str], relative: str) -> bool:
    if any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p) for p in patterns):
        return True
    if path.suffix == ".py":
        head = data[:2000].decode("utf-8", errors="replace").splitlines()[:5]
        return any(line.strip() == REFERENCE_ONLY for line in head)
    return False


def _reference_only_patterns() -> dict[str, list[str]]:
    from grader import manifest as manifests

    return {name: list(m.reference_only) for name, m in manifests.discover().items()}


def render(reference_root: Path | None = None, patterns: dict[str, list[str]] | None = None) -> dict[str, bytes]:
    """Every file of the template tree: relative POSIX path -> bytes."""
    root = Path(reference_root) if reference_root else paths.reference_root()
    patterns = _reference_only_patterns() if patterns is None else patterns
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative_parts = path.relative_to(root).parts
        if any(part in SKIP_DIRS for part in relative_parts) or not path.is_file():
            continue
        if path.name.endswith(SKIP_SUFFIXES):
            continue
        relative = path.relative_to(root).as_posix()
        assignment = relative_parts[0] if len(relative_parts) > 1 else ""
        data = path.read_bytes()
        within = "/".join(relative_parts[1:]) if assignment else relative
        if _is_reference_only(path, data, patterns.get(assignment, []), within):
            continue
        if path.suffix == ".py":
            text = data.decode("utf-8")
            files[relative] = strip_solutions(text, filename=f"reference/{relative}").encode("utf-8")
        else:
            files[relative] = data
    return files


@dataclass
class BuildReport:
    """What ``build`` wrote or, with ``check``, what differs."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    diff: str = ""

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.extra)


def _existing(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not any(p in SKIP_DIRS for p in path.relative_to(root).parts) \
                and not path.name.endswith(SKIP_SUFFIXES):
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def build(check: bool = False, reference_root: Path | None = None, template_root: Path | None = None,
          patterns: dict[str, list[str]] | None = None) -> BuildReport:
    """Write ``student_template/`` (or, with ``check``, report how the committed one differs).

    Raises:
        MarkerError: for any marker problem, naming the file and line.
    """
    target = Path(template_root) if template_root else paths.template_root()
    expected = render(reference_root, patterns)
    current = _existing(target)
    report = BuildReport()
    diffs = []
    for relative, data in expected.items():
        if relative not in current:
            report.missing.append(relative)
        elif current[relative] != data:
            report.stale.append(relative)
            try:
                diffs.extend(difflib.unified_diff(
                    current[relative].decode("utf-8").splitlines(keepends=True),
                    data.decode("utf-8").splitlines(keepends=True),
                    fromfile=f"student_template/{relative} (committed)",
                    tofile=f"student_template/{relative} (from reference)"))
            except UnicodeDecodeError:
                diffs.append(f"binary file student_template/{relative} differs\n")
    report.extra = sorted(set(current) - set(expected))
    report.diff = "".join(diffs)
    if check:
        return report
    for relative in report.missing + report.stale:
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(expected[relative])
        report.written.append(relative)
    for relative in report.extra:
        (target / relative).unlink()
        report.removed.append(relative)
    for directory in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()
    return report

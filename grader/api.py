"""The typed API behind the ``cvgrade`` command line.

``grade`` runs an assignment's suite on a submission in a separate pytest
process (so that nothing a test or a worker does can stop ``results.json`` from
being written), checks the file against the Gradescope schema, and writes a
valid fallback when the run could not produce one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader import container, paths
from grader import manifest as manifests
from grader.manifest import Manifest


@dataclass
class GradeResult:
    """The outcome of one grading run.

    Attributes:
        results (dict): the Gradescope results (as written to ``path``).
        path (Path | None): where ``results.json`` was written (None: nowhere kept, see ``check``).
        returncode (int): the pytest process's exit status (informational).
        log (str): the tail of pytest's own output, for staff.
        unmatched (str): for a ``-k`` / question selection that matched no test, the selection in words.
        hidden_points (float): for a public run (``check``), the profile's points that only hidden tests carry.
    """

    results: dict
    path: Path | None
    returncode: int
    log: str = ""
    unmatched: str = ""
    hidden_points: float = 0.0

    @property
    def score(self) -> float:
        return float(self.results.get("score", 0.0))

    @property
    def max_score(self) -> float:
        return float(sum(t.get("max_score", 0.0) for t in self.results.get("tests", [])))

    @property
    def tests(self) -> list[dict]:
        return list(self.results.get("tests", []))

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.tests if t.get("status") == "failed"]


@dataclass
class Progress:
    """A progress event: one finished test, or the number collected."""

    done: int
    total: int | None
    last: dict = field(default_factory=dict)


class SelectionError(ValueError):
    """A ``-k`` expression or ``--question`` number that cannot select tests (the message quotes it)."""


class StudentInstallError(RuntimeError):
    """Grading asked of a student install of cvgrade (no hidden tests, no reference: ``cvgrade check`` only)."""


def require_grader_install(manifest: Manifest) -> None:
    """Check that this install can grade ``manifest``: its hidden tests and its reference are here.

    A distribution of cvgrade (a wheel, ``pip install .``, a student kit) carries the public tests only;
    the course's grader (a clone of the repository, the Gradescope zip) carries all three trees.

    Raises:
        StudentInstallError: naming what is missing and what to run instead.
    """
    missing = [str(path) for path in (manifest.suite_dir / "hidden", manifest.reference_dir) if not path.is_dir()]
    if missing:
        raise StudentInstallError(
            f"this cvgrade cannot grade {manifest.name}: {' and '.join(repr(m) for m in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not here (a student install has only the public tests). "
            f"Students: 'cvgrade check {manifest.name}'. Graders: run cvgrade from a clone of the course's "
            "repository or from its Gradescope zip")


@dataclass(frozen=True)
class Selection:
    """Which tests of a suite to run: a pytest ``-k`` expression and/or question numbers.

    Attributes:
        keyword: a pytest ``-k`` expression over test names (None: every test).
        questions: test numbers ("4", "4.1"); a test runs when its number is one of them or below one.
    """

    keyword: str | None = None
    questions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keyword) or bool(self.questions)

    def pytest_args(self) -> list[str]:
        """The pytest arguments that make this selection."""
        args = ["-k", self.keyword] if self.keyword else []
        return args + [f"--question={q}" for q in self.questions]

    def describe(self) -> str:
        """The selection in words, e.g. ``-k 'nms' and question 4``."""
        parts = [f"-k {self.keyword!r}"] if self.keyword else []
        if self.questions:
            parts.append(f"question {', '.join(self.questions)}")
        return " and ".join(parts)


def make_selection(keyword: str | None = None, questions: Sequence[str | int | float] = ()) -> Selection:
    """A checked ``Selection``.

    Args:
        keyword: a pytest ``-k`` expression (blank: none).
        questions: test numbers such as 4 or "4.1".

    Raises:
        SelectionError: for a number that is not a test number, or an empty ``-k`` expression.
    """
    if keyword is not None and not keyword.strip():
        raise SelectionError(f"-k needs an expression such as 'nms', got {keyword!r}")
    from grader.plugin import QUESTION_PATTERN

    cleaned = []
    for question in questions:
        text = str(question).strip()
        if not QUESTION_PATTERN.fullmatch(text):
            raise SelectionError(f"--question must be a test number such as 4 or 4.1, got {question!r}")
        cleaned.append(text)
    return Selection(keyword=keyword.strip() if keyword else None, questions=tuple(cleaned))


def list_assignments() -> list[Manifest]:
    """Every assignment the suites folder defines, by name."""
    return list(manifests.discover().values())


def _tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def validate_results(data: Any) -> list[str]:
    """Problems with a results dict against the Gradescope schema (empty when valid)."""
    import jsonschema

    schema = json.loads(paths.SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in validator.iter_errors(data)]


def fallback_results(message: str, partial: dict | None = None, summary: str | None = None) -> dict:
    """Valid results that say why grading failed, keeping any valid tests already recorded.

    ``summary`` replaces the generic top line shown to the student (e.g. for a misconfigured grader).
    """
    from grader.plugin import safe_output

    tests = []
    if partial and isinstance(partial.get("tests"), list):
        tests = [t for t in partial["tests"] if isinstance(t, dict) and not validate_results(
            {"tests": [t]})]
    tests.append({"name": "Grading could not finish", "name_format": "text", "score": 0.0, "max_score": 0.0,
                  "status": "failed", "output": safe_output(message[-8000:]), "output_format": "text",
                  "visibility": "visible", "extra_data": {"outcome": "grader_error"}})
    return {
        "score": round(sum(float(t.get("score", 0.0)) for t in tests), 6),
        "output": summary or "The autograder ran into a problem; your score may be incomplete. Course staff "
                             "can see the details.",
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {"finished": False, "generator": "cvgrade"},
        "tests": tests,
        "leaderboard": [],
    }


def grade(assignment: str, submission: str | Path | None = None, out: str | Path = "results.json", *,
          public_only: bool = False, sandbox: bool = True, workers: int | None = None,
          extra_args: list[str] | None = None, on_progress: Callable[[Progress], None] | None = None,
          timeout: float | None = None, metadata: str | Path | None = None,
          profile: str | None = None, keyword: str | None = None,
          questions: Sequence[str | int | float] = (), debugger: bool = False) -> GradeResult:
    """Grade one submission of ``assignment`` and write Gradescope's results.json.

    Args:
        assignment: its name (see ``list_assignments``).
        submission: a folder or zip; ``None`` or ``"reference"`` grades the
            reference, ``"template"`` the student template.
        out: where results.json goes (always written).
        public_only: run the public tests only (``cvgrade check``).
        sandbox: run student code in the sandboxed worker (grading always does).
        workers: pytest-xdist processes (None: one process).
        extra_args: more pytest arguments.
        on_progress: called after each finished test.
        timeout: seconds for the whole run; None uses 4x the suite's test timeout.
        metadata: Gradescope's ``submission_metadata.json``; when given, the
            manifest's late penalty and submission limit are applied.
        profile: which of the manifest's profiles to grade (None: its default).
        keyword: run only the tests a pytest ``-k`` expression selects (e.g. ``"nms"``).
        questions: run only the tests numbered so or below (``["4"]`` runs 4.1, 4.2, ...).
        debugger: run pytest and the student's code in this process with the terminal attached (no
            sandbox, no capture, no time limits): ``breakpoint()`` in student code stops in pdb.

    Raises:
        ManifestError: for an unknown assignment or profile.
        SelectionError: for a bad ``keyword`` or ``questions`` (before anything runs).
        StudentInstallError: for a full grading where this install has no hidden tests or reference.
    """
    selection = make_selection(keyword, questions)
    manifest = manifests.get(assignment)
    chosen = manifest.profile(profile)
    if not public_only:
        require_grader_install(manifest)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    target = manifest.suite_dir / "public" if public_only else manifest.suite_dir
    sub = "reference" if submission is None else str(submission)
    if sub not in ("reference", "template"):
        sub = str(Path(sub).resolve())
    progress_file = Path(tempfile.mkstemp(prefix="cvgrade-progress-", suffix=".jsonl")[1])
    # The plugin is loaded by module name, not through cvgrade's pytest11 entry point: a Gradescope image
    # runs the zip's grader/ from PYTHONPATH, where no installed distribution registers it. Blocking the
    # entry point's name keeps an installed cvgrade from registering the same module twice.
    args = [sys.executable, "-m", "pytest", str(target), "-p", "no:cvgrade", "-p", "grader.plugin",
            "-p", "no:cacheprovider", "-o", "addopts=",
            "-q", "--no-header", "-rN", f"--rootdir={paths.project_root()}",
            f"--results-json={out}", f"--submission={sub}", f"--progress-file={progress_file}",
            f"--timeout={int(manifest.grading.test_timeout)}", "-W", "ignore::DeprecationWarning"]
    args.append(f"--profile={chosen.name}")
    if not public_only and not selection:  # a selection carries only some of the points
        args.append(f"--expected-points={chosen.points}")
    args += selection.pytest_args()
    if not sandbox or debugger:
        args.append("--no-sandbox")
    if debugger:
        args += ["--debugger", "--capture=no", "--timeout=0"]
    if workers and workers > 1:
        args += ["-n", str(workers)]
    args += list(extra_args or [])
    env = dict(os.environ)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    # A fixed hash seed: the grading process, and the workers forked from it, hash strings the same way at
    # every grading (grader.sandbox.forkserver starts only with it).
    env["PYTHONHASHSEED"] = "0"
    if out.exists():
        out.unlink()
    limit = timeout if timeout is not None else max(600.0, 4 * manifest.grading.test_timeout)
    stop = threading.Event()
    watcher = None
    timed_out = False
    if on_progress is not None:
        watcher = threading.Thread(target=_watch_progress, args=(progress_file, on_progress, stop), daemon=True)
        watcher.start()
    oom_before = container.oom_kills()
    try:
        if debugger:
            returncode, log = _run_attached(args[3:]), ""
        else:
            proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=limit,
                                  cwd=str(paths.project_root()))
            returncode, log = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = -9
        timed_out = True
        log = f"grading ran past {limit:g} s and was stopped\n" + ((exc.stdout or b"").decode(errors="replace")
                                                                   if isinstance(exc.stdout, bytes) else str(exc.stdout or ""))
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=2)
        if on_progress is not None:
            _emit_progress(progress_file, on_progress)
        progress_file.unlink(missing_ok=True)
    results = _load_valid(out)
    if results is None:
        partial = None
        try:
            partial = json.loads(out.read_text())
        except (OSError, ValueError):
            pass
        results = fallback_results("The grading run did not produce valid results.\n" + _tail(log), partial)
        _write(out, results)
    if container.oom_kills() > oom_before:
        # The machine's out-of-memory killer struck during the grading: say so first, whichever process it hit.
        message = container.out_of_memory_message(container.read_limits(), manifest.gradescope.container_bytes)
        if message not in str(results.get("output", "")):
            results = {**results, "output": f"{message}\n{results.get('output', '')}".rstrip("\n")}
            _write(out, results)
    if timed_out:
        results = {**results, "output": f"Grading was stopped after {limit:g} s, the time limit of a whole "
                                         f"grading.\n{results.get('output', '')}".rstrip("\n")}
        _write(out, results)
    unmatched = ""
    if selection and not any((t.get("extra_data") or {}).get("nodeid") for t in results.get("tests", [])):
        unmatched = f"{selection.describe()} in profile {chosen.name}"
        results = {**results, "output": f"No test matches {unmatched}.\n"
                                        f"{results.get('output', '')}".rstrip("\n")}
        _write(out, results)
    if metadata is not None:
        results = _with_policies(results, manifest, Path(metadata))
        _write(out, results)
    return GradeResult(results=results, path=out, returncode=returncode, log=_tail(log, 200), unmatched=unmatched)


def _run_attached(pytest_args: list[str]) -> int:
    """Run pytest in this process, on this terminal (a debugger's run), from the project root."""
    import pytest

    here = os.getcwd()
    os.chdir(paths.project_root())
    try:
        return int(pytest.main(pytest_args))
    finally:
        os.chdir(here)


def _with_policies(results: dict, manifest: Manifest, metadata_path: Path) -> dict:
    from grader.policies import apply_policies

    try:
        metadata = json.loads(metadata_path.read_text())
    except (OSError, ValueError) as exc:
        results = dict(results)
        results["output"] = f"(submission metadata unreadable, no course policies applied: {exc})\n" + \
            str(results.get("output", ""))
        return results
    return apply_policies(results, manifest.gradescope, metadata if isinstance(metadata, dict) else None)


def check(assignment: str, submission: str | Path = ".", out: str | Path | None = None, *, sandbox: bool = True,
          on_progress: Callable[[Progress], None] | None = None, profile: str | None = None,
          keyword: str | None = None, questions: Sequence[str | int | float] = (),
          debugger: bool = False) -> GradeResult:
    """Run the public tests of ``assignment`` on a student's own code (``cvgrade check``).

    Without ``out`` the results are written to a temporary folder that is removed
    before returning (the result's ``path`` is then None; ``results`` holds them).
    ``keyword``, ``questions`` and ``debugger`` as in ``grade``.
    """
    options = dict(public_only=True, sandbox=sandbox, on_progress=on_progress, profile=profile, keyword=keyword,
                   questions=questions, debugger=debugger)
    if out is not None:
        result = grade(assignment, submission, out, **options)
    else:
        with tempfile.TemporaryDirectory(prefix="cvgrade-check-") as folder:
            result = replace(grade(assignment, submission, Path(folder) / "results.json", **options), path=None)
    if keyword or questions:
        return result  # a selection: the points outside it are not all hidden
    hidden = hidden_points(manifests.get(assignment).profile(profile).points, result.max_score)
    return replace(result, hidden_points=hidden, results={**result.results, "output": with_hidden_points(
        str(result.results.get("output", "")), hidden)})


def hidden_points(profile_points: float, public_points: float) -> float:
    """The points of a profile that its public tests do not carry (0 when none, or on rounding noise)."""
    hidden = round(float(profile_points) - float(public_points), 6)
    return hidden if hidden > 1e-6 else 0.0


def with_hidden_points(summary: str, hidden: float) -> str:
    """``summary`` with its ``Score: x / y`` line saying how many more points the hidden tests carry.

    Example: ``Score: 2 / 30`` becomes ``Score 2 / 30; 30 more points are in hidden tests``.
    """
    if hidden <= 0:
        return summary
    return re.sub(r"^Score: (\S+ / \S+)$", lambda m: f"Score {m.group(1)}; {hidden:g} more points are in hidden tests",
                  summary, count=1, flags=re.MULTILINE)


def build_template(check: bool = False) -> Any:
    """Regenerate ``student_template/`` (or report how it differs, with ``check``)."""
    from grader import template

    return template.build(check=check)


def _load_valid(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if not validate_results(data) else None


def _write(path: Path, data: dict) -> None:
    from grader.plugin import write_json_atomic

    write_json_atomic(path, data)


def _emit_progress(progress_file: Path, on_progress: Callable[[Progress], None], seen: list[int] | None = None) -> int:
    try:
        lines = progress_file.read_text().splitlines()
    except OSError:
        return 0
    total = None
    done = 0
    last: dict = {}
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if "collected" in event:
            total = int(event["collected"])
        else:
            done += 1
            last = event
    if seen is None or done != seen[0]:
        on_progress(Progress(done=done, total=total, last=last))
        if seen is not None:
            seen[0] = done
    return done


def _watch_progress(progress_file: Path, on_progress: Callable[[Progress], None], stop: threading.Event) -> None:
    seen = [-1]
    while not stop.wait(0.2):
        _emit_progress(progress_file, on_progress, seen)

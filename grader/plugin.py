"""pytest plugin: any pytest run becomes Gradescope's ``results.json``; tests reach student code through fixtures.

Registered under the ``pytest11`` entry point, so it is loaded in every pytest
run of an environment where cvgrade is installed. It stays inert (and cheap: only
the standard library and pytest are imported here) until a run asks for
``--results-json`` or a test asks for one of its fixtures.

Test metadata comes from the ``gradescope_utils`` decorators (``@weight``,
``@number``, ``@visibility``, ``@tags``, ``@hide_errors``, ``@partial_credit`` with
``set_score``, ``@leaderboard`` with ``set_leaderboard_value``) or from the
equivalent markers (``@pytest.mark.weight(2)``, ``@pytest.mark.number("1.2")``,
``@pytest.mark.visibility("hidden")``, ``@pytest.mark.tags("nms")``,
``@pytest.mark.hide_errors("...")``, ``@pytest.mark.partial_credit(4)``,
``@pytest.mark.leaderboard("mAP", order="desc")``). A parametrized test splits its
points evenly across its cases. Every outcome becomes a record: pass, fail,
setup/teardown error, skip, xfail/xpass, timeout, collection error.

Options (each mirrored as an ini key, the command line wins):

    --results-json PATH        results_json        where to write results.json
    --submission DIR           submission          student code: a folder, a zip, "reference" or "template"
    --no-sandbox               sandbox = false     import student code in-process (debugging only)
    --default-visibility V     default_visibility  results and tests without their own (visible)
    --hidden-visibility V      hidden_visibility   tests under hidden/ (default: the manifest's)
    --stdout-visibility V      stdout_visibility   Gradescope's stdout_visibility (hidden)
    --student-output MODE      student_output      show or hide what student code printed (show)
    --output-limit N           output_limit        characters kept per test output (8000)
    --expected-points X        expected_points     add a record for points that no test carried
    --progress-file PATH       progress_file       append one JSON line per finished test
"""

from __future__ import annotations

import json
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
OUTPUT_FORMATS = ("text", "html", "simple_format", "md", "ansi")
DEFAULT_OUTPUT_LIMIT = 8000
TOTAL_OUTPUT_LIMIT = 60000

# -- options -----------------------------------------------------------------

_OPTIONS: list[tuple[str, str, dict, str, Any]] = [
    # (flag, ini name, addoption kwargs, help, ini default)
    ("--results-json", "results_json", {"metavar": "PATH"},
     "write Gradescope's results.json to PATH (always written, even when the run errors out)", None),
    ("--submission", "submission", {"metavar": "DIR"},
     "student code to grade: a folder, a zip, 'reference' (default) or 'template'", None),
    ("--default-visibility", "default_visibility", {"choices": VISIBILITIES},
     "visibility of the results and of tests that declare none", "visible"),
    ("--hidden-visibility", "hidden_visibility", {"choices": VISIBILITIES},
     "visibility of tests under a hidden/ folder (default: the assignment manifest's)", None),
    ("--stdout-visibility", "stdout_visibility", {"choices": ("hidden", "visible")},
     "Gradescope's stdout_visibility for the run's own output", "hidden"),
    ("--student-output", "student_output", {"choices": ("show", "hide")},
     "whether what student code printed is shown in each test's output", "show"),
    ("--output-limit", "output_limit", {"type": int, "metavar": "N"},
     "characters kept in each test's output (head and tail)", str(DEFAULT_OUTPUT_LIMIT)),
    ("--expected-points", "expected_points", {"type": float, "metavar": "X"},
     "points the run should carry; a record holds the points of tests that could not run", None),
    ("--progress-file", "progress_file", {"metavar": "PATH"},
     "append one JSON line per finished test to PATH (for progress displays)", None),
    ("--profile", "profile", {"metavar": "NAME"},
     "grade this profile of the assignment (its manifest's [profiles]; default: its default_profile)", None),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cvgrade", "Gradescope results and student code (cvgrade)")
    for flag, ini, kwargs, help_text, default in _OPTIONS:
        group.addoption(flag, dest=ini, default=None, help=f"{help_text} [ini: {ini}]", **kwargs)
        parser.addini(ini, help_text, default=default)
    group.addoption("--no-sandbox", dest="no_sandbox", action="store_true", default=False,
                    help="import student code in this process, for a debugger; never use it to grade "
                         "[ini: sandbox = false]")
    parser.addini("sandbox", "run student code in a sandboxed worker process", type="bool", default=True)
    group.addoption("--debugger", dest="debugger", action="store_true", default=False,
                    help="with --no-sandbox: leave student code's stdin/stdout on the terminal (breakpoint() "
                         "stops in pdb) instead of capturing what it prints")
    group.addoption("--question", dest="questions", action="append", default=[], metavar="N",
                    help="run only the tests numbered N or N.x (number marker / @number); repeatable")


def get_option(config: pytest.Config, name: str) -> Any:
    """Command-line value of a cvgrade option, else its ini value (pytest-timeout's rule)."""
    value = config.getoption(name, default=None)
    if value is None:
        value = config.getini(name)
        if value == "" or value == []:
            value = None
    return value


def _typed_option(config: pytest.Config, name: str, kind: type, choices: tuple = ()) -> Any:
    value = get_option(config, name)
    if value is None:
        return None
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"cvgrade: {name} must be a {kind.__name__}, got {value!r}") from None
    if choices and value not in choices:
        raise pytest.UsageError(f"cvgrade: {name} must be one of {list(choices)}, got {value!r}")
    return value


def sandbox_enabled(config: pytest.Config) -> bool:
    return not config.getoption("no_sandbox", default=False) and bool(config.getini("sandbox"))


# -- state ---------------------------------------------------------------------

@dataclass
class _Phase:
    outcome: str
    info: dict


@dataclass
class _PendingTest:
    phases: dict = field(default_factory=dict)


class ResultsCollector:
    """Collects records from test reports and writes results.json (controller process only)."""

    def __init__(self, config: pytest.Config, path: Path | None):
        self.config = config
        self.path = path
        self.start = time.time()
        self.records: list[dict] = []
        self.leaderboard: list[dict] = []
        self.pending: dict[str, _PendingTest] = {}
        self.collection_errors: list[dict] = []
        self.assignments: dict[str, dict] = {}
        self.notes: list[str] = []
        self.finished = False
        self.exitstatus: int | None = None
        self.sandbox: dict = {}
        self.default_visibility = _typed_option(config, "default_visibility", str, VISIBILITIES) or "visible"
        self.stdout_visibility = _typed_option(config, "stdout_visibility", str, ("hidden", "visible")) or "hidden"
        self.expected_points = _typed_option(config, "expected_points", float)
        progress = get_option(config, "progress_file")
        self.progress_path = Path(progress) if progress else None

    # hooks (the collector is registered as a plugin in the controller) ----------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.add_report(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.add_collection_error(report)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.progress_path is not None:
            with open(self.progress_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"collected": len(session.items)}) + "\n")

    def pytest_internalerror(self, excrepr: Any, excinfo: Any) -> None:
        self.add_internal_error(str(excrepr))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.finished = True
        self.exitstatus = int(exitstatus)
        state = session.config.stash.get(STATE, None)
        for name, summary in self.assignments.items():
            if state is not None:
                summary["submission"] = state.submission_report(name)
        if state is not None:
            self.sandbox = state.sandbox_report()
        self.write(force=True)

    # records -----------------------------------------------------------------
    def add_report(self, report: pytest.TestReport) -> None:
        info = {}
        for key, value in report.user_properties:
            if key == "cvgrade":
                info = value
        pending = self.pending.setdefault(report.nodeid, _PendingTest())
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        if report.skipped and not info.get("message") and not hasattr(report, "wasxfail"):
            info = dict(info, message=_skip_reason(report))
        if report.failed and not info.get("message"):
            info = dict(info, message=_clip(report.longreprtext or "failed", 4000))
        pending.phases[report.when] = _Phase(outcome, info)
        if report.when == "teardown":
            self._finish(report.nodeid, self.pending.pop(report.nodeid))

    def _finish(self, nodeid: str, pending: _PendingTest) -> None:
        setup = pending.phases.get("setup")
        call = pending.phases.get("call")
        teardown = pending.phases.get("teardown")
        meta = dict(setup.info.get("meta", {})) if setup else {}
        if not meta:
            meta = {"name": nodeid, "max_score": 0.0, "visibility": self.default_visibility}
        max_score = float(meta.get("max_score") or 0.0)
        output_parts: list[str] = []
        counted = True
        outcome = "passed"
        score = max_score
        message = ""
        if setup is None or setup.outcome == "failed":
            outcome, score = "error", 0.0
            message = "The test could not start.\n" + (setup.info.get("message", "") if setup else "")
        elif setup.outcome in ("skipped",):
            outcome, counted = "skipped", False
            message = f"Skipped, not counted: {setup.info.get('message', '')}"
        elif call is None:
            outcome, score = "error", 0.0
            message = "The test did not run."
        elif call.outcome == "passed":
            set_score = call.info.get("score")
            score = max_score if set_score is None else set_score
        elif call.outcome == "failed":
            outcome = "failed"
            set_score = call.info.get("score")
            score = 0.0 if set_score is None else set_score
            message = call.info.get("message", "")
            if meta.get("hide_errors") is not None:
                message = meta["hide_errors"]
        elif call.outcome == "xfailed":
            outcome, counted = "xfailed", False
            message = "Expected to fail and failed; not counted."
        elif call.outcome == "xpassed":
            outcome, counted = "xpassed", False
            message = "Expected to fail but passed; not counted."
        elif call.outcome == "skipped":
            outcome, counted = "skipped", False
            message = f"Skipped, not counted: {call.info.get('message', '')}"
        if message:
            output_parts.append(message.rstrip())
        if teardown is not None and teardown.outcome == "failed":
            output_parts.append("The grader hit an error while cleaning up after this test (this does not "
                                "change your score):\n" + teardown.info.get("message", ""))
        printed = "".join(p.info.get("printed", "") for p in (setup, call, teardown) if p is not None)
        if printed and meta.get("student_output", "show") == "show":
            output_parts.append("--- your code printed ---\n" + printed.rstrip())
        if not counted:
            max_score = 0.0
            score = 0.0
        score = min(max(float(score), 0.0), max_score) if max_score > 0 else 0.0
        status = "passed" if (score >= max_score - 1e-9 and outcome not in ("failed", "error")) or not counted \
            else "failed"
        leaderboard = meta.get("leaderboard")
        if leaderboard is not None:
            value = call.info.get("leaderboard_value") if call is not None else None
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                self.notes.append(f"Leaderboard column {leaderboard[0]!r} got no value ({nodeid}).")
            else:
                entry = {"name": leaderboard[0], "value": value}
                if leaderboard[1]:
                    entry["order"] = leaderboard[1]
                self.leaderboard.append(entry)
            self._progress(nodeid, meta, "leaderboard", 0.0, 0.0)
            return
        limit = int(meta.get("output_limit") or DEFAULT_OUTPUT_LIMIT)
        record: dict[str, Any] = {
            "name": meta.get("name") or nodeid,
            "name_format": "text",
            "score": score,
            "max_score": max_score,
            "status": status,
            "output": _clip("\n\n".join(output_parts), limit),
            "output_format": "text",
            "visibility": meta.get("visibility") or self.default_visibility,
            "extra_data": {"nodeid": nodeid, "outcome": outcome},
        }
        if meta.get("number"):
            record["number"] = str(meta["number"])
        if meta.get("tags"):
            record["tags"] = list(meta["tags"])
        if meta.get("gpu_only"):
            record["extra_data"]["gpu_only"] = True
        if meta.get("assignment"):
            record["extra_data"]["assignment"] = meta["assignment"]
            if meta["assignment"] not in self.assignments:
                self.assignments[meta["assignment"]] = {"submission": meta.get("submission"),
                                                        "container": _container_note(meta["assignment"])}
            summary = self.assignments[meta["assignment"]]
            summary.setdefault("nodeids", 0)
            summary["nodeids"] += 1
            if meta.get("profile"):
                summary["profile"] = meta["profile"]
        if not counted:
            record["extra_data"]["declared_max_score"] = float(meta.get("max_score") or 0.0)
        self.records.append(record)
        self._progress(nodeid, meta, outcome, record["score"], record["max_score"])
        self.write()

    def _progress(self, nodeid: str, meta: dict, outcome: str, score: float, max_score: float) -> None:
        if self.progress_path is None:
            return
        line = json.dumps({"nodeid": nodeid, "name": meta.get("name"), "outcome": outcome, "score": score,
                           "max_score": max_score})
        with open(self.progress_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def add_collection_error(self, report: pytest.CollectReport) -> None:
        text = report.longreprtext or "collection failed"
        hidden = "/hidden/" in f"/{report.nodeid}"
        self.collection_errors.append({"nodeid": report.nodeid, "text": text})
        self.records.append({
            "name": f"Grader could not load {report.nodeid or 'the tests'}",
            "name_format": "text",
            "score": 0.0,
            "max_score": 0.0,
            "status": "failed",
            "output": _clip("The grader itself failed to load these tests; this is not your fault. Please tell "
                            "the course staff.\n\n" + text, DEFAULT_OUTPUT_LIMIT),
            "output_format": "text",
            "visibility": "after_published" if hidden else self.default_visibility,
            "extra_data": {"nodeid": report.nodeid, "outcome": "collection_error"},
        })
        self.write(force=True)

    def add_internal_error(self, text: str) -> None:
        self.records.append({
            "name": "Grader internal error", "name_format": "text", "score": 0.0, "max_score": 0.0,
            "status": "failed", "output": _clip(text, DEFAULT_OUTPUT_LIMIT), "output_format": "text",
            "visibility": "after_published", "extra_data": {"outcome": "internal_error"},
        })
        self.write(force=True)

    # output ------------------------------------------------------------------
    def results(self) -> dict:
        # Gradescope lists tests in file order; put numbered ones in natural number order (1.2 < 1.10).
        tests = sorted(self.records, key=_number_key)
        for name in list(self.pending):  # started, never finished (the run stopped inside a test)
            tests.append({
                "name": name, "name_format": "text", "score": 0.0, "max_score": 0.0, "status": "failed",
                "output": "This test started but the run stopped before it finished.", "output_format": "text",
                "visibility": self.default_visibility, "extra_data": {"nodeid": name, "outcome": "interrupted"},
            })
        carried = sum(t["max_score"] for t in tests) + sum(
            t["extra_data"].get("declared_max_score", 0.0) for t in tests)
        if self.expected_points is not None and carried < self.expected_points - 1e-6:
            missing = self.expected_points - carried
            why = ("the run stopped before these tests ran" if not self.finished
                   else "some tests could not be loaded or run")
            tests.append({
                "name": "Tests that did not run", "name_format": "text", "score": 0.0,
                "max_score": round(missing, 6), "status": "failed",
                "output": f"{missing:g} points belong to tests that did not produce a result ({why}).",
                "output_format": "text", "visibility": self.default_visibility,
                "extra_data": {"outcome": "missing_points"},
            })
        score = round(sum(t["score"] for t in tests), 6)
        max_score = round(sum(t["max_score"] for t in tests), 6)
        lines = [summary["container"] for _name, summary in sorted(self.assignments.items())
                 if summary.get("container")]
        if not self.finished:
            lines.append("Grading did not finish; the results below are from the tests that ran before it stopped.")
        lines.append(f"Score: {score:g} / {max_score:g}")
        counts: dict[str, int] = {}
        for t in tests:
            counts[t["extra_data"].get("outcome", "?")] = counts.get(t["extra_data"].get("outcome", "?"), 0) + 1
        lines.append(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        for name, summary in sorted(self.assignments.items()):
            if summary.get("profile"):
                lines.append(f"{name} graded in profile {summary['profile']}")
            if summary.get("submission"):
                lines.append(f"\n{name}:\n{summary['submission']}")
        lines.extend(self.notes)
        data = {
            "score": score,
            "execution_time": int(round(time.time() - self.start)),
            "output": _clip("\n".join(lines), TOTAL_OUTPUT_LIMIT),
            "output_format": "text",
            "test_output_format": "text",
            "test_name_format": "text",
            "visibility": self.default_visibility,
            "stdout_visibility": self.stdout_visibility,
            "extra_data": {"max_score": max_score, "counts": counts, "finished": self.finished,
                           "pytest_exitstatus": self.exitstatus, "generator": "cvgrade", "sandbox": self.sandbox,
                           "profiles": {name: summary["profile"] for name, summary in sorted(self.assignments.items())
                                        if summary.get("profile")},
                           "container": _container_limits()},
            "tests": tests,
            "leaderboard": list(self.leaderboard),
        }
        return data

    def write(self, force: bool = False) -> None:
        """Rewrite results.json (after every test: a run killed mid-way still leaves valid results)."""
        if self.path is None:
            return
        write_json_atomic(self.path, self.results())


def _number_key(record: dict) -> tuple:
    return number_sort_key(record.get("number"))


def number_sort_key(number: Any) -> tuple:
    """A sort key that puts test numbers in natural order (1.3 < 2.1 < 10.1), numbered before unnumbered.

    Args:
        number: a test number such as "1.3" (None or "" when the test has none).
    """
    if not number:
        return (1, ())
    parts = []
    for part in str(number).split("."):
        parts.append((0, int(part), "") if part.isdigit() else (1, 0, part))
    return (0, tuple(parts))


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to ``path`` and rename it into place (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, allow_nan=False, default=str)
        fh.write("\n")
    os.replace(tmp, path)


QUESTION_PATTERN = re.compile(r"\d+(\.\d+)*")  # a test number: 4, 4.1, 4.1.2
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_output(text: str) -> str:
    """``text`` with every control character but newline and tab written as an escape (``\\x1b``).

    What student code prints (or puts in an exception message) reaches results.json and a TA's
    terminal: escape sequences there could clear the screen, set the title or write the clipboard.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # progress bars: one line per update
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _clip(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, control characters escaped."""
    text = safe_output(text)
    if len(text) <= limit:
        return text
    keep = max(0, limit - 80)
    head, tail = text[: keep * 2 // 3], text[-(keep // 3):] if keep // 3 else ""
    return f"{head}\n... [{len(text) - len(head) - len(tail)} characters not shown] ...\n{tail}"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
    return str(longrepr or "")


# -- per-item metadata -----------------------------------------------------------

_CASES = pytest.StashKey[tuple]()  # (index of this case, number of cases) of a parametrized test
_PRINTED = pytest.StashKey[list]()
_SCORE = pytest.StashKey[dict]()
STATE = pytest.StashKey["SessionState"]()
PROFILES = pytest.StashKey[dict]()  # assignment name -> the grader.manifest.Profile this run grades
_PROFILE = pytest.StashKey[str]()  # "<name> (<points> points: <parts>)" of an item's profile
COLLECTOR = pytest.StashKey[ResultsCollector]()


def _underlying(obj: Any) -> Any:
    return getattr(obj, "__func__", obj)


def _declared(item: pytest.Item, attr: str, marker: str) -> Any:
    """A decorator attribute on the test function, else the closest marker's first argument."""
    obj = getattr(item, "obj", None)
    value = getattr(obj, attr, None) if obj is not None else None
    if value is not None:
        return value
    mark = item.get_closest_marker(marker)
    if mark is None:
        return None
    if marker == "tags":
        return tuple(mark.args)
    if marker == "leaderboard":
        return mark
    return mark.args[0] if mark.args else mark.kwargs.get("value", True)


def _test_name(item: pytest.Item) -> str:
    obj = getattr(item, "obj", None)
    doc = getattr(obj, "__doc__", None) if obj is not None else None
    first = doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
    callspec = getattr(item, "callspec", None)
    suffix = f" [{callspec.id}]" if callspec is not None else ""
    if first:
        return first + suffix
    cls = getattr(item, "cls", None)
    name = getattr(item, "originalname", item.name)
    if cls is not None and any(c.__name__ == "TestCase" and c.__module__ == "unittest.case" for c in cls.__mro__):
        return f"{name} ({cls.__module__}.{cls.__qualname__}.{name})"
    manifest = _manifest_for_item(item)
    if manifest is not None:
        try:
            relative = Path(str(item.path)).resolve().relative_to(manifest.suite_dir.resolve()).as_posix()
        except ValueError:
            return item.nodeid
        return f"{relative}::{item.nodeid.split('::', 1)[1]}" if "::" in item.nodeid else relative
    return item.nodeid


def _suite_kind(item: pytest.Item) -> str | None:
    parts = Path(str(item.path)).parts
    if "hidden" in parts:
        return "hidden"
    if "public" in parts:
        return "public"
    return None


def _item_meta(item: pytest.Item) -> dict:
    config = item.config
    weight = _declared(item, "__weight__", "weight")
    if weight is None:
        weight = _declared(item, "__weight__", "points")
    if weight is None:
        weight = _declared(item, "__weight__", "partial_credit")
    try:
        weight = float(weight) if weight is not None else 0.0
    except (TypeError, ValueError):
        raise pytest.UsageError(f"{item.nodeid}: weight must be a number, got {weight!r}") from None
    index, count = item.stash.get(_CASES, (0, 1))
    number = _declared(item, "__number__", "number")
    if number is not None and count > 1:
        number = f"{number}.{index + 1}"
    manifest = _manifest_for_item(item)
    if item.get_closest_marker("cuda") is not None and manifest is not None and not manifest.grading.gpu:
        weight = 0.0  # graded on CPUs: a CUDA check is reported where a GPU happens to be, never counted
    visibility = _declared(item, "__visibility__", "visibility")
    if visibility is None:
        kind = _suite_kind(item)
        if kind == "hidden":
            visibility = _typed_option(config, "hidden_visibility", str, VISIBILITIES) or (
                manifest.grading.hidden_visibility if manifest else "after_due_date")
        elif kind == "public" and manifest is not None:
            visibility = manifest.grading.public_visibility
    if visibility is not None and visibility not in VISIBILITIES:
        raise pytest.UsageError(f"{item.nodeid}: visibility must be one of {list(VISIBILITIES)}, got {visibility!r}")
    leaderboard = None
    column = getattr(getattr(item, "obj", None), "__leaderboard_column__", None)
    if column is not None:
        leaderboard = (column, getattr(item.obj, "__leaderboard_sort_order__", None))
    else:
        mark = item.get_closest_marker("leaderboard")
        if mark is not None:
            leaderboard = (mark.args[0] if mark.args else mark.kwargs["column"],
                           mark.kwargs.get("order", mark.args[1] if len(mark.args) > 1 else None))
    tags = _declared(item, "__tags__", "tags")
    hide = _declared(item, "__hide_errors__", "hide_errors")
    student_output = _typed_option(config, "student_output", str, ("show", "hide")) or "show"
    meta = {
        "name": _test_name(item),
        "max_score": weight / count,
        "number": number,
        "visibility": visibility,
        "tags": list(tags) if tags else None,
        "hide_errors": str(hide) if hide is not None else None,
        "leaderboard": leaderboard,
        "student_output": student_output,
        "output_limit": _typed_option(config, "output_limit", int) or DEFAULT_OUTPUT_LIMIT,
    }
    if item.get_closest_marker("cuda") is not None and manifest is not None and not manifest.grading.gpu:
        meta["gpu_only"] = True  # a check that counts only on a GPU assignment (listed, never counted here)
    if manifest is not None:
        meta["assignment"] = manifest.name
        if _PROFILE in item.stash:
            meta["profile"] = item.stash[_PROFILE]
    return meta


def _container_limits() -> dict:
    """This machine's container limits for extra_data (None where there is none)."""
    from grader import container

    limits = container.read_limits()
    return {"memory_limit": limits.memory_limit, "cpus": limits.cpus}


def _container_note(assignment: str) -> str | None:
    """A warning when this machine's container is smaller than ``assignment`` needs (``grader.container``)."""
    from grader import container
    from grader import manifest as manifests

    try:
        need = manifests.get(assignment).gradescope.container_bytes
    except manifests.ManifestError:
        return None
    return container.too_small_note(container.read_limits(), need, assignment)


def _manifest_for_item(item: pytest.Item) -> Any:
    from grader import manifest as manifests

    try:
        return manifests.for_path(item.path)
    except manifests.ManifestError as exc:
        raise pytest.UsageError(str(exc)) from None


def _failure_message(excinfo: pytest.ExceptionInfo) -> str:
    """What a student should read about an exception raised in a test."""
    exc = excinfo.value
    typename = excinfo.typename
    names = {c.__name__ for c in type(exc).__mro__}
    if names & {"StudentCodeError", "GradingFailure"}:
        return str(exc)
    if typename == "Failed":  # pytest.fail(), pytest-timeout
        text = str(exc)
        if text.startswith("Timeout"):
            return f"The test ran past its time limit ({text.split('>', 1)[-1].strip()}). Your code may be too " \
                   "slow or stuck in a loop."
        return text
    if isinstance(exc, AssertionError):
        text = str(exc)
        return text if text else "A check failed."
    text = str(exc)
    return f"The test failed with {typename}: {text}" if text else f"The test failed with {typename}"


# -- hooks -----------------------------------------------------------------------

def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "weight(points): points of this test (split across parametrized cases)",
        "points(points): alias of weight",
        "number(str): Gradescope test number, e.g. '1.2'",
        "visibility(v): visible, hidden, after_due_date or after_published",
        "tags(*names): Gradescope tags",
        "hide_errors(message): show this message instead of the failure text",
        "partial_credit(points): points of a test that calls set_score",
        "leaderboard(column, order='desc'): a leaderboard column set with set_leaderboard_value",
        "sandbox(call_timeout=None): limits for calls into student code during this test",
        "cuda: a CUDA check: counted only where the manifest says grading.gpu = true (an error without a device there); elsewhere weight 0, skipped without a device",
        "part(name): the part of the assignment this test grades (default 'main'); a profile in the "
        "manifest says which parts it grades",
    ):
        config.addinivalue_line("markers", line)
    _typed_option(config, "default_visibility", str, VISIBILITIES)
    _typed_option(config, "hidden_visibility", str, VISIBILITIES)
    _typed_option(config, "student_output", str, ("show", "hide"))
    _typed_option(config, "output_limit", int)
    # First, before this process holds anything a worker must not see (results collector, scratch, tests).
    config.stash[STATE] = SessionState(config, *_start_fork_server(config))
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller writes the results
    path = get_option(config, "results_json")
    if path or get_option(config, "progress_file"):
        # Grading: one test file that fails to import must not stop the others from running.
        config.option.continue_on_collection_errors = True
        collector = ResultsCollector(config, Path(path) if path else None)
        config.stash[COLLECTOR] = collector
        config.pluginmanager.register(collector, "cvgrade-results")
        collector.write(force=True)


def _start_fork_server(config: pytest.Config) -> tuple[Any, str]:
    """A fork server for this grading's workers (``grader.sandbox.forkserver``), or None and why not.

    Only for a grading (``--results-json`` or ``--progress-file``) in the sandbox: a plain ``pytest`` run
    of the project's tests starts its workers as before.
    """
    grading = get_option(config, "results_json") or get_option(config, "progress_file")
    if not grading or not sandbox_enabled(config):
        return None, "not a sandboxed grading"
    from grader.sandbox.forkserver import ForkServer, ForkServerError

    try:
        return ForkServer.start(), ""
    except (ForkServerError, OSError) as exc:
        return None, str(exc)


def _part(item: pytest.Item) -> str:
    from grader.manifest import MAIN_PART

    mark = item.get_closest_marker("part")
    if mark is None:
        return MAIN_PART
    name = mark.args[0] if mark.args else mark.kwargs.get("name")
    if not isinstance(name, str) or not name:
        raise pytest.UsageError(f"{item.nodeid}: part(name) needs a part name, got {name!r}")
    return name


def _select_profile(config: pytest.Config, items: list) -> None:
    """Deselect the tests of parts that the chosen profile of their assignment does not grade."""
    from grader.manifest import ManifestError

    wanted = _typed_option(config, "profile", str)
    chosen: dict[str, Any] = config.stash.setdefault(PROFILES, {})
    kept, dropped = [], []
    for item in items:
        manifest = _manifest_for_item(item)
        if manifest is None:
            kept.append(item)
            continue
        if manifest.name not in chosen:
            try:
                chosen[manifest.name] = manifest.profile(wanted)
            except ManifestError as exc:
                raise pytest.UsageError(f"cvgrade: --profile: {exc}") from None
        part = _part(item)
        if part not in manifest.parts:
            raise pytest.UsageError(f"{item.nodeid}: part({part!r}) is graded by no profile of {manifest.name}; "
                                    f"its parts are {sorted(manifest.parts)}")
        profile = chosen[manifest.name]
        item.stash[_PROFILE] = f"{profile.name} ({profile.points:g} points: {', '.join(profile.parts)})"
        (kept if part in profile.parts else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Number the cases of each parametrized test before a profile or -k/-m deselect any (so points split evenly
    over all the cases a test declares), then keep the chosen profile's tests."""
    groups: dict[tuple, list] = {}
    for item in items:
        if getattr(item, "callspec", None) is None:
            continue
        key = (item.parent.nodeid if item.parent else "", getattr(item, "originalname", item.name))
        groups.setdefault(key, []).append(item)
    for group in groups.values():
        for index, item in enumerate(group):
            item.stash[_CASES] = (index, len(group))
    _select_profile(config, items)
    _select_questions(config, items)


def question_matches(number: Any, question: str) -> bool:
    """Whether a test numbered ``number`` belongs to ``question`` ("4" holds 4, 4.1, 4.2.3; "4.1" holds 4.1.x).

    Args:
        number: the test's declared number (None when it declares none).
        question: the question, e.g. "4" or "4.1".

    Returns:
        True for the question itself and every sub-number below it.
    """
    if number is None:
        return False
    text = str(number)
    return text == question or text.startswith(question + ".")


def _select_questions(config: pytest.Config, items: list) -> None:
    """Deselect the tests whose declared number is not one of ``--question``'s (none given: keep all)."""
    questions = [str(q).strip() for q in config.getoption("questions", default=None) or []]
    if not questions:
        return
    for question in questions:
        if not QUESTION_PATTERN.fullmatch(question):
            raise pytest.UsageError(f"cvgrade: --question must be a test number such as 4 or 4.1, got {question!r}")
    kept, dropped = [], []
    for item in items:
        number = _declared(item, "__number__", "number")
        (kept if any(question_matches(number, q) for q in questions) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None:
        import torch

        if not torch.cuda.is_available():
            manifest = _manifest_for_item(item)
            if manifest is not None and manifest.grading.gpu:
                pytest.fail(f"Grader configuration error: {manifest.name}'s assignment.toml says grading.gpu = "
                            "true, but this grading machine has no CUDA device (torch.cuda.is_available() is "
                            "False). These points could not be earned here; this is not about your code. "
                            "Course staff: grade on a GPU machine, or set grading.gpu = false.", pytrace=False)
            pytest.skip("needs a CUDA device (none here); not counted")
    obj = getattr(item, "obj", None)
    func = _underlying(obj)
    for attr in ("__score__", "__leaderboard_value__"):
        if func is not None and attr in getattr(func, "__dict__", {}):
            try:
                delattr(func, attr)
            except AttributeError:
                pass
    item.stash[_SCORE] = {}
    item.stash[_PRINTED] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    info: dict = {}
    if call.when == "setup":
        try:
            info["meta"] = _item_meta(item)
        except pytest.UsageError as exc:
            info["meta"] = {"name": item.nodeid, "max_score": 0.0}
            info["message"] = f"Grader configuration error: {exc}"
    if call.excinfo is not None and not report.skipped:
        info["message"] = _failure_message(call.excinfo)
    if call.when == "call":
        scores = item.stash.get(_SCORE, {})
        func = _underlying(getattr(item, "obj", None))
        score = scores.get("score", getattr(func, "__score__", None))
        if "fraction" in scores:
            try:
                score = scores["fraction"] * _item_meta(item)["max_score"]
            except pytest.UsageError:
                score = None
        if score is not None:
            info["score"] = float(score)
        value = scores.get("leaderboard_value", getattr(func, "__leaderboard_value__", None))
        if value is not None:
            info["leaderboard_value"] = value
    printed = item.stash.get(_PRINTED, [])
    if printed:
        info["printed"] = "".join(printed)
        printed.clear()
    report.user_properties.append(("cvgrade", info))
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR, None)
    if collector is not None:
        collector.write(force=True)
        config.pluginmanager.unregister(collector)
    state = config.stash.get(STATE, None)
    if state is not None:
        state.close()


# -- student code ------------------------------------------------------------------

class SessionState:
    """Per-process state: prepared submissions, connections to student code, reference modules."""

    def __init__(self, config: pytest.Config, fork_server: Any = None, no_fork_server: str = ""):
        self.config = config
        self.fork_server = fork_server  # grader.sandbox.forkserver.ForkServer, or None: workers start Python
        self.no_fork_server = no_fork_server  # why there is none, for the sandbox report
        self._prepared: dict[str, Any] = {}
        self._connections: dict[str, Any] = {}
        self._references: dict[str, Any] = {}
        self._scratch: Path | None = None
        self._manifests: dict[str, Any] = {}

    def scratch(self) -> Path:
        import tempfile

        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="cvgrade-"))
            identity = _worker_identity(self.config)
            if identity is not None and identity.private:
                # Only this grading's workers get in: the student's uid (its group) and the
                # reference's worker (given that group). A classmate graded at the same time has
                # another uid and cannot even look inside.
                os.chown(self._scratch, 0, identity.gid)
                os.chmod(self._scratch, 0o750)
            elif os.geteuid() == 0:
                os.chmod(self._scratch, 0o711)  # a shared worker user (CVGRADE_WORKER_USER, nobody)
            else:
                os.chmod(self._scratch, 0o700)  # a non-root grader: its workers map back to its own uid
        return self._scratch

    def exchange_dir(self) -> Path:
        """Where ``sandbox_tmp_path`` folders live: readable and writable by the worker."""
        base = self.scratch() / "exchange"
        if not base.exists():
            base.mkdir()
            os.chmod(base, 0o711)
        return base

    def submission_source(self, manifest: Any) -> Path:
        value = get_option(self.config, "submission")
        if value in (None, "reference"):
            return manifest.reference_dir
        if value == "template":
            return manifest.template_dir
        path = Path(value)
        return path if path.is_absolute() else Path(self.config.invocation_params.dir) / path

    def prepared(self, manifest: Any) -> Any:
        self._manifests[manifest.name] = manifest
        if manifest.name not in self._prepared:
            from grader.submission import SubmissionError, prepare

            destination = self.scratch() / f"submission-{manifest.name}"
            try:
                prepared = prepare(self.submission_source(manifest), manifest, destination)
            except SubmissionError as exc:
                prepared = exc
            else:
                _open_up(destination)
            self._prepared[manifest.name] = prepared
        prepared = self._prepared[manifest.name]
        if isinstance(prepared, Exception):
            raise prepared
        return prepared

    def submission_report(self, name: str) -> str:
        """What was found in the submission of assignment ``name`` (for the results' summary)."""
        from grader import manifest as manifests
        from grader.submission import SubmissionError

        try:
            manifest = self._manifests.get(name) or manifests.get(name)
            prepared = self.prepared(manifest)
        except (SubmissionError, manifests.ManifestError) as exc:
            return f"Submission could not be read: {exc}"
        return prepared.report()

    def private_dir(self) -> Path:
        """Trusted files in the scratch folder (the reference copy for timing): hidden from student workers."""
        path = self.scratch() / "private"
        if not path.exists():
            path.mkdir()
            identity = _worker_identity(self.config)
            if identity is not None and identity.private:
                from grader.sandbox.identity import shared_identity

                os.chown(path, 0, shared_identity()[1])  # the reference's worker, not the student's
                os.chmod(path, 0o750)
            else:
                os.chmod(path, 0o711)
        return path

    def connection(self, manifest: Any, reference: bool = False) -> Any:
        """The worker running the submission of ``manifest`` (or, with ``reference``, the reference)."""
        key = f"{manifest.name}:reference" if reference else manifest.name
        conn = self._connections.get(key)
        if conn is None:
            if reference:
                directory = self.private_dir() / f"reference-{manifest.name}"
                if not directory.exists():
                    import shutil

                    shutil.copytree(manifest.reference_dir, directory,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                    _open_up(directory)
                extra: list[str] = []
            else:
                prepared = self.prepared(manifest)
                directory = prepared.directory
                extra = [m[:-3] for m in prepared.extra_modules]
            modules = list(manifest.student_modules) + list(manifest.provided_modules) + extra
            modules += [m for m in manifest.optional_modules if (Path(directory) / f"{m}.py").is_file()]
            if sandbox_enabled(self.config):
                from grader.sandbox.process import ProcessConnection, SandboxSettings

                protected = [] if reference else [str(self.private_dir())]
                results = get_option(self.config, "results_json")
                if results:
                    protected.append(str(Path(results).resolve().parent))
                workdir = (self.private_dir() / f"work-{manifest.name}-reference" if reference
                           else self.scratch() / f"work-{manifest.name}")
                settings = SandboxSettings.from_manifest(manifest, workdir=workdir, extra_protected=protected)
                identity = _worker_identity(self.config)
                if reference and identity is not None and identity.private:
                    from grader.sandbox.identity import shared_identity

                    # The reference runs as the shared worker user, never as the student's uid (a
                    # student could otherwise signal or slow it), with the group of this grading's folders.
                    settings.run_as, settings.groups = shared_identity(), (identity.gid,)
                if manifest.grading.offline_weights:
                    from grader.weights import seed_torch_home

                    seed_torch_home(workdir, manifest.grading.offline_weights)
                conn = ProcessConnection(str(directory), modules, settings)
                conn.fork_server = self.fork_server
                conn.expose(self.exchange_dir(), writable=True)
            else:
                from grader.sandbox.client import LoopbackConnection

                if manifest.grading.offline_weights:
                    from grader.weights import seed_torch_home

                    os.environ["TORCH_HOME"] = str(self.scratch() / "torch-home")  # this process is the worker
                    seed_torch_home(os.environ["TORCH_HOME"], manifest.grading.offline_weights)
                conn = LoopbackConnection(str(directory), modules,
                                          definitions_only=manifest.definitions_only_modules,
                                          definitions_on_error=manifest.grading.definitions_on_import_error,
                                          capture_output=not self.config.getoption("debugger", default=False))
            self._connections[key] = conn
        return conn

    def reference(self, manifest: Any) -> Any:
        ref = self._references.get(manifest.name)
        if ref is None:
            from grader.sandbox.loader import load_modules
            from grader.student import ReferenceCode

            names = list(manifest.student_modules) + list(manifest.provided_modules)
            names += [m for m in manifest.optional_modules if (manifest.reference_dir / f"{m}.py").is_file()]
            modules = load_modules(manifest.reference_dir, names, isolated=True)
            ref = self._references[manifest.name] = ReferenceCode(modules, manifest)
        return ref

    def sandbox_report(self) -> dict:
        """Per assignment: how student code ran (the defences the launcher applied, its warnings)."""
        report = {}
        for name, conn in self._connections.items():
            defences = getattr(conn, "defences", None)
            report[name] = ({"mode": "sandbox", "defences": defences.get("defences", []),
                             "warnings": defences.get("warnings", []), "starts": getattr(conn, "starts", 0),
                             "forked": getattr(conn, "fork_server", None) is not None,
                             **({"not_forked_because": self.no_fork_server} if self.no_fork_server else {})}
                            if defences is not None else {"mode": "in-process (--no-sandbox)"})
        return report

    def close(self) -> None:
        for conn in self._connections.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        self._connections.clear()
        if self.fork_server is not None:
            self.fork_server.close()
            self.fork_server = None
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


def _worker_identity(config: pytest.Config) -> Any:
    """This grading's student-worker identity (``grader.sandbox.identity``); None without a sandbox or root."""
    if not sandbox_enabled(config):
        return None
    from grader.sandbox.identity import grading_identity

    return grading_identity()


def _open_up(directory: Path) -> None:
    """Let the unprivileged worker read the prepared submission."""
    for root, _dirs, files in os.walk(directory):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def _require_manifest(request: pytest.FixtureRequest) -> Any:
    manifest = _manifest_for_item(request.node)
    if manifest is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the '{request.fixturename}' fixture needs the test to live under "
            "grader/suites/<assignment>/ (next to an assignment.toml)")
    return manifest


@pytest.fixture
def student(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The submission's modules: ``student.detection_utils.nms(boxes, scores, 0.5)``.

    Calls run in the sandboxed worker (or in-process with ``--no-sandbox``) and
    return plain data or proxies. What the student's code prints is attached to
    this test's output.
    """
    from grader.student import StudentCode

    manifest = _require_manifest(request)
    state: SessionState = request.config.stash[STATE]
    conn = state.connection(manifest)
    printed = request.node.stash.setdefault(_PRINTED, [])
    mark = request.node.get_closest_marker("sandbox")
    timeout = mark.kwargs.get("call_timeout") if mark is not None else None
    conn.on_output = printed.append
    conn.tripped = None
    conn.call_timeout = float(timeout) if timeout else manifest.grading.call_timeout
    # Each test starts from what the earlier ones left freed (their cycles collected, the heap trimmed), so
    # that the worker's memory does not grow test by test against the container's limit.
    conn.start_test()
    conn.request("collect", label="starting your code")
    conn.request("seed", seed=zlib.crc32(request.node.nodeid.encode()), label="starting your code")
    try:
        yield StudentCode(conn, manifest)
    finally:
        note = conn.end_test()
        if note:
            printed.append("\n" + note + "\n")
        conn.on_output = None
        conn.tripped = None


@pytest.fixture
def reference(request: pytest.FixtureRequest) -> Any:
    """The course's solution modules, in this trusted process (hidden tests only).

    Public tests run on students' machines, where there is no reference; they
    use golden values and library oracles instead.
    """
    manifest = _require_manifest(request)
    if _suite_kind(request.node) == "public" or os.environ.get("CVGRADE_NO_REFERENCE"):
        raise pytest.UsageError(
            f"{request.node.nodeid}: public tests cannot use the reference (students run them without it)")
    return request.config.stash[STATE].reference(manifest)


@pytest.fixture
def sandbox_tmp_path(request: pytest.FixtureRequest) -> Path:
    """A fresh folder that both the test and the student's code can read and write."""
    state: SessionState = request.config.stash[STATE]
    base = state.exchange_dir()
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:60]
    path = base / f"{name}-{zlib.crc32(request.node.nodeid.encode()):08x}"
    suffix = 0
    while path.exists():
        suffix += 1
        path = base / f"{name}-{zlib.crc32(request.node.nodeid.encode()):08x}-{suffix}"
    path.mkdir()
    os.chmod(path, 0o777)
    return path


@pytest.fixture
def set_score(request: pytest.FixtureRequest) -> Any:
    """``set_score(points)``: the points this test (or parametrized case) earns, 0..its share of the weight."""
    scores = request.node.stash.setdefault(_SCORE, {})

    def _set(points: float) -> None:
        scores["score"] = float(points)

    return _set


@pytest.fixture
def set_score_fraction(request: pytest.FixtureRequest) -> Any:
    """``set_score_fraction(f)``: earn the fraction ``f`` (0..1) of this test's (or case's) points."""
    scores = request.node.stash.setdefault(_SCORE, {})

    def _set(fraction: float) -> None:
        scores["fraction"] = min(max(float(fraction), 0.0), 1.0)

    return _set


@pytest.fixture
def reference_worker(request: pytest.FixtureRequest) -> Any:
    """The reference running in a worker set up exactly like the student's (hidden tests only).

    For speed comparisons on equal terms; the student's worker cannot see its files.
    """
    from grader.student import StudentCode

    manifest = _require_manifest(request)
    if _suite_kind(request.node) == "public" or os.environ.get("CVGRADE_NO_REFERENCE"):
        raise pytest.UsageError(
            f"{request.node.nodeid}: public tests cannot use the reference (students run them without it)")
    conn = request.config.stash[STATE].connection(manifest, reference=True)
    mark = request.node.get_closest_marker("sandbox")
    timeout = mark.kwargs.get("call_timeout") if mark is not None else None
    conn.call_timeout = float(timeout) if timeout else manifest.grading.call_timeout
    conn.tripped = None
    return StudentCode(conn, manifest)


@pytest.fixture
def timing(student: Any, reference_worker: Any, set_score_fraction: Any) -> Any:
    """Speed checks against the reference in identical workers: ``timing.grade("detection_utils.nms", args)``."""
    from grader.perf import Timing

    return Timing(student, reference_worker, set_score_fraction)


@pytest.fixture
def one_torch_thread() -> Any:
    """One intra-op torch thread in this process for the test, as in the sandboxed workers (``threads = 1``).

    With ``--no-sandbox`` both sides of a speed check run in this process; on a few loaded
    cores several threads also make small-tensor work slower. The previous count is restored.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def set_leaderboard_value(request: pytest.FixtureRequest) -> Any:
    """``set_leaderboard_value(x)``: the value of this test's leaderboard column."""
    scores = request.node.stash.setdefault(_SCORE, {})

    def _set(value: Any) -> None:
        scores["leaderboard_value"] = value

    return _set


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Tell staff (run_autograder's stdout) how student code was isolated, and any weakness."""
    state = config.stash.get(STATE, None)
    if state is None:
        return
    for name, info in state.sandbox_report().items():
        if info.get("mode") != "sandbox":
            terminalreporter.write_line(f"cvgrade: {name}: student code ran in-process (--no-sandbox)")
            continue
        for warning in info.get("warnings", []):
            terminalreporter.write_line(f"cvgrade: {name}: sandbox warning: {warning}")


def pytest_report_header(config: pytest.Config) -> str | None:
    path = get_option(config, "results_json")
    return f"cvgrade: results -> {path}" if path else None

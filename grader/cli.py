"""``cvgrade``: a thin command line over ``grader.api``.

    cvgrade list                                   the assignments
    cvgrade grade ASSIGNMENT [SUBMISSION] --out F  grade a submission (always exits 0 once grading ran)
    cvgrade check ASSIGNMENT [SUBMISSION]          students: the public tests, with explanations
    cvgrade build [--check]                        regenerate (or verify) student_template/
    cvgrade package ASSIGNMENT -o dist/ [--check]  the zip for Gradescope
    cvgrade kit ASSIGNMENT -o DIR                  the student kit (template, public tests, README)
    cvgrade batch ASSIGNMENT EXPORT --out grades.csv  regrade a Gradescope export (resumable)
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from grader import api
from grader.manifest import Manifest, ManifestError

KEYWORD_HELP = "run only the tests whose names match this pytest -k expression (e.g. nms, 'centerness or iou')"
QUESTION_HELP = "run only question N's tests (numbered N or N.x, e.g. 4 or 4.1); repeatable"

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Grade PyTorch computer-vision assignments and write Gradescope's results.json.")
console = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from grader import __version__

        console.print(f"cvgrade {__version__}", markup=False, highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="print cvgrade's version and exit")) -> None:
    """Grade PyTorch computer-vision assignments and write Gradescope's results.json."""


def _progress_bar(title: str) -> tuple[Progress, object]:
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[last]}"), console=err, transient=True)
    task = bar.add_task(title, total=None, last="")

    def update(event: api.Progress) -> None:
        last = event.last.get("name") or ""
        outcome = event.last.get("outcome", "")
        bar.update(task, completed=event.done, total=event.total, last=f"{outcome} {last}"[:60])

    return bar, update


def shown_tests(tests: list[dict]) -> list[dict]:
    """The rows a terminal table shows: all but the GPU-only checks that count nothing here (a CPU assignment)."""
    return [t for t in tests if not ((t.get("extra_data") or {}).get("gpu_only") and not t.get("max_score"))]


def _score_table(result: api.GradeResult, title: str) -> Table:
    table = Table(title=escape(title), show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("test")
    table.add_column("score", justify="right")
    table.add_column("status")
    rows = shown_tests(result.tests)
    for test in rows:
        style = "green" if test.get("status") == "passed" else "red"
        table.add_row(escape(str(test.get("number", ""))), escape(str(test.get("name", ""))),
                      f"{test.get('score', 0):g} / {test.get('max_score', 0):g}",
                      f"[{style}]{escape(str(test.get('status', '')))}[/{style}]")
    caption = f"total {result.score:g} / {result.max_score:g}"
    if result.hidden_points:
        caption += f"; {result.hidden_points:g} more points are in hidden tests"
    if len(rows) < len(result.tests):
        caption += f"\n{len(result.tests) - len(rows)} GPU-only checks not listed: they count only on a GPU assignment"
    table.caption = caption
    return table


def failure_groups(tests: list[dict]) -> list[tuple[list[str], str]]:
    """The failed tests' explanations, each said once: (names of the tests, the text), in first-seen order.

    Tests that fail on the same "Not implemented yet" block share one entry; any other failure has its own.
    """
    groups: dict[str, tuple[list[str], str]] = {}
    for index, test in enumerate(tests):
        if test.get("status") != "failed":
            continue
        output = str(test.get("output") or "(no details)")
        block = output.split("\n\n", 1)[0]
        key = block if block.startswith("Not implemented yet") and block == output.strip() else f"#{index}"
        groups.setdefault(key, ([], output))[0].append(str(test.get("name", "")))
    return list(groups.values())


@app.command("list")
def list_command() -> None:
    """List the assignments, their profiles and points, and the files students write."""
    for manifest in api.list_assignments():
        console.print(assignment_block(manifest, console.width), markup=False, highlight=False)


def assignment_block(manifest: Manifest, width: int = 80) -> str:
    """One assignment for ``cvgrade list``: its name, then its title, points and files on indented lines
    wrapped to ``width`` (a four-column table wraps every cell at 80 columns)."""
    import textwrap

    profiles = manifest.all_profiles
    if len(profiles) == 1:
        points = f"points: {profiles[0].points:g}"
    else:
        points = "profiles: " + ", ".join(
            f"{p.name}{' (default)' if p.name == manifest.default_profile else ''} {p.points:g} points" for p in profiles)
    lines = [manifest.name]
    for line in (manifest.title, points, "student files: " + ", ".join(manifest.student_files)):
        lines.append(textwrap.fill(line, width=max(40, width), initial_indent="  ", subsequent_indent="      ",
                                   break_on_hyphens=False, break_long_words=False))
    return "\n".join(lines) + "\n"


@app.command()
def grade(
    assignment: str = typer.Argument(..., help="assignment name (see 'cvgrade list')"),
    submission: str | None = typer.Argument(None, help="folder or zip; 'reference' (default) or 'template'"),
    out: Path = typer.Option(Path("results.json"), "--out", "-o", help="where to write results.json"),
    workers: int = typer.Option(1, "--workers", "-n", help="parallel test processes (pytest-xdist)"),
    metadata: Path | None = typer.Option(None, "--metadata",
                                            help="Gradescope's submission_metadata.json: apply late penalty "
                                                 "and submission limit from the manifest"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no score table"),
    profile: str | None = typer.Option(None, "--profile", help="the assignment's profile to grade "
                                                                "(see 'cvgrade list'; default: its default)"),
    keyword: str | None = typer.Option(None, "-k", help=KEYWORD_HELP),
    question: list[str] = typer.Option([], "--question", help=QUESTION_HELP),
) -> None:
    """Grade one submission; results.json is always written and the exit status is 0."""
    bar, update = _progress_bar(f"grading {assignment}")
    try:
        with bar:
            result = api.grade(assignment, submission, out, workers=workers, on_progress=update, metadata=metadata,
                               profile=profile, keyword=keyword, questions=question)
    except api.SelectionError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except (ManifestError, api.StudentInstallError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        path = out.resolve()
        api._write(path, api.fallback_results(
            f"Grader configuration error: {exc}",
            summary=f"The autograder is misconfigured ({exc}); nothing was graded. Please tell the course staff."))
        console.print(f"results written to {path}")
        return
    reason = zero_score_reason(result)
    if reason:
        err.print(f"[red]score 0:[/red] {reason}", highlight=False)
    if not quiet:
        console.print(_score_table(result, f"{assignment}: {submission or 'reference'}"))
    console.print(f"results written to {result.path}")


def zero_score_reason(result: api.GradeResult) -> str:
    """Why a grading scored nothing, in a line or two (empty when it scored something)."""
    if result.score > 0:
        return ""
    summary = str(result.results.get("output", "")).strip()
    if not result.tests:
        return summary
    outcomes = {str((t.get("extra_data") or {}).get("outcome", "")) for t in result.tests}
    if summary and ((len(outcomes) == 1 and outcomes != {"failed"}) or "grader_error" in outcomes):
        return summary
    first = next((t for t in result.tests if t.get("status") == "failed" and t.get("max_score", 0) > 0), None)
    if first is None:
        return summary
    detail = str(first.get("output", "")).strip().splitlines()
    return (summary + "\n" if summary else "") + f"first failed test: {first.get('name')}: " + \
        (detail[0] if detail else "(no details)")


@app.command()
def check(
    assignment: str = typer.Argument(..., help="assignment name (see 'cvgrade list')"),
    submission: Path = typer.Argument(Path("."), help="the folder with your files (default: here)"),
    no_sandbox: bool = typer.Option(False, "--no-sandbox", help="run your code in this process with this terminal "
                                                                "attached: breakpoint() stops in pdb"),
    profile: str | None = typer.Option(None, "--profile", help="the assignment's profile to grade "
                                                                "(see 'cvgrade list'; default: its default)"),
    keyword: str | None = typer.Option(None, "-k", help=KEYWORD_HELP),
    question: list[str] = typer.Option([], "--question", help=QUESTION_HELP),
) -> None:
    """Run the public tests on your own code and explain each failure."""
    try:
        if no_sandbox:  # the terminal stays the student's: no progress display over pdb's prompt
            err.print("running your code in this process: breakpoint() stops in pdb ('c' continues)",
                      markup=False, highlight=False)
            result = api.check(assignment, submission, profile=profile, keyword=keyword, questions=question,
                               debugger=True)
        else:
            bar, update = _progress_bar(f"checking {assignment}")
            with bar:
                result = api.check(assignment, submission, on_progress=update, profile=profile, keyword=keyword,
                                   questions=question)
    except (ManifestError, api.SelectionError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if result.unmatched:
        err.print(f"error: no public test matches {result.unmatched}", markup=False, highlight=False)
        raise typer.Exit(2)
    from grader.plugin import safe_output

    console.print(_score_table(result, f"{assignment}: public tests"))
    for names, output in failure_groups(result.failed):
        if len(names) == 1:
            console.rule(f"[red]{escape(names[0])}")
        else:
            console.rule(f"[red]{len(names)} tests stop at the same place")
            console.print("\n".join(f"  - {name}" for name in names), markup=False, highlight=False)
        console.print(safe_output(output), markup=False, highlight=False)
    summary = result.results.get("output", "")
    if summary:
        console.rule("summary")
        console.print(safe_output(summary), markup=False, highlight=False)
    raise typer.Exit(0 if not result.failed else 1)


@app.command()
def batch(
    assignment: str = typer.Argument(..., help="assignment name (see 'cvgrade list')"),
    export: Path = typer.Argument(..., help="Gradescope 'Export Submissions' folder or zip"),
    out: Path = typer.Option(Path("grades.csv"), "--out", "-o", help="CSV of scores per test"),
    workers: int = typer.Option(2, "--workers", "-n", help="submissions graded at once"),
    dask: str | None = typer.Option(None, "--dask", help="Dask scheduler address, or 'local' for a LocalCluster"),
    timeout: float | None = typer.Option(None, "--timeout", help="seconds per submission"),
    force: bool = typer.Option(False, "--force", help="regrade every submission (reuse no earlier result)"),
    profile: str | None = typer.Option(None, "--profile", help="the assignment's profile to grade "
                                                                "(see 'cvgrade list'; default: its default)"),
) -> None:
    """Regrade every submission of an export (resumable); CSV, summary and score histogram."""
    from grader.batch import run_batch

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[last]}"), console=err)
    task = bar.add_task(f"regrading {assignment}", total=None, last="")

    def update(done: int, total: int, last: str) -> None:
        bar.update(task, completed=done, total=total, last=last)

    try:
        with bar:
            result = run_batch(assignment, export, out, workers=workers, dask=dask, timeout=timeout,
                               force=force, on_progress=update, profile=profile)
    except (ManifestError, FileNotFoundError, RuntimeError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    import json as _json

    summary = _json.loads(result.summary_path.read_text())
    console.print(f"{result.describe()} in {result.seconds:.0f} s; mean {summary['mean_score']:.2f} / {summary['max_score']:g}; "
                  f"{summary['incomplete']} incomplete")
    if summary["most_failed"]:
        table = Table(title="tests most often failed")
        table.add_column("test")
        table.add_column("failed", justify="right")
        for row in summary["most_failed"]:
            table.add_row(row["test"], str(row["failed"]))
        console.print(table)
    console.print(f"CSV: {result.csv_path}\nper submission: {result.out_dir}\nhistogram: {result.histogram_path}")


@app.command()
def package(
    assignment: str = typer.Argument(..., help="assignment name (see 'cvgrade list')"),
    out: Path = typer.Option(Path("dist"), "--out", "-o", help="folder for <assignment>.zip"),
    check: bool = typer.Option(False, "--check", help="also list every file that went in"),
    profile: str | None = typer.Option(None, "--profile", help="the assignment's profile to grade "
                                                                "(see 'cvgrade list'; default: its default)"),
) -> None:
    """Build the zip to upload to Gradescope (setup.sh and run_autograder at its root)."""
    from grader import manifest as manifests
    from grader.image import LockError
    from grader.package import build_package

    try:
        manifest = manifests.get(assignment)
        report = build_package(manifest, out, profile=profile)
    except (ManifestError, FileNotFoundError, LockError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if check:
        console.print(report.listing(), markup=False, highlight=False)
    settings = manifest.gradescope
    console.print(f"wrote {report.path} ({len(report.files)} files, {report.total_bytes / 1024:.0f} KiB)")
    chosen = report.profile
    console.print(f"profile {chosen.name} ({chosen.title}): {chosen.points:g} points, the assignment's total on "
                  f"Gradescope", markup=False, highlight=False)
    console.print(f"Gradescope settings: autograder timeout {settings.autograder_timeout} s, "
                  f"{settings.container_cpus:g} CPU, {settings.container_memory} memory"
                  f"{', a GPU' if manifest.grading.gpu else ''}")


@app.command()
def kit(
    assignment: str = typer.Argument(..., help="assignment name (see 'cvgrade list')"),
    out: Path = typer.Option(..., "--out", "-o", help="a new (or empty) folder for the kit"),
    install: str | None = typer.Option(None, "--install", help="the install line the README gives students, "
                                                               "where the course publishes cvgrade (default: "
                                                               "cvgrade's student wheel, put in the kit)"),
) -> None:
    """Write the student kit: the starter files, the public tests and a README (no reference, no hidden tests)."""
    from grader.kit import KitError, build_kit

    try:
        report = build_kit(assignment, out, install=install)
    except (ManifestError, KitError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    console.print(f"wrote {len(report.files)} files to {report.folder}; students start from its README.md",
                  markup=False, highlight=False)


@app.command()
def build(check: bool = typer.Option(False, "--check", help="only report whether student_template/ is current")) -> None:
    """Regenerate student_template/ from reference/ (or check that it is current)."""
    from grader.template import MarkerError

    try:
        report = api.build_template(check=check)
    except MarkerError as exc:
        err.print(f"[red]marker error:[/red] {exc}")
        raise typer.Exit(2) from None
    if check:
        if report.clean:
            console.print("student_template/ is current")
            return
        err.print(report.diff, markup=False, highlight=False)
        for name in report.missing:
            err.print(f"missing from student_template/: {name}")
        for name in report.extra:
            err.print(f"not generated from reference/ (remove it): student_template/{name}")
        err.print("[red]student_template/ is stale: run 'cvgrade build'[/red]")
        raise typer.Exit(1)
    console.print(f"wrote {len(report.written)} file(s), removed {len(report.removed)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

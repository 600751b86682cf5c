"""``cvgrade batch``: regrade a whole Gradescope export, in parallel, resumably.

A Gradescope "Export Submissions" download is a folder (or zip) with one folder
per submission and ``submission_metadata.yml``::

    assignment_1234_export/
        submission_metadata.yml      submission_987:  {":submitters": [{":name": ..., ":sid": ..., ":email": ...}],
        submission_987/                                ":created_at": ..., ":score": ...}
            detection_utils.py
        submission_988/ ...

Each submission is graded by ``grader.api.grade`` (its own pytest process and
sandbox); a submission that crashes or hangs gets a fallback result and never
stops the batch. Results go to ``<out>/<submission>/results.json`` together with a
record of what was graded by which grader (``graded_by.json``), so an interrupted batch
resumes where it stopped and regrades a submission whose files changed, or all of them when
the suite, the reference, the template or the engine changed (``force`` regrades everything). Finally a CSV of scores per
test, ``summary.json`` and a histogram of scores (PNG) are written.

Parallelism: ``workers`` local processes (threads that each drive a grading
subprocess), or a Dask cluster (``dask.distributed``, optional) when a scheduler
address or ``"local"`` is given.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.sandbox.process import shares_worker_user
from grader.submission import safe_extract

# Per submission: what was graded and by which grader (sha256 of the submission's files, of the suite,
# reference, template and engine, and the cvgrade version), so that a resumed batch reuses a result only
# when neither changed.
FINGERPRINT = "graded_by.json"


@dataclass
class BatchItem:
    """One submission of the export."""

    submission_id: str
    folder: Path
    submitters: list[dict] = field(default_factory=list)
    created_at: str = ""


@dataclass
class BatchResult:
    """What a batch produced."""

    out_dir: Path
    csv_path: Path
    summary_path: Path
    histogram_path: Path | None
    graded: int
    reused: int
    seconds: float
    scores: dict[str, float]
    reasons: dict[str, int] = field(default_factory=dict)  # why submissions were (re)graded -> how many

    def describe(self) -> str:
        """``3 submissions (3 graded: 2 grader changed, 1 new; 0 reused)``."""
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        return (f"{self.graded + self.reused} submissions ({self.graded} graded{': ' + why if why else ''}; "
                f"{self.reused} reused)")


def _clean_key(key: object) -> str:
    return str(key).lstrip(":")


def _clean(value: object) -> object:
    if isinstance(value, dict):
        return {_clean_key(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _looks_like_export(folder: Path) -> bool:
    return (folder / "submission_metadata.yml").is_file() or any(
        p.is_dir() and p.name.startswith("submission_") for p in folder.iterdir())


def locate_export(folder: Path) -> Path:
    """The export folder itself, or the one export folder directly inside it.

    An export has ``submission_metadata.yml`` or ``submission_<id>/`` folders. Given the folder
    that holds ``assignment_4242_export/`` (or an unzipped export whose root is that folder), the
    export inside is used.

    Raises:
        FileNotFoundError: when neither the folder nor exactly one folder inside it is an export,
            saying what was expected.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such export folder or zip")
    if _looks_like_export(folder):
        return folder
    inside = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith((".", "__MACOSX"))
              and _looks_like_export(p)]
    if len(inside) == 1:
        return inside[0]
    found = f"; found {len(inside)} exports inside: {', '.join(p.name for p in inside)}" if inside else ""
    raise FileNotFoundError(
        f"{folder} is not a Gradescope export: expected submission_metadata.yml and submission_<id>/ folders "
        f"in it, or one export folder (e.g. assignment_<id>_export/) directly inside it{found}")


def read_export(export: Path) -> list[BatchItem]:
    """The submissions of an export folder, with their submitters from ``submission_metadata.yml``.

    Raises:
        FileNotFoundError: when the folder has no submission folders.
    """
    import yaml

    metadata: dict = {}
    meta_path = export / "submission_metadata.yml"
    if meta_path.is_file():
        with open(meta_path, encoding="utf-8") as fh:
            metadata = _clean(yaml.load(fh, Loader=yaml.BaseLoader) or {})
    items = []
    for folder in sorted(p for p in export.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))):
        info = metadata.get(folder.name, {}) if isinstance(metadata, dict) else {}
        items.append(BatchItem(submission_id=folder.name, folder=folder,
                               submitters=list(info.get("submitters") or []) if isinstance(info, dict) else [],
                               created_at=str(info.get("created_at", "")) if isinstance(info, dict) else ""))
    if not items:
        raise FileNotFoundError(f"{export}: no submission folders found (expected submission_<id>/ folders)")
    return items


def fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _grade_one(assignment: str, folder: str, out: str, timeout: float | None, profile: str | None = None) -> dict:
    """Grade one submission into ``out`` (a results.json path); importable for Dask workers."""
    from grader import api

    result = api.grade(assignment, folder, out, timeout=timeout, profile=profile)
    return result.results


def _stamp(item: BatchItem, grader: str, profile: str) -> dict:
    from grader import __version__

    return {"submission": fingerprint(item.folder), "grader": grader, "profile": profile,
            "cvgrade_version": __version__}


def _reuse(item: BatchItem, out_dir: Path, grader: str, profile: str) -> tuple[dict | None, str]:
    """(the results to reuse, or None; why not) for a submission graded by an earlier run."""
    from grader.api import validate_results

    folder = out_dir / item.submission_id
    try:
        stamp = json.loads((folder / FINGERPRINT).read_text())
    except OSError:
        return None, "new"
    except ValueError:
        return None, "graded by an older cvgrade"
    if not isinstance(stamp, dict) or "grader" not in stamp:
        return None, "graded by an older cvgrade"
    if stamp.get("submission") != fingerprint(item.folder):
        return None, "submission changed"
    if stamp["grader"] != grader:
        return None, "grader changed"
    if stamp.get("profile") != profile:
        return None, "profile changed"
    try:
        data = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None, "results missing"
    if validate_results(data):
        return None, "results invalid"
    return data, ""


def run_batch(assignment: str, export: Path | str, out_csv: Path | str, *, out_dir: Path | str | None = None,
              workers: int = 1, dask: str | None = None, timeout: float | None = None, force: bool = False,
              on_progress: Callable[[int, int, str], None] | None = None,
              profile: str | None = None) -> BatchResult:
    """Grade every submission of an export and write the CSV, summary and histogram.

    Args:
        assignment: the assignment's name.
        export: the export folder or zip.
        out_csv: the CSV of scores to write; per-submission results go next to it
            (``<csv stem>_results/``) unless ``out_dir`` says otherwise.
        workers: submissions graded at once on this machine.
        dask: a Dask scheduler address, or ``"local"`` for a LocalCluster of
            ``workers`` processes; None grades with local threads.
        timeout: seconds per submission (None: the grader's default).
        force: regrade every submission, reusing nothing.
        on_progress: called with (done, total, submission id) after each submission.
        profile: the manifest's profile to grade (None: its default); a result graded in another
            profile is not reused.

    Raises:
        ManifestError: for an unknown assignment or profile.
        FileNotFoundError: when ``export`` is not an export (nor holds exactly one).
        StudentInstallError: when this install has no hidden tests or reference to grade with.
    """
    from grader import manifest as manifests
    from grader.api import require_grader_install
    from grader.package import grading_digest

    manifest = manifests.get(assignment)  # fails early on an unknown assignment or profile
    chosen = manifest.profile(profile)
    require_grader_install(manifest)
    grader = grading_digest(manifest)
    if workers > 1 and shares_worker_user():
        warnings.warn("grading one submission at a time: as root without PID namespaces every worker runs as "
                      "the same user and stopping one would stop the others (run as a non-root user, or where "
                      "unshare(CLONE_NEWPID) is allowed, to grade in parallel)", RuntimeWarning, stacklevel=2)
        workers = 1
    started = time.monotonic()
    export = Path(export)
    out_csv = Path(out_csv)
    out_dir = Path(out_dir) if out_dir else out_csv.with_name(out_csv.stem + "_results")
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = None
    if export.is_file():
        scratch = Path(tempfile.mkdtemp(prefix="cvgrade-export-"))
        safe_extract(export, scratch)
        export = scratch
    try:
        items = read_export(locate_export(export))
        results: dict[str, dict] = {}
        todo = []
        reasons: Counter = Counter()
        for item in items:
            done, why = (None, "--force") if force else _reuse(item, out_dir, grader, chosen.name)
            if done is not None:
                results[item.submission_id] = done
            else:
                todo.append(item)
                reasons[why] += 1
        reused = len(results)
        total = len(items)
        if on_progress is not None:
            on_progress(len(results), total, "")

        def finish(item: BatchItem, data: dict) -> None:
            results[item.submission_id] = data
            (out_dir / item.submission_id / FINGERPRINT).write_text(json.dumps(_stamp(item, grader, chosen.name)) + "\n")
            if on_progress is not None:
                on_progress(len(results), total, item.submission_id)

        def target(item: BatchItem) -> tuple[str, str, str]:
            (out_dir / item.submission_id).mkdir(parents=True, exist_ok=True)
            return str(item.folder.resolve()), str((out_dir / item.submission_id / "results.json").resolve()), \
                item.submission_id

        if dask is not None and todo:
            _run_dask(assignment, todo, target, finish, dask, workers, timeout, chosen.name)
        elif todo:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                futures = {}
                for item in todo:
                    folder, out, _ = target(item)
                    futures[pool.submit(_grade_one, assignment, folder, out, timeout, chosen.name)] = item
                for future in as_completed(futures):
                    item = futures[future]
                    finish(item, _result_or_error(future, item))
        csv_path, summary_path, histogram = write_reports(
            items, results, out_csv, out_dir,
            run={"graded": len(todo), "reused": reused, "graded_because": dict(reasons), "grader_digest": grader})
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return BatchResult(out_dir=out_dir, csv_path=csv_path, summary_path=summary_path, histogram_path=histogram,
                       graded=len(todo), reused=reused, seconds=time.monotonic() - started,
                       scores={k: float(v.get("score", 0.0)) for k, v in results.items()}, reasons=dict(reasons))


def _result_or_error(future: object, item: BatchItem) -> dict:
    from grader.api import fallback_results

    try:
        return future.result()  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - one broken submission never stops the batch
        return fallback_results(f"grading {item.submission_id} failed: {type(exc).__name__}: {exc}")


def _run_dask(assignment: str, todo: list[BatchItem], target: Callable, finish: Callable, address: str,
              workers: int, timeout: float | None, profile: str | None = None) -> None:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise RuntimeError("dask is not installed: pip install 'dask[distributed]' (or run without --dask)") from None
    cluster = None
    if address == "local":
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(address)
    try:
        futures = {}
        for item in todo:
            folder, out, key = target(item)
            futures[client.submit(_grade_one, assignment, folder, out, timeout, profile, key=f"grade-{key}",
                                  pure=False)] = item
        for future in dask_completed(list(futures)):
            item = futures[future]
            finish(item, _result_or_error(future, item))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _test_columns(results: dict[str, dict]) -> list[str]:
    """The CSV's test columns, in test-number order (1.3, 2.1, 10.1), unnumbered tests last by name."""
    from grader.plugin import number_sort_key

    columns: dict[str, tuple] = {}
    for data in results.values():
        for test in data.get("tests", []):
            label = f"{test.get('number', '')} {test.get('name', '')}".strip()
            columns.setdefault(label, (number_sort_key(test.get("number")), label))
    return [label for label, _ in sorted(columns.items(), key=lambda kv: kv[1])]


def write_reports(items: list[BatchItem], results: dict[str, dict], out_csv: Path,
                  out_dir: Path, run: dict | None = None) -> tuple[Path, Path, Path | None]:
    """The CSV of scores per test, summary.json, and a histogram of total scores.

    ``run`` (how many were graded and reused, and why) goes into summary.json as it is.
    """
    columns = _test_columns(results)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    failures: Counter = Counter()
    scores = []
    max_scores = []
    with open(out_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["submission", "names", "emails", "sids", "created_at", "score", "max_score", "status",
                         *columns])
        for item in items:
            data = results.get(item.submission_id, {})
            per_test = {f"{t.get('number', '')} {t.get('name', '')}".strip(): t for t in data.get("tests", [])}
            for label, test in per_test.items():
                if test.get("status") == "failed" and test.get("max_score", 0) > 0:
                    failures[label] += 1
            score = float(data.get("score", 0.0))
            max_score = float(data.get("extra_data", {}).get("max_score",
                                                             sum(t.get("max_score", 0.0) for t in data.get("tests", []))))
            scores.append(score)
            max_scores.append(max_score)
            finished = data.get("extra_data", {}).get("finished", False)
            writer.writerow([
                item.submission_id,
                "; ".join(str(s.get("name", "")) for s in item.submitters),
                "; ".join(str(s.get("email", "")) for s in item.submitters),
                "; ".join(str(s.get("sid", "")) for s in item.submitters),
                item.created_at, f"{score:g}", f"{max_score:g}", "graded" if finished else "incomplete",
                *[f"{per_test[c]['score']:g}" if c in per_test else "" for c in columns],
            ])
    summary = {
        "submissions": len(items),
        "mean_score": sum(scores) / len(scores) if scores else 0.0,
        "max_score": max(max_scores) if max_scores else 0.0,
        "incomplete": sum(1 for i in items if not results.get(i.submission_id, {}).get("extra_data", {})
                          .get("finished", False)),
        "most_failed": [{"test": label, "failed": count} for label, count in failures.most_common(10)],
        **(run or {}),
    }
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    histogram = _histogram(scores, summary["max_score"], out_dir / "score_histogram.png")
    return out_csv, summary_path, histogram


def _histogram(scores: list[float], max_score: float, path: Path) -> Path | None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    plot_histogram(axis, scores, max_score)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_histogram(axis: Any, scores: list[float], max_score: float) -> None:
    """Draw the score histogram on a matplotlib ``axis``: its y-axis counts whole students (integer ticks).

    Args:
        axis: a matplotlib Axes.
        scores: every submission's total score.
        max_score: the assignment's points (the x-axis' end).
    """
    from matplotlib.ticker import MaxNLocator

    bins = min(20, max(5, len(set(scores))))
    axis.hist(scores, bins=bins, range=(0, max(max_score, max(scores, default=0.0)) or 1.0), color="#3b7dd8",
              edgecolor="white")
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("score")
    axis.set_ylabel("students")
    axis.set_title(f"{len(scores)} submissions, mean {sum(scores) / max(1, len(scores)):.1f} / {max_score:g}")

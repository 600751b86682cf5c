"""``cvgrade batch``: a mixed export (correct, buggy, crashing, hanging) regraded in parallel, resumably.

The real gradings run fcos_detection cut to its nms and box_iou tests with a 5 s call timeout
(``bench.batch.reduced_project``, through ``CVGRADE_ROOT``): the batch machinery is the same, and a
hanging submission costs seconds instead of the whole-submission timeout.
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grader import manifest as manifests
from grader.batch import locate_export, read_export, run_batch
from grader.cli import app

ASSIGNMENT = "fcos_detection"


@pytest.fixture(scope="module", autouse=True)
def reduced_suite(tmp_path_factory: pytest.TempPathFactory):
    from grader import paths

    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(paths.project_root()))  # bench/ is not installed
        from bench.batch import reduced_project

        root, points = reduced_project(tmp_path_factory.mktemp("reduced"))
        patch.setenv("CVGRADE_ROOT", str(root))
        yield points


def make_export(root: Path, kinds: list[str]) -> Path:
    source = (manifests.get(ASSIGNMENT).reference_dir / "detection_utils.py").read_text()
    variants = {
        "correct": source,
        "buggy": source.replace("> threshold", ">= threshold"),
        "crash": "import os\nos._exit(1)\n",
        "hang": source.replace("    return _greedy_nms(boxes, scores, iou_threshold)\n",
                               "    while True:\n        pass\n"),
    }
    root.mkdir(parents=True)
    meta = []
    for index, kind in enumerate(kinds):
        folder = root / f"submission_{100 + index}"
        (folder / "hw1").mkdir(parents=True)
        for name in manifests.get(ASSIGNMENT).student_files:  # the reference's other files, unchanged
            shutil.copy(manifests.get(ASSIGNMENT).reference_dir / name, folder / "hw1" / name)
        (folder / "hw1" / "detection_utils.py").write_text(variants[kind])
        meta.append(f"submission_{100 + index}:\n  :submitters:\n  - :name: Student {index}\n    :sid: '{index}'\n"
                    f"    :email: s{index}@u.edu\n  :created_at: 2024-02-20 10:00:00.000000000 -05:00\n")
    (root / "submission_metadata.yml").write_text("".join(meta))
    return root


def test_read_export_parses_gradescope_metadata(tmp_path):
    export = make_export(tmp_path / "export", ["correct", "buggy"])
    items = read_export(export)
    assert [i.submission_id for i in items] == ["submission_100", "submission_101"]
    assert items[1].submitters == [{"name": "Student 1", "sid": "1", "email": "s1@u.edu"}]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no submission folders"):
        read_export(empty)


def test_mixed_batch_is_graded_correctly_and_resumes(tmp_path):
    points = manifests.get(ASSIGNMENT).points
    export = make_export(tmp_path / "export", ["correct", "buggy", "crash", "hang"])
    seen = []
    result = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=2, timeout=150,
                       on_progress=lambda done, total, last: seen.append((done, total)))
    assert result.graded == 4 and result.reused == 0 and seen[-1] == (4, 4)
    scores = result.scores
    assert scores["submission_100"] == pytest.approx(points)
    assert 0 < scores["submission_101"] < points
    assert scores["submission_102"] == 0
    assert scores["submission_103"] < points
    rows = list(csv.DictReader(open(tmp_path / "grades.csv")))
    assert [r["submission"] for r in rows] == ["submission_100", "submission_101", "submission_102", "submission_103"]
    assert rows[0]["names"] == "Student 0" and rows[0]["emails"] == "s0@u.edu"
    assert float(rows[0]["score"]) == pytest.approx(points)
    per_test = [c for c in rows[0] if c[:1].isdigit()]
    assert per_test and all(rows[0][c] != "" for c in per_test)
    summary = json.loads(result.summary_path.read_text())
    assert summary["submissions"] == 4 and summary["most_failed"]
    assert result.histogram_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for item in ("submission_100", "submission_103"):
        assert (result.out_dir / item / "results.json").is_file()

    # resume: nothing is regraded; a changed submission is
    again = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=2, timeout=150)
    assert again.graded == 0 and again.reused == 4 and again.reasons == {}
    (export / "submission_102" / "hw1" / "detection_utils.py").write_text(
        (export / "submission_100" / "hw1" / "detection_utils.py").read_text())
    third = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=1, timeout=150)
    assert third.graded == 1 and third.scores["submission_102"] == pytest.approx(points)
    assert third.reasons == {"submission changed": 1}
    assert "1 graded: 1 submission changed; 3 reused" in third.describe()
    summary = json.loads(third.summary_path.read_text())
    assert summary["graded"] == 1 and summary["reused"] == 3 and summary["graded_because"] == {"submission changed": 1}


def test_a_changed_expected_value_regrades_on_resume(tmp_path):
    """A resumed batch reuses a result only when the grader is the same: change one test's expected value and
    every submission is regraded, with the new scores."""
    from grader import paths

    export = make_export(tmp_path / "export", ["correct", "buggy"])
    first = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=1, timeout=150)
    assert first.reasons == {"new": 2}
    points = manifests.get(ASSIGNMENT).points
    assert first.scores["submission_100"] == pytest.approx(points)
    test_file = paths.suites_root() / ASSIGNMENT / "public" / "test_nms_public.py"
    original = test_file.read_text()
    right = "expected = torch.tensor([[1 / 7, 0.0, 0.0, 1.0]"
    assert right in original
    test_file.write_text(original.replace(right, "expected = torch.tensor([[1 / 8, 0.0, 0.0, 1.0]"))
    try:
        second = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=1, timeout=150)
    finally:
        test_file.write_text(original)
    assert second.graded == 2 and second.reused == 0 and second.reasons == {"grader changed": 2}
    assert second.scores["submission_100"] < first.scores["submission_100"]
    third = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=1, timeout=150)
    assert third.reasons == {"grader changed": 2}  # restored: a different grader again
    assert third.scores == first.scores
    forced = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", workers=1, timeout=150, force=True)
    assert forced.reasons == {"--force": 2} and forced.reused == 0 and forced.scores == first.scores


def test_a_folder_that_holds_the_export_is_searched_one_level_down(tmp_path):
    export = make_export(tmp_path / "downloads" / "assignment_4242_export", ["correct"])
    (tmp_path / "downloads" / "notes").mkdir()
    assert locate_export(tmp_path / "downloads") == export
    assert locate_export(export) == export
    nothing = tmp_path / "nothing"
    (nothing / "some_folder").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="is not a Gradescope export: expected submission_metadata.yml"):
        locate_export(nothing)
    make_export(tmp_path / "two" / "a_export", ["correct"])
    make_export(tmp_path / "two" / "b_export", ["correct"])
    with pytest.raises(FileNotFoundError, match="found 2 exports inside: a_export, b_export"):
        locate_export(tmp_path / "two")
    result = CliRunner().invoke(app, ["batch", ASSIGNMENT, str(nothing), "--out", str(tmp_path / "g.csv")])
    assert result.exit_code == 2 and "is not a Gradescope export" in " ".join(result.output.split())


def test_zip_export_on_a_dask_local_cluster_through_the_cli(tmp_path):
    pytest.importorskip("dask.distributed")
    export = make_export(tmp_path / "assignment_1_export", ["correct", "buggy"])
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in export.rglob("*"):
            zf.write(path, path.relative_to(tmp_path).as_posix())
    result = CliRunner().invoke(app, ["batch", ASSIGNMENT, str(archive), "--out", str(tmp_path / "g.csv"),
                                      "--dask", "local", "--workers", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert len(rows) == 2 and float(rows[0]["score"]) > float(rows[1]["score"]) > 0
    assert "tests most often failed" in result.output



def test_parallel_workers_fall_back_to_one_when_they_would_share_a_user(tmp_path, monkeypatch):
    """As root without PID namespaces, stopping one worker stops every process of its user: grade one at a time."""
    import threading
    import time

    import grader.batch

    running, most = [0], [0]
    lock = threading.Lock()

    def fake_grade_one(assignment, folder, out, timeout, profile=None):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        data = {"score": 1.0, "tests": [{"name": "t", "score": 1.0, "max_score": 1.0, "status": "passed"}]}
        Path(out).write_text(json.dumps(data))
        return data

    monkeypatch.setattr(grader.batch, "_grade_one", fake_grade_one)
    export = make_export(tmp_path / "export", ["correct"] * 3)
    monkeypatch.setattr(grader.batch, "shares_worker_user", lambda: False)
    run_batch(ASSIGNMENT, export, tmp_path / "parallel.csv", workers=3)
    assert most[0] > 1
    most[0] = 0
    monkeypatch.setattr(grader.batch, "shares_worker_user", lambda: True)
    with pytest.warns(RuntimeWarning, match="one submission at a time"):
        run_batch(ASSIGNMENT, export, tmp_path / "serial.csv", workers=3)
    assert most[0] == 1


def test_a_grading_past_its_time_limit_still_writes_valid_results(tmp_path):
    """The whole-run limit of ``api.grade`` (what a batch's ``timeout`` sets): the grading is stopped, and a
    valid results.json says why."""
    from grader import api

    export = make_export(tmp_path / "export", ["hang"])
    out = tmp_path / "results.json"
    result = api.grade(ASSIGNMENT, export / "submission_100" / "hw1", out, timeout=12)
    assert result.returncode == -9
    assert api.validate_results(json.loads(out.read_text())) == []
    assert result.results["score"] < manifests.get(ASSIGNMENT).points
    assert result.results["output"].startswith("Grading was stopped after 12 s")


def test_a_result_of_another_profile_is_not_reused(tmp_path, monkeypatch):
    """Regrading in another profile (``--profile``) grades again, and says why."""
    import grader.batch

    calls = []

    def fake_grade_one(assignment, folder, out, timeout, profile=None):
        calls.append(profile)
        data = {"score": 1.0, "tests": [{"name": "t", "score": 1.0, "max_score": 1.0, "status": "passed"}]}
        Path(out).write_text(json.dumps(data))
        return data

    monkeypatch.setattr(grader.batch, "_grade_one", fake_grade_one)
    export = make_export(tmp_path / "export", ["correct"])
    first = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv")
    again = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv")
    other = run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", profile="course")
    assert (first.graded, again.graded, again.reused) == (1, 0, 1)
    assert other.graded == 1 and other.reasons == {"profile changed": 1}
    assert calls == ["extended", "course"]  # the reduced suite's default profile, then the one asked for
    with pytest.raises(manifests.ManifestError, match="has no profile 'everything'"):
        run_batch(ASSIGNMENT, export, tmp_path / "grades.csv", profile="everything")


def test_csv_columns_follow_test_numbers_not_text():
    from grader.batch import _test_columns

    tests = [{"number": n, "name": f"t{n}"} for n in ("10.1", "2.1", "1.3", "1.10")] + [{"name": "free"}]
    assert _test_columns({"a": {"tests": tests}}) == ["1.3 t1.3", "1.10 t1.10", "2.1 t2.1", "10.1 t10.1", "free"]


def test_the_histogram_counts_whole_students():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from grader.batch import plot_histogram

    figure, axis = plt.subplots()
    plot_histogram(axis, [10.0, 12.5, 30.0], 60)
    figure.canvas.draw()
    ticks = [t for t in axis.get_yticks() if axis.get_ylim()[0] <= t <= axis.get_ylim()[1]]
    plt.close(figure)
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert axis.get_ylabel() == "students"

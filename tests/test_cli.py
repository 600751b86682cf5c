"""The command line end to end, with the real sandbox: reference full, template zero, buggy partial."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from grader import api
from grader.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def buggy(tmp_path_factory):
    from grader import manifest as manifests

    folder = tmp_path_factory.mktemp("buggy")
    source = (manifests.get("fcos_detection").reference_dir / "detection_utils.py").read_text()
    (folder / "detection_utils.py").write_text(source.replace("> threshold", ">= threshold"))
    return folder


def test_list_shows_assignments():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "fcos_detection" in result.output


@pytest.mark.parametrize("submission", ["reference", "template", "buggy"])
def test_grade_writes_valid_results_and_exits_zero(tmp_path, submission, buggy):
    from grader import manifest as manifests

    points = manifests.get("fcos_detection").points
    out = tmp_path / "results.json"
    target = str(buggy) if submission == "buggy" else submission
    result = runner.invoke(app, ["grade", "fcos_detection", target, "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert not api.validate_results(data)
    assert data["extra_data"]["max_score"] == pytest.approx(points)
    if submission == "reference":
        assert data["score"] == pytest.approx(points)
    elif submission == "template":
        assert data["score"] == 0 and all("Not implemented yet" in t["output"] or t["max_score"] == 0
                                          for t in data["tests"])
    else:
        assert 0 < data["score"] < points
    assert "total" in result.output


def test_grade_of_a_missing_submission_still_writes_results(tmp_path):
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["grade", "fcos_detection", str(tmp_path / "nowhere"), "--out", str(out)])
    assert result.exit_code == 0
    data = json.loads(out.read_text())
    assert not api.validate_results(data) and data["score"] == 0
    assert "no submission at" in data["output"] or any("no submission at" in t["output"] for t in data["tests"])


def test_unknown_assignment_writes_results_that_say_so_and_exits_zero(tmp_path):
    """Grading mode exits 0 for every input (Gradescope reads results.json, not the status)."""
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["grade", "no_such_assignment", "--out", str(out)])
    assert result.exit_code == 0 and "unknown assignment" in result.output
    data = json.loads(out.read_text())
    assert not api.validate_results(data) and data["score"] == 0
    assert "misconfigured" in data["output"] and "no_such_assignment" in data["output"]


def test_version():
    from grader import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cvgrade {__version__}"


def test_a_score_of_zero_is_explained_above_the_table(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["grade", "fcos_detection", str(empty), "--out", str(out)])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "score 0:" in text and "MISSING detection_utils.py" in text
    assert text.index("score 0:") < text.index("total 0 / 60")
    syntax = tmp_path / "syntax"
    syntax.mkdir()
    # Both files broken: with only detection_utils.py broken, one_stage_detector.py's FPN and head are
    # graded all the same (its failing sibling import is left out) and earn their points.
    (syntax / "detection_utils.py").write_text("def nms(:\n")
    (syntax / "one_stage_detector.py").write_text("class FCOS(:\n")
    result = runner.invoke(app, ["grade", "fcos_detection", str(syntax), "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 0 and "score 0:" in text and "SyntaxError" in text, text[:3000]


def test_a_pytest_that_cannot_start_still_gives_valid_results(tmp_path):
    out = tmp_path / "results.json"
    result = api.grade("fcos_detection", "reference", out, extra_args=["--no-such-option"])
    assert not api.validate_results(result.results)
    assert result.results["tests"][-1]["name"] == "Grading could not finish"
    assert "no-such-option" in result.results["tests"][-1]["output"]


def test_check_explains_failures_and_sets_exit_status(tmp_path):
    from grader import manifest as manifests

    source = (manifests.get("fcos_detection").reference_dir / "detection_utils.py").read_text()
    (tmp_path / "detection_utils.py").write_text(
        source.replace("return ratio.sqrt().masked_fill(background, -1)", "return ratio.masked_fill(background, -1)")
        .replace("inter = width.clamp(min=0) * height.clamp(min=0)", "inter = width * height"))
    result = runner.invoke(app, ["check", "fcos_detection", str(tmp_path)])
    assert result.exit_code == 1
    assert "public tests" in result.output and "Hint:" in result.output
    assert "centerness" in result.output and "box_iou" not in result.output  # box_iou: the extended profile's
    result = runner.invoke(app, ["check", "fcos_detection", str(tmp_path), "--profile", "extended"])
    assert result.exit_code == 1 and "box_iou" in result.output
    result = runner.invoke(app, ["check", "fcos_detection", "reference"])
    assert result.exit_code == 0


def test_check_leaves_no_results_folder_behind(tmp_path, monkeypatch):
    """``cvgrade check`` writes its results.json to a temporary folder: removed once the results are read."""
    import tempfile

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    result = api.check("fcos_detection", "reference")
    assert result.path is None and result.results["score"] > 0
    assert [p.name for p in temporary.iterdir() if p.name.startswith("cvgrade-check-")] == []


def test_check_runs_only_the_tests_a_keyword_selects():
    result = runner.invoke(app, ["check", "fcos_detection", "reference", "-k", "centerness"])
    assert result.exit_code == 0, result.output
    nodeids = [t["extra_data"]["nodeid"] for t in api.check("fcos_detection", "reference", keyword="centerness").tests]
    assert nodeids and all("centerness" in n for n in nodeids), nodeids
    result = runner.invoke(app, ["check", "fcos_detection", "reference", "-k", "nms"])
    assert result.exit_code == 2 and "no public test matches -k 'nms' in profile course" in result.output
    result = runner.invoke(app, ["check", "fcos_detection", "reference", "-k", "nms", "--profile", "extended"])
    assert result.exit_code == 0 and "nms" in result.output


def test_check_runs_only_one_question():
    result = api.check("fcos_detection", "reference", questions=["3"])
    numbers = [t.get("number", "") for t in result.tests]
    assert numbers and all(n == "3" or n.startswith("3.") for n in numbers), numbers
    assert result.score == pytest.approx(result.max_score) and result.max_score > 0


def test_grade_with_a_question_reports_only_its_points(tmp_path):
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["grade", "fcos_detection", "reference", "--out", str(out), "--question", "3.1"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert not api.validate_results(data)
    assert {t.get("number", "").rsplit(".", 1)[0] if t.get("number", "").count(".") > 1 else t.get("number")
            for t in data["tests"]} == {"3.1"}
    assert all(t["name"] != "Tests that did not run" for t in data["tests"])


@pytest.mark.parametrize("args, quoted", [(["--question", "four"], "'four'"), (["-k", " "], "' '")])
def test_a_bad_selection_is_refused_and_quoted(args, quoted):
    result = runner.invoke(app, ["check", "fcos_detection", "reference", *args])
    assert result.exit_code == 2 and quoted in result.output


def test_a_selection_that_matches_nothing_says_so(tmp_path):
    result = runner.invoke(app, ["check", "fcos_detection", "reference", "-k", "no_such_test_anywhere"])
    assert result.exit_code == 2 and "no public test matches -k 'no_such_test_anywhere'" in result.output
    assert api.grade("fcos_detection", "reference", questions=["99"], out=tmp_path / "r.json").unmatched == "question 99 in profile course"


def test_question_matches_numbers_below_it():
    from grader.plugin import question_matches

    assert question_matches("4", "4") and question_matches("4.1", "4") and question_matches("4.1.2", "4.1")
    assert not question_matches("40.1", "4") and not question_matches(None, "4") and not question_matches("4", "4.1")


def test_list_is_readable_at_80_columns():
    from grader import manifest as manifests

    result = runner.invoke(app, ["list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    for manifest in manifests.discover().values():
        assert manifest.name in lines  # each name whole, on its own line
        assert all(name in " ".join(result.output.split()) for name in manifest.student_files)

"""What a person reads: failures said once, hidden points, no GPU-only rows on a CPU assignment, escaped
names, NaN differences, near file names (issue 23)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from rich.console import Console

from grader import api
from grader.cli import _score_table, failure_groups, shown_tests
from grader.compare import assert_close

NOT_IMPLEMENTED = ("Not implemented yet in one_stage_detector.FCOS(...): TODO: FCOS.__init__\n"
                   "Traceback (your files only):\n  File \"one_stage_detector.py\", line 9, in __init__")


def record(name: str, output: str = "", status: str = "failed", **extra) -> dict:
    return {"name": name, "score": 0.0, "max_score": extra.pop("max_score", 1.0), "status": status,
            "output": output, "extra_data": {"outcome": status, **extra}}


def rendered(result: api.GradeResult) -> str:
    console = Console(width=200, record=True)
    console.print(_score_table(result, "fcos_detection: public tests"))
    return console.export_text()


def test_the_same_not_implemented_block_is_said_once():
    tests = [record("a", NOT_IMPLEMENTED), record("b", NOT_IMPLEMENTED), record("c", "expected 3, got 4"),
             record("d", NOT_IMPLEMENTED.replace("FCOS", "FPN")), record("e", "passed", status="passed"),
             record("f", "expected 3, got 4")]
    groups = failure_groups(tests)
    assert groups == [(["a", "b"], NOT_IMPLEMENTED), (["c"], "expected 3, got 4"),
                      (["d"], NOT_IMPLEMENTED.replace("FCOS", "FPN")), (["f"], "expected 3, got 4")]


def test_bracketed_test_names_show_whole_and_gpu_only_rows_are_not_listed():
    tests = [record("returns [B, H*W, C] as (B, H*W, C)", number="2.1"),
             record("speed [nms]"), record("speed [map]"),
             record("cuda speed [nms]", status="passed", max_score=0.0, gpu_only=True)]
    result = api.GradeResult(results={"score": 0, "tests": tests}, path=None, returncode=1, hidden_points=25)
    text = rendered(result)
    assert "returns [B, H*W, C] as (B, H*W, C)" in text
    assert "speed [nms]" in text and "speed [map]" in text
    assert "cuda speed" not in text and "1 GPU-only checks not listed" in text
    assert "25 more points are in hidden tests" in text
    assert shown_tests(tests) == tests[:3]


def test_the_summary_says_how_many_points_are_hidden():
    summary = "Score: 2 / 30\n15 failed"
    assert api.with_hidden_points(summary, 30) == "Score 2 / 30; 30 more points are in hidden tests\n15 failed"
    assert api.with_hidden_points(summary, 0) == summary
    assert api.hidden_points(60, 35) == 25 and api.hidden_points(35, 35) == 0


def test_check_of_the_template_says_hidden_points_and_not_implemented_once():
    from typer.testing import CliRunner

    from grader.cli import app

    result = CliRunner().invoke(app, ["check", "fcos_detection", "template", "--question", "2"])
    assert result.exit_code == 1
    text = result.output
    assert text.count("Not implemented yet in one_stage_detector.FCOSPredictionNetwork") == 1, text
    assert "tests stop at the same place" in text


def test_check_reports_hidden_points_of_a_whole_public_run():
    data = api.check("fcos_detection", "template")
    assert data.hidden_points == pytest.approx(60 - data.max_score) and data.hidden_points > 0
    assert f"Score 0 / {data.max_score:g}; {data.hidden_points:g} more points are in hidden tests" in \
        data.results["output"]


def test_nans_at_the_same_positions_are_not_a_largest_difference_of_inf():
    got = torch.tensor([1.0, math.nan, 3.0])
    with pytest.raises(AssertionError) as info:
        assert_close(got, torch.tensor([1.0, math.nan, 3.5]), equal_nan=True)
    assert "largest difference 0.5" in str(info.value) and "inf" not in str(info.value)
    with pytest.raises(AssertionError) as info:
        assert_close(got, torch.tensor([1.0, math.nan, 3.0]))
    text = str(info.value)
    assert "inf" not in text and "1 value(s) are NaN in both results, at the same positions" in text
    with pytest.raises(AssertionError) as info:
        assert_close(got, torch.tensor([1.0, 2.0, 3.0]))
    assert "largest difference inf" in str(info.value)  # a NaN against a number is as far as it gets


def test_results_json_marks_gpu_only_checks(tmp_path):
    """fcos_detection grades on CPUs: its CUDA speed checks carry gpu_only (the tables leave them out)."""
    out = tmp_path / "results.json"
    api.grade("fcos_detection", "reference", out, profile="extended", keyword="test_speed_cuda")
    tests = json.loads(out.read_text())["tests"]
    assert tests and all(t["extra_data"].get("gpu_only") and t["max_score"] == 0 for t in tests), tests
    assert shown_tests(tests) == []

"""The benchmarks still run (quick mode: smallest sizes, nothing written); they are not tests themselves."""

from __future__ import annotations

import pytest


def test_benchmarks_run_in_quick_mode(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pycocotools")
    pytest.importorskip("torchmetrics")
    from grader import paths

    monkeypatch.syspath_prepend(str(paths.project_root()))  # bench/ is not installed; `pytest` alone misses it
    from bench import run_all

    results = run_all.main(["--quick"])
    assert set(results) == set(run_all.BENCHES)
    assert all(row["equal"] for row in results["nms"]["rows"])
    assert results["seg_metrics"]["rows"][0]["cm_equal"]
    assert results["fcos_matching"]["rows"][0]["equal_without_centre_sampling"]
    assert results["compute_ap"]["rows"][0]["max_abs_diff"] < 1e-9
    assert results["grading_budget"]["rows"][0]["exit"] == 0
    assert "== bench.nms ==" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_batch_benchmark_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.batch in quick mode: 12 generated submissions, each scored as its variant scored alone."""
    from grader import paths

    monkeypatch.syspath_prepend(str(paths.project_root()))
    from bench import batch

    result = batch.main(["--quick"])
    assert result["variant_scores"]["correct"] == result["points"] > 0
    assert result["variant_scores"]["crash"] == result["variant_scores"]["syntax"] == 0
    assert all(0 < result["variant_scores"][k] < result["points"] for k in result["variant_scores"] if ":" in k)
    assert [row["wrong_scores"] for row in result["rows"]] == [0]
    assert sum(result["mix"].values()) == 12

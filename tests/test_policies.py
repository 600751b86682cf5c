"""Late penalty (with per-student extensions) and the daily submission limit, from submission_metadata.json."""

from __future__ import annotations

import pytest

from grader.manifest import GradescopeSettings
from grader.policies import apply_policies, days_late

RESULTS = {"score": 50.0, "output": "graded", "tests": [{"name": "t", "score": 50.0, "max_score": 60.0}]}


def metadata(created: str, due: str = "2024-02-21T23:59:00-05:00", user_due: str | None = None,
             previous: list | None = None) -> dict:
    user = {"email": "s@u.edu", "id": 1, "name": "S"}
    if user_due:
        user["assignment"] = {"due_date": user_due}
    return {"created_at": created, "assignment": {"due_date": due, "title": "HW1"}, "users": [user],
            "previous_submissions": previous or []}


@pytest.mark.parametrize(("created", "expected"), [
    ("2024-02-21T23:00:00-05:00", 0),
    ("2024-02-22T00:00:00-05:00", 1),
    ("2024-02-22T23:58:59-05:00", 1),
    ("2024-02-23T00:00:01-05:00", 2),
    ("2024-02-22T06:00:00.123456+00:00", 1),
])
def test_days_late_counts_started_days(created, expected):
    assert days_late(metadata(created)) == expected


def test_extension_moves_the_due_date():
    assert days_late(metadata("2024-02-23T10:00:00-05:00", user_due="2024-02-24T23:59:00-05:00")) == 0


def test_late_penalty_and_cutoff():
    settings = GradescopeSettings(late_penalty_per_day=0.1, max_late_days=3)
    late = apply_policies(RESULTS, settings, metadata("2024-02-23T10:00:00-05:00"))
    assert late["score"] == pytest.approx(40.0) and "2 day(s) late: 20% off" in late["output"]
    assert late["extra_data"]["policies"]["late"]["days"] == 2
    assert RESULTS["score"] == 50.0  # not modified in place
    too_late = apply_policies(RESULTS, settings, metadata("2024-02-28T10:00:00-05:00"))
    assert too_late["score"] == 0 and "after the last accepted day" in too_late["output"]
    on_time = apply_policies(RESULTS, settings, metadata("2024-02-20T10:00:00-05:00"))
    assert on_time == RESULTS


def test_daily_submission_limit_keeps_the_previous_result():
    settings = GradescopeSettings(daily_submission_limit=2)
    earlier = {"score": 33.0, "output": "old run", "tests": []}
    previous = [{"submission_time": "2024-02-20T09:00:00-05:00", "score": 20.0, "results": {"score": 20.0}},
                {"submission_time": "2024-02-20T11:00:00-05:00", "score": 33.0, "results": earlier}]
    limited = apply_policies(RESULTS, settings, metadata("2024-02-20T12:00:00-05:00", previous=previous))
    assert limited["score"] == 33.0 and "limit is 2" in limited["output"]
    assert "2024-02-21T09:00" in limited["output"]
    allowed = apply_policies(RESULTS, settings, metadata("2024-02-21T12:00:00-05:00", previous=previous))
    assert allowed["score"] == 50.0

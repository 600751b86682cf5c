"""Course policies applied to results from Gradescope's ``submission_metadata.json``.

* **Late penalty**: ``late_penalty_per_day`` of the score per started day after the
  due date (the student's own due date when Gradescope records an extension);
  after ``max_late_days`` the score is 0.
* **Daily submission limit**: over ``daily_submission_limit`` submissions in the
  past 24 hours, the previous submission's results are kept and the student is
  told when the next graded submission is possible.

Both are reported to the student in the results' top-level output and recorded in
``extra_data["policies"]``.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta

from grader.manifest import GradescopeSettings


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S.%f %z")
        except ValueError:
            return None


def due_date(metadata: dict) -> datetime | None:
    """The submitter's due date: a per-user extension if present, else the assignment's."""
    dates = []
    for user in metadata.get("users") or []:
        user_due = _parse_time(((user or {}).get("assignment") or {}).get("due_date"))
        if user_due is not None:
            dates.append(user_due)
    if dates:
        return max(dates)
    return _parse_time((metadata.get("assignment") or {}).get("due_date"))


def days_late(metadata: dict) -> int:
    """Started days between the due date and the submission (0 when on time or unknown)."""
    submitted = _parse_time(metadata.get("created_at"))
    due = due_date(metadata)
    if submitted is None or due is None or submitted <= due:
        return 0
    return math.ceil((submitted - due) / timedelta(days=1))


def apply_policies(results: dict, settings: GradescopeSettings, metadata: dict | None) -> dict:
    """Results with the late penalty and submission limit applied (a new dict; ``results`` is unchanged)."""
    if not metadata:
        return results
    out = copy.deepcopy(results)
    notes: list[str] = []
    applied: dict = {}
    limit = settings.daily_submission_limit
    if limit:
        submitted = _parse_time(metadata.get("created_at"))
        previous = [p for p in metadata.get("previous_submissions") or [] if isinstance(p, dict)]
        if submitted is not None:
            recent = sorted(t for t in (_parse_time(p.get("submission_time")) for p in previous)
                            if t is not None and submitted - t < timedelta(days=1))
            if len(recent) >= limit:
                last = max(previous, key=lambda p: _parse_time(p.get("submission_time")) or datetime.min.replace(
                    tzinfo=submitted.tzinfo))
                kept = last.get("results") if isinstance(last.get("results"), dict) else None
                next_time = recent[len(recent) - limit] + timedelta(days=1)
                message = (f"You have made {len(recent)} submissions in the past 24 hours; the limit is {limit}. "
                           f"This submission was not graded: your previous result stands. Your next submission "
                           f"will be graded from {next_time.isoformat(timespec='minutes')}.")
                if kept is not None:
                    out = copy.deepcopy(kept)
                else:
                    out["tests"] = []
                    out["score"] = float(last.get("score", 0.0) or 0.0)
                out["output"] = message + "\n\n" + str(out.get("output", ""))
                out.setdefault("extra_data", {})["policies"] = {"submission_limit": {"count": len(recent),
                                                                                     "limit": limit}}
                return out
    late = days_late(metadata)
    if late and (settings.late_penalty_per_day or settings.max_late_days is not None):
        raw = float(out.get("score", sum(t.get("score", 0.0) for t in out.get("tests", []))))
        if settings.max_late_days is not None and late > settings.max_late_days:
            factor = 0.0
            notes.append(f"Submitted {late} day(s) late, after the last accepted day ({settings.max_late_days}): "
                         "the score is 0.")
        else:
            factor = max(0.0, 1.0 - settings.late_penalty_per_day * late)
            notes.append(f"Submitted {late} day(s) late: {settings.late_penalty_per_day * late:.0%} off, "
                         f"{raw:g} -> {raw * factor:g}.")
        out["score"] = round(raw * factor, 6)
        applied["late"] = {"days": late, "factor": factor, "score_before": raw}
    if notes:
        out["output"] = "\n".join(notes) + "\n\n" + str(out.get("output", ""))
    if applied:
        out.setdefault("extra_data", {})["policies"] = applied
    return out

"""The speed-check harness: credit on a log scale, staged inputs, identical workers, wrong-fast gets nothing."""

from __future__ import annotations

import math

import pytest
from engine_support import by_name, make_project, run

from grader.perf import SpeedPolicy

REFERENCE = '''\
import torch

def add(a, b):
    print("adding", a, b)
    return a + b

def scale(x, k):
    return x * k

def total(x):
    return torch.cdist(x, x).sum(dim=1)
'''

TESTS = '''
import pytest, torch
from grader.compare import assert_close
from grader.perf import SpeedPolicy

X = torch.rand(700, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.weight(2)
def test_total_speed(timing):
    """total is fast"""
    timing.grade("mod.total", (X,), check=lambda got, want: assert_close(got, want), repeats=5,
                 policy=SpeedPolicy(full_at=5, none_at=25))
'''
# Row sums, not the 700 x 700 matrix: a timed call brings its result back (issue 20), and moving 3.9 MB
# costs more than cdist itself (a 3.9 MB result squeezed the loop's ratio from over 25x to 13.5x).
# The Python loop is 65x (measured under load 6 on 2 cores) to 200x (quiet) slower than cdist,
# the same function is ~1x: thresholds 5x / 25x leave a wide margin both ways so the test never flakes.


def test_policy_credit_is_log_scaled():
    policy = SpeedPolicy(full_at=4, none_at=40)
    assert policy.credit(1.0) == 1.0 and policy.credit(4.0) == 1.0
    assert policy.credit(40.0) == 0.0 and policy.credit(1e9) == 0.0 and policy.credit(math.inf) == 0.0
    assert policy.credit(math.sqrt(160)) == pytest.approx(0.5)  # halfway on a log scale
    assert policy.credit(8.0) > policy.credit(16.0) > 0


@pytest.mark.parametrize(("body", "expected", "message"), [
    ("def total(x):\n    return torch.cdist(x, x).sum(dim=1)\n", 2.0, None),
    ("def total(x):\n    p = x.tolist()\n    return torch.tensor([[((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 "
     "for b in p] for a in p], dtype=x.dtype).sum(dim=1)\n", 0.0, "Speed of mod.total on cpu: yours"),
    ("def total(x):\n    return torch.cdist(x, x).sum(dim=1) + 1\n", 0.0, "its result of call 1 is wrong"),
], ids=["vectorized", "python-loop", "fast-but-wrong"])
def test_timing_fixture_awards_credit_by_ratio(pytester, monkeypatch, tmp_path, body, expected, message):
    make_project(pytester, monkeypatch, {"hidden/test_speed.py": TESTS}, reference=REFERENCE)
    submission = tmp_path / "sub"
    submission.mkdir()
    (submission / "mod.py").write_text(REFERENCE.split("def total")[0] + body)
    data, _ = run(pytester, f"--submission={submission}")
    record = by_name(data)["total is fast"]
    assert record["score"] == pytest.approx(expected)
    if message:
        assert message in record["output"]
    sandbox = data["extra_data"]["sandbox"]
    assert set(sandbox) == {"toy", "toy:reference"} and all(v["mode"] == "sandbox" for v in sandbox.values())

"""Speed checks that the student's worker cannot steer (issue 20): graded in real sandboxed workers.

A slow but correct submission that tampers with its own worker's request server must earn no
speed credit: answering a timed call before the work is done, or slowing the round trip that the
timing takes off, gains nothing, and remembering answers does not help on fresh inputs.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from grader.perf import SpeedPolicy, compare_speed
from grader.sandbox.process import ProcessConnection, SandboxSettings

HONEST_FAST = """\
def work(x):
    return x.sum(dim=0)
"""

SLOW = """\
import time


def work(x):
    time.sleep(0.05)  # about 100x the reference
    return x.sum(dim=0)
"""

# The server answers a timed call at once and runs the slow work later, when the result is fetched.
EARLY_ANSWER = SLOW + '''
from grader.sandbox import server as _server

_real = _server.WorkerServer.op_call_sync


class _Later:
    def __init__(self, server, request):
        self.server, self.request = server, request


def _early(self, request):
    if request.get("hold") is True:
        return _server.Held(_Later(self, dict(request, hold=False)))
    return _real(self, request)


_real_target = _server.WorkerServer._target


def _target(request):
    value = _real_target(request)
    return _real(value.server, value.request) if isinstance(value, _Later) else value


_server.WorkerServer.op_call_sync = _early
_server.WorkerServer._target = staticmethod(_target)
'''

# A slow round trip, taken off the student's time.
SLOW_PING = SLOW.replace("0.05", "0.02") + '''
import time as _time
from grader.sandbox import server as _server


def _ping(self, request):
    _time.sleep(0.2)
    return "pong"


_server.WorkerServer.op_ping = _ping
'''

# Remembers the answer of the first call: free on a fixed input set.
MEMO = SLOW + '''
_memo = {}
_slow = work


def work(x):
    key = (tuple(x.shape), float(x[0, 0]))
    if key not in _memo:
        _memo[key] = _slow(x)
    return _memo[key]
'''


def _worker(base: Path, name: str, code: str) -> ProcessConnection:
    folder = base / name
    folder.mkdir()
    (folder / "mod.py").write_text(code)
    for path in (base, folder):
        path.chmod(0o755)
    (folder / "mod.py").chmod(0o644)
    work = base / f"work-{name}"
    work.mkdir()
    settings = SandboxSettings(workdir=work, memory_limit=2 * 2**30)
    conn = ProcessConnection(str(folder), ["mod"], settings)
    conn.call_timeout = 20
    return conn


@pytest.fixture
def workers():
    """``make(code)``: ``mod.work`` of a fresh sandboxed worker running ``code``."""
    base = Path(tempfile.mkdtemp(prefix="cvgrade-timing-"))
    made: list[ProcessConnection] = []

    def make(code: str) -> object:
        conn = _worker(base, f"w{len(made)}", code)
        made.append(conn)
        return conn.import_module("mod").work

    yield make
    for conn in made:
        conn.close()
    shutil.rmtree(base, ignore_errors=True)


def _credit(student, reference, fresh: bool) -> float:
    kwargs = ({"inputs": lambda i: ((torch.rand(64, 8, generator=torch.Generator().manual_seed(i)),), {})}
              if fresh else {"args": (torch.rand(64, 8, generator=torch.Generator().manual_seed(0)),)})
    result = compare_speed(student, reference, name="work", repeats=5, warmup=2, give_up=None,
                           check=lambda got, expected: torch.testing.assert_close(got, expected),
                           policy=SpeedPolicy(full_at=3.0, none_at=10.0), **kwargs)
    return result.credit


@pytest.mark.parametrize("attack", ["early_answer", "slow_ping"])
def test_a_tampered_request_server_wins_no_speed_credit(workers, attack):
    code = {"early_answer": EARLY_ANSWER, "slow_ping": SLOW_PING}[attack]
    reference = workers(HONEST_FAST)
    honest = workers(HONEST_FAST)
    # The baseline earns full credit; a round trip of microseconds is noisy on a loaded machine, so
    # the honest worker gets three tries (the attack gets one).
    assert any(_credit(honest, reference, fresh=True) == 1.0 for _ in range(3))
    assert _credit(workers(code), reference, fresh=True) == 0.0


def test_remembered_answers_win_nothing_on_fresh_inputs(workers):
    reference = workers(HONEST_FAST)
    assert _credit(workers(MEMO), reference, fresh=True) == 0.0


def test_every_graded_speed_check_gets_fresh_inputs():
    """No check of a suite times one fixed input set (``inputs`` for every entry of CHECKS)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from test_speed_checks import LOOPED, speed_module

    for assignment in {a for a, _ in LOOPED}:
        for name, check in speed_module(assignment).CHECKS.items():
            assert "inputs" in check and "args" not in check, (assignment, name)

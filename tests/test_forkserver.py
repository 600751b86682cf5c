"""Workers forked from a fork server (``grader.sandbox.forkserver``): the same worker as a started one,
locked down the same way, sharing the grading process's pages of torch.

The fork server refuses a process with other Python threads (an xdist worker, this test process), so the
checks run in a fresh Python (``SCRIPT``), like the grading process that ``cvgrade grade`` starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader import paths
from grader.sandbox.forkserver import unavailable_reason

SEED_0_HASH_OF_ABC = -4594863902769663758  # hash("abc") in CPython 3.10-3.12 (64-bit) with PYTHONHASHSEED=0
SCRIPT = r'''
import json, os, sys, time
import torch
from grader.sandbox.forkserver import ForkServer, ForkedProcess
from grader.sandbox.client import StudentCrash
from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as

folder = sys.argv[1]
server = ForkServer.start()
report = {}

def private_dirty(pid):
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("Private_Dirty:")) // 1024

def worker_pid(conn):
    launcher = conn.proc.pid
    if "pid" in conn.defences.get("namespaces", []):  # the worker is the launcher's child (PID 1 inside)
        with open(f"/proc/{launcher}/task/{launcher}/children") as fh:
            return int(fh.read().split()[0])
    return launcher

settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as())
forked = ProcessConnection(folder, ["mod"], settings)
forked.fork_server = server
forked.call_timeout = 30
mod = forked.import_module("mod")
report["forked_class"] = type(forked.proc).__name__
report["double"] = mod.double(torch.tensor([1.0, 2.0])).tolist()
report["shout"] = mod.shout(3)
report["defences"] = forked.defences
report["environment"] = mod.environment()
report["forked_private_mb"] = private_dirty(worker_pid(forked))
try:
    mod.die()
except StudentCrash as exc:
    report["died"] = [exc.reason, str(exc)]
report["after_restart"] = forked.import_module("mod").double(torch.tensor([3.0])).tolist()
report["starts"] = forked.starts
try:
    forked.import_module("mod").hog(3)
except Exception as exc:
    report["hog"] = [type(exc).__name__, str(exc)[:300]]
forked.close()

started = ProcessConnection(folder, ["mod"], settings)
started.call_timeout = 30
started.import_module("mod").double(torch.tensor([1.0]))
report["started_class"] = type(started.proc).__name__
report["started_defences"] = started.defences
report["started_private_mb"] = private_dirty(worker_pid(started))
report["started_environment"] = started.import_module("mod").environment()
started.close()
server.close()
print("REPORT" + json.dumps(report))
'''

MODULE = '''
import os, sys
def double(x):
    return x * 2
def shout(n):
    print("x" * n)
    return n
def die():
    os._exit(7)
def hog(gib):
    return len(bytearray(int(gib * 2**30)))
def environment():
    import torch
    return {"hash_of_abc": hash("abc"), "path_has_project": any(p.startswith(PROJECT) and "site-packages" not in p for p in sys.path),
            "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("reference", "_pytest")),
            "env": sorted(os.environ), "threads": torch.get_num_threads(), "cwd": os.getcwd(),
            "fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("forked")
    (folder / "mod.py").write_text(f"PROJECT = {str(paths.project_root())!r}\n" + textwrap.dedent(MODULE))
    for path in (folder.parent, folder):
        os.chmod(path, 0o755)
    os.chmod(folder / "mod.py", 0o644)
    env = {**os.environ, "PYTHONHASHSEED": "0", "CVGRADE_WORKER_THREADS": "1"}
    env.pop("CVGRADE_FORK_SERVER", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(paths.project_root()))
    line = next((line for line in proc.stdout.splitlines() if line.startswith("REPORT")), None)
    assert line is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(line[len("REPORT"):])


def test_a_forked_worker_runs_student_code_like_a_started_one(report):
    assert report["forked_class"] == "ForkedProcess" and report["started_class"] == "Popen"
    assert report["double"] == [2.0, 4.0] and report["shout"] == 3
    forked, started = report["environment"], report["started_environment"]
    for key in ("env", "threads", "path_has_project"):
        assert forked[key] == started[key], key
    assert Path(forked["cwd"]).name == Path(started["cwd"]).name == "work"  # each its own working folder
    # The grading process's fixed hash seed: the same string hashes at every grading (a started worker's
    # 'python -I' ignores PYTHONHASHSEED, so its hashes change from one start to the next).
    assert forked["hash_of_abc"] == SEED_0_HASH_OF_ABC
    assert forked["modules"] == [] and forked["path_has_project"] is False
    # Nothing of the grader left open: the standard three, the two protocol pipes, and the listing's own.
    assert len(forked["fds"]) == len(started["fds"]) == 6, (forked["fds"], started["fds"])


def test_a_forked_worker_is_locked_down_like_a_started_one(report):
    defences = report["defences"]
    assert not defences["warnings"], defences
    # A thread started before unshare() once cost every namespace. (Folder lists come in set order.)
    def normalized(report: dict) -> list[str]:
        return sorted(", ".join(sorted(line.split(", "))) for line in report["defences"] + report["namespaces"])

    assert normalized(defences) == normalized(report["started_defences"])
    if os.geteuid() == 0:
        assert {"mount", "pid", "network"} <= set(defences["namespaces"]), defences
    assert any("memory limit" in line for line in defences["defences"])


def test_a_forked_workers_death_and_memory_limit_read_as_a_started_ones(report):
    reason, message = report["died"]
    assert reason == "exit" and "exit status 7" in message, message
    assert report["after_restart"] == [6.0] and report["starts"] == 2
    name, message = report["hog"]
    assert "memory" in message, report["hog"]


def test_a_forked_worker_shares_torch_with_the_grading_process(report):
    """Measured: 10-30 MB private after importing torch and one call, against 350-620 MB for a started
    worker (the CUDA build of torch 2.14.1)."""
    assert report["forked_private_mb"] * 3 < report["started_private_mb"], report


def test_no_fork_server_without_a_fixed_hash_seed_or_when_switched_off(monkeypatch):
    monkeypatch.delenv("CVGRADE_FORK_SERVER", raising=False)
    monkeypatch.setenv("PYTHONHASHSEED", "1")
    assert "PYTHONHASHSEED is not 0" in unavailable_reason([])
    monkeypatch.setenv("CVGRADE_FORK_SERVER", "0")
    assert unavailable_reason([]) == "CVGRADE_FORK_SERVER=0"


def test_the_reasons_in_a_single_threaded_process():
    """In a fresh Python (no other thread) hidden-test and reference modules block the fork; a thread does."""
    code = ("import json, threading, time; from grader.sandbox.forkserver import unavailable_reason as r; "
            "found = [r(['torch']), r(['grader.suites.x.hidden.test_a']), r(['reference'])]; "
            "threading.Thread(target=time.sleep, args=(1,)).start(); print(json.dumps(found + [r(['torch'])]))")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("CVGRADE_FORK_SERVER", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=str(Path(paths.project_root()))).stdout
    empty, hidden, reference, threaded = json.loads(out)
    assert empty == ""
    assert "hidden" in hidden and "reference" in reference
    assert "2 Python threads" in threaded


@pytest.mark.parametrize("switch", ["1", "0"])
def test_a_grading_says_whether_its_workers_were_forked_and_why_not(tmp_path, switch):
    """``cvgrade grade`` (a fresh grading process) forks its workers unless told not to, and says so."""
    env = {**os.environ, "CVGRADE_FORK_SERVER": switch}
    out = tmp_path / "results.json"
    subprocess.run([sys.executable, "-m", "grader.cli", "grade", "fcos_detection", "--question", "3", "-o", str(out),
                    "-q"], env=env, capture_output=True, text=True, timeout=300, check=True)
    results = json.loads(out.read_text())
    report = results["extra_data"]["sandbox"]["fcos_detection"]
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0
    if switch == "1":
        assert report["forked"] is True and "not_forked_because" not in report, report
    else:
        assert report["forked"] is False and report["not_forked_because"] == "no fork server: CVGRADE_FORK_SERVER=0"

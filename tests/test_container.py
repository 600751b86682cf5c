"""The grading machine's container: its limits read from cgroups, and a too-small one named as the cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import container
from grader.paths import project_root


def _v1_tree(root: Path, limits: dict[str, int], quota: int = -1, oom: int = 0) -> str:
    """A fake cgroup v1 tree: memory limits along /a/b, a CPU quota on /a; returns /proc/self/cgroup text."""
    for path, limit in limits.items():
        folder = root / "memory" / path.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (folder / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom}\n")
    cpu = root / "cpu" / "a"
    cpu.mkdir(parents=True)
    (cpu / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    return "4:memory:/a/b\n2:cpu,cpuacct:/a\n0::/\n"


def test_v1_limits_take_the_smallest_on_the_way_to_the_root(tmp_path):
    text = _v1_tree(tmp_path, {"/": 9223372036854771712, "/a": 2 * 2**30, "/a/b": 768 * 2**20}, quota=50000)
    limits = container.read_limits(tmp_path, text)
    assert limits.memory_limit == 768 * 2**20 and limits.cpus == 0.5 and limits.cgroup == "/a/b"
    text = _v1_tree(tmp_path / "open", {"/": 9223372036854771712, "/a/b": 9223372036854771712})
    assert container.read_limits(tmp_path / "open", text) == container.ContainerLimits(None, None, "/a/b")


def test_a_namespaced_container_sees_its_own_group_at_the_root(tmp_path):
    """Docker with a cgroup namespace: /proc/self/cgroup says ``/``, the limit sits in the mount's root."""
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(str(1536 * 2**20))
    assert container.read_limits(tmp_path, "4:memory:/\n").memory_limit == 1536 * 2**20
    assert container.read_limits(tmp_path, "4:memory:/docker/abc\n").memory_limit == 1536 * 2**20


def test_v2_limits_and_out_of_memory_kills(tmp_path):
    group = tmp_path / "box"
    group.mkdir()
    (group / "memory.max").write_text("805306368\n")
    (group / "cpu.max").write_text("50000 100000\n")
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (tmp_path / "memory.max").write_text("max\n")
    limits = container.read_limits(tmp_path, "0::/box\n")
    assert limits.memory_limit == 805306368 and limits.cpus == 0.5
    before = container.oom_kills(tmp_path, "0::/box\n")
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n")
    assert container.oom_kills(tmp_path, "0::/box\n") == before + 1


def test_the_messages_blame_the_container_only_when_it_is_below_the_measured_need():
    small = container.ContainerLimits(768 * 2**20, 0.5, "/")
    note = container.too_small_note(small, 3 * 2**30, "fcos_detection")
    assert "768 MB" in note and "3 GB" in note and "Autograder Settings" in note
    assert container.too_small_note(small, 512 * 2**20, "fcos_detection") is None
    decimal = container.ContainerLimits(int(1.5e9), 1.0, "/")  # "1.5GB" read as 10**9 bytes: the size asked for
    assert container.too_small_note(decimal, int(1.5 * 2**30), "fcos_detection") is None
    assert container.too_small_note(container.ContainerLimits(None, None, None), 3 * 2**30, "x") is None
    assert "not about your code" in container.out_of_memory_message(small, 3 * 2**30)
    assert "not about your code" not in container.out_of_memory_message(small, 512 * 2**20)


def _sized_container(memory: int, cpus: float | None = None):
    try:
        return container.SizedContainer(memory, cpus)
    except container.ContainerError as exc:
        pytest.skip(f"no control group for this test: {exc}")


def test_a_correct_submission_in_a_too_small_container_names_the_container(tmp_path):
    """The reference of fcos_detection graded in 400 MB (it needs its manifest's container_memory): no
    test output suggests the student's code exited or used too much memory; the results say the machine
    ran out of memory and that the container must be raised."""
    out = tmp_path / "results.json"
    box = _sized_container(400 * 2**20)
    with box:
        script = ("import sys; from grader import api; api.grade('fcos_detection', 'reference', sys.argv[1], "
                  "extra_args=['-k', 'nms'])")
        proc = subprocess.run([sys.executable, "-c", script, str(out)],
                              cwd=project_root(), capture_output=True, text=True, timeout=600,
                              preexec_fn=box.enter, env={**os.environ, "CVGRADE_WORKER_THREADS": "1"})
        kills = box.oom_kills()
    results = json.loads(out.read_text())
    assert kills > 0, "the grading fit in 400 MB: this test needs a smaller container"
    assert results["score"] < results["extra_data"].get("max_score", 60) or results["tests"][-1]["extra_data"].get(
        "outcome") == "grader_error", proc.stdout
    top = results["output"]
    assert "ran out of memory" in top or "This grading machine has" in top, top
    for test in results["tests"]:
        text = test.get("output", "")
        assert "did it call sys.exit" not in text, test
        assert "Your code's process was killed" not in text, test
        assert "Your code used more than" not in text, test


def test_memory_pressure_counts_limit_hits_along_the_chain_and_stalls(tmp_path):
    text = _v1_tree(tmp_path, {"/": 9223372036854771712, "/a": 2 * 2**30, "/a/b": 768 * 2**20})
    (tmp_path / "memory" / "a" / "b" / "memory.failcnt").write_text("40\n")
    (tmp_path / "memory" / "a" / "memory.failcnt").write_text("2\n")
    (tmp_path / "memory" / "a" / "b" / "memory.usage_in_bytes").write_text(f"{700 * 2**20}\n")
    pressure = container.memory_pressure(tmp_path, text)
    assert pressure.limit_hits == 42 and pressure.usage == 700 * 2**20  # the usage of the smallest limit's group
    group = tmp_path / "v2" / "box"
    group.mkdir(parents=True)
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 0\noom_kill 0\n")
    (group / "memory.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\n"
                                           "full avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n")
    pressure = container.memory_pressure(tmp_path / "v2", "0::/box\n")
    assert pressure == container.MemoryPressure(7, 2.5, None)
    later = container.MemoryPressure(19, 4.0, 10)
    assert later.since(pressure) == container.MemoryPressure(12, 1.5, 10)
    assert later.since(container.MemoryPressure(0, None)).stall_s is None


def test_a_timeout_is_the_containers_only_when_it_was_at_its_limit_and_below_the_need():
    small, big = container.ContainerLimits(768 * 2**20, 0.5, "/"), container.ContainerLimits(8 * 2**30, 2, "/")
    need = int(1.5 * 2**30)
    thrashing = container.MemoryPressure(limit_hits=5000, stall_s=40.0)
    message = container.short_of_memory_message(small, need, thrashing, timeout=60)
    assert "768 MB" in message and "1.5 GB" in message and "40 s" in message and "not about your code" in message
    assert container.short_of_memory_message(big, need, thrashing, timeout=60) is None  # big enough: the student's
    assert container.short_of_memory_message(small, need, container.MemoryPressure(0, 40.0), 60) is None
    assert container.short_of_memory_message(small, need, container.MemoryPressure(5000, 3.0), 60) is None
    assert container.short_of_memory_message(small, need, container.MemoryPressure(5000, None), 60) is not None
    # A kernel that never counts limit hits in v1: a group at its limit now tells the same.
    full = container.MemoryPressure(0, 40.0, usage=767 * 2**20)
    assert container.short_of_memory_message(small, need, full, 60) is not None
    roomy = container.MemoryPressure(0, 40.0, usage=500 * 2**20)
    assert container.short_of_memory_message(small, need, roomy, 60) is None


def _slow_connection(tmp_path: Path):
    """A sandbox over a module whose wait(s) sleeps, in a grading that needs 1.5 GB."""
    from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as

    (tmp_path / "slow.py").write_text("import time\ndef wait(s):\n    time.sleep(s)\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "slow.py", 0o644)
    settings = SandboxSettings(memory_limit=2**31, protected=default_protected(), run_as=default_run_as(),
                               container_need=int(1.5 * 2**30))
    return ProcessConnection(str(tmp_path), ["slow"], settings)


def _timed_out(conn):
    """Start a test on ``conn`` and run its slow call past a 2 s limit; the crash it raised."""
    from grader.sandbox.client import StudentCrash

    conn.call_timeout = 2
    slow = conn.import_module("slow")
    conn.start_test()
    with pytest.raises(StudentCrash) as crash:
        slow.wait(30)
    return crash.value


def test_a_call_that_times_out_while_the_container_thrashes_names_the_container(tmp_path, monkeypatch):
    """The sandbox's timeout reads the container's pressure since the test started (start_test)."""
    readings = [container.MemoryPressure(10, 1.0), container.MemoryPressure(900, 2.5)]
    monkeypatch.setattr(container, "memory_pressure", lambda: readings.pop(0) if len(readings) > 1 else readings[0])
    monkeypatch.setattr(container, "read_limits", lambda: container.ContainerLimits(768 * 2**20, 0.5, "/"))
    conn = _slow_connection(tmp_path)
    try:
        crash = _timed_out(conn)
        assert crash.reason == "container_memory"
        assert "time limit of 2 s" in str(crash) and "at its memory limit (768 MB)" in str(crash)
        conn.tripped = None  # a calm test: the same timeout is the student's
        monkeypatch.setattr(container, "memory_pressure", lambda: container.MemoryPressure(900, 2.5))
        crash = _timed_out(conn)
        assert crash.reason == "timeout" and "memory" not in str(crash)
    finally:
        conn.close()


def test_a_timeout_reads_the_container_before_the_kill_frees_the_workers_memory(tmp_path, monkeypatch):
    """On kernels that never count v1 limit hits, only the usage tells a full container; the worker's own
    pages are most of it, so a reading taken after the kill would find the container roomy."""
    conn = _slow_connection(tmp_path)
    limit = 768 * 2**20
    stall = iter(range(0, 10**6, 30))  # 30 s of stall between any two readings

    def reading():
        alive = conn.proc is not None and conn.proc.poll() is None
        return container.MemoryPressure(0, float(next(stall)), int(0.99 * limit) if alive else 100 * 2**20)

    monkeypatch.setattr(container, "memory_pressure", reading)
    monkeypatch.setattr(container, "read_limits", lambda: container.ContainerLimits(limit, 0.5, "/"))
    try:
        crash = _timed_out(conn)
        assert crash.reason == "container_memory", str(crash)
    finally:
        conn.close()

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

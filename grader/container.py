"""The grading machine's own size: its container's memory limit, CPU quota and out-of-memory kills.

Gradescope runs each grading in a container whose memory and CPU are set per
assignment (Autograder Settings; 768 MB and 0.5 vCPU by default). When that
container is too small, the kernel kills a process of the grading, and without
this module the student would read that *their* code exited. Everything here
reads the grading process's own control group (cgroup v1 or v2, as
``/proc/self/cgroup`` names it) and never fails: what cannot be read is None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Limits at or above this are "no limit" (cgroup v1 writes ~2**63 rounded to a page).
UNLIMITED = 2**60


@dataclass(frozen=True)
class ContainerLimits:
    """What the grading's control group allows.

    Attributes:
        memory_limit: bytes (the smallest limit on the way to the root), or None for no limit.
        cpus: CPUs of the CFS quota (quota / period), or None for no quota.
        cgroup: the control group's path as ``/proc/self/cgroup`` gives it (memory controller).
    """

    memory_limit: int | None
    cpus: float | None
    cgroup: str | None

    def below(self, need: int | None) -> bool:
        """Whether the memory limit is under ``need`` bytes (by more than ``SIZE_TOLERANCE`` allows)."""
        return need is not None and self.memory_limit is not None and self.memory_limit < need * SIZE_TOLERANCE


SIZE_TOLERANCE = 0.9
"""A container within 10 % of the measured need counts as the size asked for (1.5 GB read as 10**9 or 2**30)."""


def format_size(size: int) -> str:
    """``1610612736`` -> ``'1.5 GB'``; ``805306368`` -> ``'768 MB'``."""
    if size >= 2**30:
        return f"{size / 2**30:.3g} GB"
    return f"{size / 2**20:.0f} MB"


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """``{controller: path}`` from ``/proc/self/cgroup`` text; cgroup v2's unified line under ``""``."""
    found: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            found[controller] = parts[2]
    return found


def _chain(base: Path, path: str) -> list[Path]:
    """The control group's folder and its parents up to ``base``, existing ones only (a namespaced
    container sees its own group as ``base``)."""
    folder = base / path.lstrip("/")
    chain = []
    while True:
        if folder.is_dir():
            chain.append(folder)
        if folder == base or base not in folder.parents:
            break
        folder = folder.parent
    return chain or ([base] if base.is_dir() else [])


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _counter(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def _groups(root: Path, proc_cgroup: str | None) -> tuple[list[Path], list[Path], str | None, bool]:
    """(memory chain, cpu chain, memory cgroup path, is v2)."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return [], [], None, False
    own = _own_cgroups(proc_cgroup)
    if "memory" in own:
        memory = _chain(root / "memory", own["memory"])
        cpu_path = own.get("cpu", "/")
        cpu = _chain(root / "cpu", cpu_path) or _chain(root / "cpu,cpuacct", cpu_path)
        return memory, cpu, own["memory"], False
    if "" in own:
        chain = _chain(root, own[""])
        return chain, chain, own[""], True
    return [], [], None, False


def read_limits(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> ContainerLimits:
    """The memory limit and CPU quota of this process's control group (and its parents)."""
    memory, cpu, path, v2 = _groups(root, proc_cgroup)
    limits = [_read_int(folder / ("memory.max" if v2 else "memory.limit_in_bytes")) for folder in memory]
    known = [v for v in limits if v is not None and v < UNLIMITED]
    cpus = None
    for folder in cpu:
        if v2:
            try:
                quota_text, period_text = (folder / "cpu.max").read_text().split()
            except (OSError, ValueError):
                continue
            if quota_text == "max":
                continue
            quota, period = int(quota_text), int(period_text)
        else:
            quota, period = _read_int(folder / "cpu.cfs_quota_us"), _read_int(folder / "cpu.cfs_period_us")
            if quota is None or period is None or quota <= 0:
                continue
        share = quota / period
        cpus = share if cpus is None else min(cpus, share)
    return ContainerLimits(memory_limit=min(known) if known else None, cpus=cpus, cgroup=path)


def oom_kills(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> int:
    """Processes the out-of-memory killer has killed in this control group and its parents, plus the
    machine's own count (``/proc/vmstat``): compare two readings to learn whether it struck in between."""
    memory, _cpu, _path, v2 = _groups(root, proc_cgroup)
    total = 0
    for folder in memory:
        value = _counter(folder / ("memory.events" if v2 else "memory.oom_control"), "oom_kill")
        total += value or 0
    total += _counter(Path("/proc/vmstat"), "oom_kill") or 0
    return total


@dataclass(frozen=True)
class MemoryPressure:
    """Counters of how hard the grading's control group has pressed on its memory limit.

    Compare two readings (``later.since(earlier)``) to learn what happened in between.

    Attributes:
        limit_hits: times an allocation found the group at its limit and had to reclaim first
            (cgroup v1 ``memory.failcnt`` + ``memory.memsw.failcnt``, v2 ``memory.events`` ``max``; summed
            over the chain).
            Some kernels never count them in v1 (seen on this project's VM): ``usage`` tells instead.
        stall_s: seconds in which some task waited for memory (pressure stall information: the
            group's ``memory.pressure`` on v2, the machine's ``/proc/pressure/memory`` on v1), or None.
        usage: bytes the group with the smallest limit uses now, page cache included (v1
            ``memory.usage_in_bytes``, v2 ``memory.current``), or None.
    """

    limit_hits: int
    stall_s: float | None
    usage: int | None = None

    def since(self, earlier: MemoryPressure) -> MemoryPressure:
        """What happened between ``earlier`` and this reading (``usage``: this reading's)."""
        stall = None
        if self.stall_s is not None and earlier.stall_s is not None:
            stall = max(0.0, self.stall_s - earlier.stall_s)
        return MemoryPressure(max(0, self.limit_hits - earlier.limit_hits), stall, self.usage)


def _stall_seconds(path: Path) -> float | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("some "):
                return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_pressure(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> MemoryPressure:
    """How often this process's control group has hit its memory limit, and how long tasks waited for memory."""
    memory, _cpu, _path, v2 = _groups(root, proc_cgroup)
    hits = 0
    usage, smallest = None, None
    for folder in memory:
        limit = _read_int(folder / ("memory.max" if v2 else "memory.limit_in_bytes"))
        if limit is not None and limit < UNLIMITED and (smallest is None or limit < smallest):
            smallest, usage = limit, _read_int(folder / ("memory.current" if v2 else "memory.usage_in_bytes"))
        if v2:
            hits += _counter(folder / "memory.events", "max") or 0
        else:  # with swap accounting, a charge can fail on the memory+swap counter instead
            hits += (_read_int(folder / "memory.failcnt") or 0) + (_read_int(folder / "memory.memsw.failcnt") or 0)
    stall = _stall_seconds(memory[0] / "memory.pressure") if (v2 and memory) else None
    if stall is None:
        stall = _stall_seconds(Path("/proc/pressure/memory"))
    return MemoryPressure(hits, stall, usage)


#: A timed-out test that spent this share of its time limit waiting for memory, in a container below the
#: assignment's measured need, timed out because of the container (it was reclaiming and re-reading pages).
#: byol_pretraining's reference at 768 MB / 0.5 vCPU timed out in pretrain after 12 s of 60 waiting: a tenth
#: leaves room below that, and a container at or above the need is never blamed whatever the stall.
STALL_SHARE = 0.1
#: A group using this share of its limit is at its limit (the kernel reclaims to stay under it).
AT_LIMIT_SHARE = 0.95


def short_of_memory_message(limits: ContainerLimits, need: int | None, pressure: MemoryPressure,
                            timeout: float) -> str | None:
    """What a timed-out test adds when the container was at its memory limit meanwhile; None when it was not.

    Args:
        limits: the container's limits (``read_limits``).
        need: the assignment's measured memory (bytes), or None.
        pressure: what happened during the test (``memory_pressure().since(mark)``).
        timeout: the time limit that was crossed (s).
    """
    at_limit = pressure.limit_hits > 0 or (
        pressure.usage is not None and limits.memory_limit is not None
        and pressure.usage >= AT_LIMIT_SHARE * limits.memory_limit)
    if not limits.below(need) or not at_limit:
        return None
    if pressure.stall_s is not None and pressure.stall_s < STALL_SHARE * timeout:
        return None
    waited = f", {pressure.stall_s:.0f} s of it waiting for memory" if pressure.stall_s is not None else ""
    return (f"The grading machine was at its memory limit ({format_size(limits.memory_limit)}) while this test ran"
            f"{waited}; this assignment needs {format_size(need)}. This is not about your code: course staff must "
            "raise the memory in Gradescope's Autograder Settings and regrade.")


def too_small_note(limits: ContainerLimits, need: int | None, assignment: str) -> str | None:
    """The warning for a container below ``need`` bytes (an assignment's measured size), or None."""
    if not limits.below(need):
        return None
    return (f"This grading machine has {format_size(limits.memory_limit)} of memory (its container's limit); "
            f"{assignment} needs {format_size(need)} (measured, assignment.toml [gradescope] container_memory). "
            "Course staff: raise the memory in Gradescope's Autograder Settings. Tests whose process the machine "
            "killed for memory say so; they are not the student's fault.")


def out_of_memory_message(limits: ContainerLimits, need: int | None, where: str = "") -> str:
    """What a test says when the machine's out-of-memory killer stopped a process of the grading."""
    size = f" (limit {format_size(limits.memory_limit)})" if limits.memory_limit else ""
    if limits.below(need):
        return (f"The grading machine ran out of memory{where}{size}; this assignment needs {format_size(need)}. "
                "This is not about your code: course staff must raise the memory in Gradescope's Autograder "
                "Settings and regrade.")
    return (f"The grading machine ran out of memory{where}{size} and its process was killed. Your code may use "
            "far more memory than the assignment needs; if it does not, ask course staff to check the machine.")


class ContainerError(RuntimeError):
    """A control group could not be made (not root, no writable cgroup v1 memory and cpu hierarchy)."""


class SizedContainer:
    """A child control group of this process's own, sized like a Gradescope container (cgroup v1, root).

    ``with SizedContainer(768 * 2**20, 0.5) as box: subprocess.run(cmd, preexec_fn=box.enter)``
    runs ``cmd`` with a memory limit (no swap) and a CPU quota; ``box.peak_memory()`` and
    ``box.oom_kills()`` read what it used. For benchmarks and tests of the grader itself.

    Raises:
        ContainerError: where such a group cannot be made, saying why.
    """

    def __init__(self, memory: int, cpus: float | None = None, root: Path = CGROUP_ROOT, name: str | None = None):
        if os.geteuid() != 0:
            raise ContainerError("making a control group needs root")
        memory_chain, cpu_chain, _path, v2 = _groups(root, None)
        if v2 or not memory_chain:
            raise ContainerError("needs a cgroup v1 memory hierarchy under /sys/fs/cgroup/memory")
        name = name or f"cvgrade-{os.getpid()}-{id(self):x}"
        self.memory_dir = memory_chain[0] / name
        self.cpu_dir = (cpu_chain[0] / name) if (cpus and cpu_chain) else None
        if cpus and self.cpu_dir is None:
            raise ContainerError("needs a cgroup v1 cpu hierarchy under /sys/fs/cgroup/cpu for a CPU quota")
        self.memory, self.cpus = int(memory), cpus

    def __enter__(self) -> SizedContainer:
        try:
            self.memory_dir.mkdir()
            (self.memory_dir / "memory.limit_in_bytes").write_text(str(self.memory))
            memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                memsw.write_text(str(self.memory))
            if self.cpu_dir is not None:
                self.cpu_dir.mkdir()
                period = 100_000
                (self.cpu_dir / "cpu.cfs_period_us").write_text(str(period))
                (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(int(self.cpus * period)))
        except OSError as exc:
            self.__exit__(None, None, None)
            raise ContainerError(f"could not make the control group {self.memory_dir}: {exc}") from exc
        return self

    def enter(self) -> None:
        """Move the calling process into the group (a ``preexec_fn``: the child before it execs)."""
        pid = str(os.getpid())
        (self.memory_dir / "cgroup.procs").write_text(pid)
        if self.cpu_dir is not None:
            (self.cpu_dir / "cgroup.procs").write_text(pid)

    def peak_memory(self) -> int | None:
        """Most memory the group used at once (bytes, page cache included)."""
        return _read_int(self.memory_dir / "memory.max_usage_in_bytes")

    def anonymous_memory(self) -> int | None:
        """Bytes of anonymous memory the group holds now (``memory.stat`` ``total_rss``: no page cache)."""
        return _counter(self.memory_dir / "memory.stat", "total_rss")

    def oom_kills(self) -> int:
        """Processes of the group the out-of-memory killer killed."""
        return _counter(self.memory_dir / "memory.oom_control", "oom_kill") or 0

    def __exit__(self, *exc_info: object) -> None:
        import time

        for folder in (self.memory_dir, self.cpu_dir):
            if folder is None or not folder.exists():
                continue
            for _ in range(50):  # the last processes may still be leaving
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)

"""Run student code in a locked-down worker process and talk to it over pipes.

``ProcessConnection`` starts the worker lazily (``jail.py`` applies namespaces,
hidden paths, privilege drop and limits, then ``exec``s ``worker.py`` from a
private copy of ``grader/sandbox``), sends requests, enforces the per-call time
limit, reads what the student's code prints, and replaces the worker when it
dies, hangs, runs out of memory or breaks the protocol. Only the tests that
needed the dead worker fail, each with a plain message.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import container
from grader.sandbox import protocol
from grader.sandbox.client import Connection, StudentCodeError, StudentCrash
from grader.sandbox.forkserver import ForkedProcess, ForkServer, ForkServerError
from grader.sandbox.identity import TEMPORARY_FOLDERS, grading_identity, remove_files_of

SANDBOX_DIR = Path(__file__).resolve().parent
RUNTIME_FILES = ("__init__.py", "protocol.py", "server.py", "loader.py", "worker.py", "heap.py")
OUTPUT_KEEP = 16 * 1024
MEMORY_MARKERS = ("MemoryError", "can't allocate memory", "DefaultCPUAllocator", "out of memory",
                  "Cannot allocate memory", "failed to map segment from shared object")


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:g} MiB"


@dataclass
class SandboxSettings:
    """Limits and isolation of the worker.

    Attributes:
        memory_limit: bytes of data the worker may allocate (RLIMIT_DATA).
        startup_timeout: seconds to start Python and import torch.
        max_processes: processes the worker may have (RLIMIT_NPROC).
        max_file_size: largest file the worker may write.
        workdir: the worker's writable current folder.
        protected: folders the worker must not see (hidden in its mount namespace).
        run_as: (uid, gid) to become when the grader is root; None keeps root (not advised).
        groups: supplementary groups of the worker (the reference's worker reaches the student's folders).
        namespaces: use Linux namespaces when the kernel allows them.
        preload: modules the worker imports before it reports ready.
        definitions_only: course modules imported as their definitions only (script-style files).
        definitions_on_error: import a course module's definitions only when its plain import raises.
        cuda_on_cpu: run the student's ``.cuda()`` / ``.to('cuda')`` on the CPU (``server.run_cuda_on_cpu``).
        container_need: bytes of memory the assignment needs in all (its manifest's measured
            ``[gradescope] container_memory``): a worker killed for memory in a smaller container is
            the container's fault, not the student's (``grader.container``).
    """

    memory_limit: int = 4 * 2**30
    startup_timeout: float = 120.0
    max_processes: int = 256
    max_file_size: int = 2 * 2**30
    workdir: Path | None = None
    protected: list[str] = field(default_factory=list)
    run_as: tuple[int, int] | None = None
    groups: tuple[int, ...] = ()
    namespaces: bool = True
    preload: tuple[str, ...] = ("torch",)
    max_reply_bytes: int = 256 * 2**20
    threads: int = 1
    definitions_only: tuple[str, ...] = ()
    definitions_on_error: bool = False
    cuda_on_cpu: bool = False
    container_need: int | None = None

    @classmethod
    def from_manifest(cls, manifest: Any, workdir: Path, extra_protected: list[str] | None = None) -> SandboxSettings:
        from grader import paths

        protected = default_protected() + [str(paths.project_root()), str(manifest.reference_dir),
                                           str(manifest.suite_dir)] + list(extra_protected or [])
        return cls(memory_limit=manifest.grading.memory_limit, workdir=workdir, protected=protected,
                   run_as=default_run_as(), threads=manifest.grading.threads,
                   definitions_only=manifest.definitions_only_modules,
                   definitions_on_error=manifest.grading.definitions_on_import_error,
                   cuda_on_cpu=manifest.grading.cuda_on_cpu and not manifest.grading.gpu,
                   container_need=manifest.gradescope.container_bytes)


def default_run_as() -> tuple[int, int] | None:
    """The unprivileged user a root grader runs student code as: this grading's own uid.

    One uid per concurrent grading (``grader.sandbox.identity``), or ``CVGRADE_WORKER_USER`` /
    ``nobody`` when that is configured or no private uid is available. None when not root.
    """
    identity = grading_identity()
    return None if identity is None else (identity.uid, identity.gid)


@functools.cache
def pid_namespaces_available() -> bool:
    """Whether this process may start workers in a new PID namespace (probed once, in a child)."""
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        os._exit(0 if libc.unshare(0x20000000) == 0 else 1)  # CLONE_NEWPID
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def shares_worker_user() -> bool:
    """True when concurrent gradings would stop each other's workers.

    As root without PID namespaces, a worker's orphans are found by its user
    (every process of ``nobody`` is killed when a worker stops), so two
    gradings at once on one machine would kill each other's workers.
    """
    return os.geteuid() == 0 and not pid_namespaces_available()


def default_protected() -> list[str]:
    """Folders no worker should see: the grader's home, Gradescope's source and results folders."""
    import getpass

    paths = [os.path.expanduser("~"), "/root", "/autograder/source", "/autograder/results",
             os.path.join(tempfile.gettempdir(), f"pytest-of-{getpass.getuser()}")]
    extra = os.environ.get("CVGRADE_PROTECTED_PATHS", "")
    paths += [p for p in extra.split(os.pathsep) if p]
    return [str(Path(p).resolve()) for p in paths if p and Path(p).exists()]


def _python_paths() -> list[str]:
    """What the worker's Python needs to start and import torch."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        value = sysconfig.get_paths().get(key)
        if value:
            found.add(value)
    try:
        found.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site module
        pass
    executable = os.path.realpath(sys.executable)
    found.add(os.path.dirname(executable))
    return sorted(p for p in found if p and os.path.exists(p))


def _library_paths() -> list[str]:
    """This interpreter's import path without the project itself: where the worker finds torch & co.

    The worker runs ``python -I`` (no PYTHONPATH, no user site), so paths that came
    from PYTHONPATH or a .pth file are handed over explicitly.
    """
    from grader import paths

    project = str(paths.project_root())
    found = []
    for entry in sys.path:
        if not entry or not os.path.isabs(entry) or not os.path.exists(entry):
            continue
        if entry == project or (entry.startswith(project + os.sep) and "site-packages" not in entry):
            continue
        if entry not in found:
            found.append(entry)
    return found


def _make_runtime(base: Path) -> Path:
    """A private copy of grader/sandbox that the worker imports (the real tree stays hidden)."""
    runtime = base / "runtime"
    package = runtime / "grader" / "sandbox"
    package.mkdir(parents=True, exist_ok=True)
    (runtime / "grader" / "__init__.py").write_text("")
    for name in RUNTIME_FILES:
        shutil.copyfile(SANDBOX_DIR / name, package / name)
    shutil.copyfile(SANDBOX_DIR / "jail.py", runtime / "jail.py")
    for root, _dirs, files in os.walk(runtime):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    return runtime


class ProcessConnection(Connection):
    """A connection to student code running in a sandboxed worker process.

    Args:
        directory: the prepared submission folder.
        modules: course module names importable from it.
        settings: limits and isolation.
    """

    def __init__(self, directory: str, modules: list[str], settings: SandboxSettings):
        super().__init__()
        self.directory = str(Path(directory).resolve())
        self.modules = list(modules)
        self.settings = settings
        self._base = Path(tempfile.mkdtemp(prefix="cvgrade-worker-"))
        os.chmod(self._base, 0o755)
        self._runtime = _make_runtime(self._base)
        self.workdir = Path(settings.workdir) if settings.workdir else self._base / "work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        give_to_worker(self.workdir, settings.run_as)
        self.proc: subprocess.Popen | ForkedProcess | None = None
        # Set by the grading session: start workers by forking it (they share torch's pages) instead of a Python.
        self.fork_server: ForkServer | None = None
        self.defences: dict = {}
        self.starts = 0
        self._oom_mark: int | None = None  # the machine's OOM-kill count when the worker started
        self._pressure_mark: container.MemoryPressure | None = None  # the container's memory pressure at test start
        self._req_w = self._resp_r = self._out_r = -1
        self._output = bytearray()
        self._output_dropped = 0

    # -- lifecycle ------------------------------------------------------------
    def _config(self, request_fd: int, reply_fd: int) -> tuple[list[str], dict, dict]:
        """The launcher's command, the jail's configuration and the worker's (``jail.lock_down``, ``worker.serve``)."""
        worker_cfg = {"directory": self.directory, "modules": self.modules, "preload": list(self.settings.preload),
                      "sys_path": _library_paths(), "threads": self.settings.threads,
                      "definitions_only": list(self.settings.definitions_only),
                      "definitions_on_error": self.settings.definitions_on_error,
                      "cuda_on_cpu": self.settings.cuda_on_cpu}
        bootstrap = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
                     "from grader.sandbox.worker import main; main()")
        argv = [sys.executable, "-I", "-u", "-c", bootstrap, str(self._runtime), str(request_fd), str(reply_fd),
                json.dumps(worker_cfg)]
        home = str(self.workdir)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "MPLBACKEND": "Agg",
            "TORCH_HOME": home,
            "WANDB_MODE": "offline",
        }
        # Several compute threads on a busy or small machine spin against each other (10x slower
        # measured); the manifest says how many the student's code gets.
        threads = os.environ.get("CVGRADE_WORKER_THREADS", str(self.settings.threads))
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
            env[key] = threads
        for key in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
            if key in os.environ:
                env[key] = os.environ[key]
        expose = [(p, False) for p in _python_paths() + worker_cfg["sys_path"]]
        expose += [(str(self._runtime), False), (self.directory, False), (str(self.workdir), True)]
        expose += [(p, w) for p, w in getattr(self, "extra_expose", [])]
        jail_cfg = {
            "argv": argv,
            "env": env,
            "workdir": str(self.workdir),
            "protected": self.settings.protected,
            "expose": expose,
            "memory_limit": self.settings.memory_limit,
            "max_processes": self.settings.max_processes,
            "max_file_size": self.settings.max_file_size,
            "private_temp": list(TEMPORARY_FOLDERS),
            "temp_size": self.settings.max_file_size,
            "run_as": list(self.settings.run_as) if self.settings.run_as else None,
            "groups": list(self.settings.groups),
            "namespaces": self.settings.namespaces,
        }
        return [sys.executable, "-I", "-S", str(self._runtime / "jail.py")], jail_cfg, worker_cfg

    def expose(self, path: str | Path, writable: bool = True) -> None:
        """Let the worker see a folder that would otherwise be hidden (takes effect at the next start)."""
        extra = list(getattr(self, "extra_expose", []))
        extra.append((str(Path(path).resolve()), writable))
        self.extra_expose = extra

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        out_r, out_w = os.pipe()
        status_r, status_w = os.pipe()
        launcher, jail_cfg, worker_cfg = self._config(req_r, resp_w)
        argv = launcher + [str(status_w), json.dumps(jail_cfg)]
        try:
            self.proc = None
            if self.fork_server is not None and self.fork_server.alive():
                try:
                    self.proc = self.fork_server.spawn(jail_cfg, worker_cfg, (req_r, resp_w, out_w, status_w))
                except ForkServerError:
                    self.fork_server = None  # gone: start Python from now on
            if self.proc is None:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
                                             pass_fds=(req_r, resp_w, status_w), start_new_session=True,
                                             close_fds=True, env=jail_cfg["env"])
        finally:
            for fd in (req_r, resp_w, out_w, status_w):
                os.close(fd)
        self._req_w, self._resp_r, self._out_r = req_w, resp_r, out_r
        for fd in (req_w, resp_r, out_r):
            os.set_blocking(fd, False)
        self.starts += 1
        self._oom_mark = container.oom_kills()
        status = _read_all(status_r, deadline=time.monotonic() + 30)
        os.close(status_r)
        try:
            self.defences = json.loads(status.decode() or "{}")
        except ValueError:
            self.defences = {"warnings": ["the launcher sent no status"]}
        try:
            frame, output = self._exchange(None, self.settings.startup_timeout, "starting your code")
        except StudentCrash as exc:
            # str(exc), not exc.message: it carries what the process printed before it died (the
            # only clue to why), which _death has already taken from the output buffer.
            warnings = "; ".join(self.defences.get("warnings", []))
            raise StudentCrash(exc.reason, "The grader could not start the process that runs your code: "
                               + str(exc) + (f"\nSandbox warnings: {warnings}" if warnings else "")) from None
        reply = protocol.unpack(frame, lambda h: h)
        if not isinstance(reply, dict) or "ready" not in reply:
            self._kill()
            raise StudentCrash("protocol", "The process that runs your code did not start properly.")
        self._output.clear()

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for fd in (self._req_w, self._resp_r, self._out_r):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._req_w = self._resp_r = self._out_r = -1
        # Only when the launcher said that it ran without a PID namespace: a status lost under load (the
        # launcher busy or dead before it wrote one) must not kill every process of the worker user,
        # other gradings' workers included (a likely cause of a parallel test run's worker SIGKILLed at start).
        namespaces = self.defences.get("namespaces")
        if self.settings.run_as and os.geteuid() == 0 and namespaces is not None and "pid" not in namespaces:
            _kill_all_of(self.settings.run_as[0])
        self.reset()

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self._base, ignore_errors=True)
        identity = grading_identity()
        if identity is not None and identity.private and self.settings.run_as == (identity.uid, identity.gid):
            # What the worker left in the shared temporary folders (no mount namespace, or a
            # DataLoader's shared memory): its uid is this grading's alone, so nothing else is touched.
            remove_files_of(identity.uid)

    # -- requests -------------------------------------------------------------
    def start_test(self) -> None:
        """Note the container's memory pressure, so that a timeout can tell a machine at its limit apart."""
        self._pressure_mark = container.memory_pressure()

    def _short_of_memory(self, timeout: float) -> str | None:
        if self._pressure_mark is None:
            return None
        pressure = container.memory_pressure().since(self._pressure_mark)
        return container.short_of_memory_message(container.read_limits(), self.settings.container_need, pressure,
                                                 timeout)

    def end_test(self) -> str:
        """Stop every process the student's code left running; returns a note for the student, or ''.

        Called after each test. Processes started during a test (a DataLoader's
        workers, say) may live until the test ends, never longer: the worker's
        descendants (in its PID namespace, or reparented to it as a subreaper)
        are killed by the trusted side.
        """
        if not self._alive():
            return ""
        killed = 0
        for _ in range(20):  # a fork bomb may keep forking while we kill
            strays = self._strays()
            if not strays:
                break
            for pid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)
        if not killed:
            return ""
        return f"Your code left {killed} process(es) running after the test; they were stopped."

    def _strays(self) -> list[int]:
        """Descendants of the launcher other than the worker itself."""
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            try:
                ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        launcher = self.proc.pid
        namespaced = "pid" in self.defences.get("namespaces", [])
        worker = children.get(launcher, [None])[0] if namespaced else launcher
        found, stack = [], list(children.get(launcher, []))
        while stack:
            pid = stack.pop()
            if pid != worker:
                found.append(pid)
            stack.extend(children.get(pid, []))
        return found

    def _ensure_worker(self) -> None:
        if not self._alive():
            if self.proc is not None:
                self._kill()
            self._start()

    def _roundtrip(self, frame: list[bytes], timeout: float | None, label: str) -> tuple[bytes | memoryview, str]:
        return self._exchange(frame, timeout, label)

    def _on_protocol_violation(self) -> None:
        self._kill()

    def _exchange(self, frame: list[bytes] | None, timeout: float | None,
                  label: str) -> tuple[bytes | memoryview, str]:
        """Send a frame (``protocol.pack_parts``' pieces, emptied as they go; None: just wait for one) and read
        the reply, draining output meanwhile."""
        deadline = time.monotonic() + (timeout if timeout else 1e9)
        # The prefix goes first, then the pieces one by one: joined, a large frame would be copied once more,
        # and each piece is let go once sent.
        parts = [] if frame is None else protocol.with_length_prefix(frame)
        outgoing = memoryview(parts.pop(0)) if parts else memoryview(b"")
        reply = bytearray()
        needed: int | None = None
        out_open = True
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Read the container before the kill: the worker's memory, freed, would hide a full container.
                short = self._short_of_memory(timeout)
                self._kill()
                text = self._take_output()
                message = f"Your code ran past the time limit of {timeout:g} s in {label or 'a call'}; it was stopped."
                if short:
                    raise _with_output(StudentCrash("container_memory", f"{message} {short}", label), text)
                raise _with_output(StudentCrash("timeout", message, label), text)
            readers = [self._resp_r] + ([self._out_r] if out_open else [])
            writers = [self._req_w] if outgoing else []
            try:
                readable, writable, _ = select.select(readers, writers, [], min(remaining, 1.0))
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            if self._req_w in writable:
                try:
                    sent = os.write(self._req_w, outgoing[: 1 << 20])
                    outgoing = outgoing[sent:]
                    if not outgoing and parts:
                        outgoing = memoryview(parts.pop(0))
                except BrokenPipeError:
                    outgoing, parts = memoryview(b""), []
            if out_open and self._out_r in readable:
                out_open = self._drain_output()
            if self._resp_r in readable:
                try:
                    chunk = os.read(self._resp_r, 1 << 20)
                except BlockingIOError:
                    chunk = None
                if chunk == b"":
                    raise self._death(label)
                if chunk:
                    reply += chunk
                    if needed is None and len(reply) >= protocol.OUTER_PREFIX:
                        try:
                            needed = protocol.outer_length(bytes(reply[: protocol.OUTER_PREFIX]))
                        except protocol.ProtocolError as exc:
                            self._kill()
                            raise StudentCrash("protocol", f"Your code's process broke the protocol: {exc}",
                                               label) from None
                        if needed > self.settings.max_reply_bytes:
                            self._kill()
                            raise StudentCrash(
                                "size", f"Your code returned {needed / 2**20:.0f} MiB of data in {label or 'a call'}, "
                                        f"more than the limit of {self.settings.max_reply_bytes / 2**20:.0f} MiB; "
                                        "it was stopped.", label)
                    if needed is not None and len(reply) >= protocol.OUTER_PREFIX + needed:
                        if len(reply) > protocol.OUTER_PREFIX + needed:
                            self._kill()
                            raise StudentCrash("protocol", "Your code's process wrote extra data to the grader's "
                                                           "channel; it was restarted.", label)
                        break
            if self.proc is not None and self.proc.poll() is not None and not readable:
                raise self._death(label)
        while out_open and self._drain_output():
            pass
        return memoryview(reply)[protocol.OUTER_PREFIX:], self._take_output()  # a view: not copied

    def _drain_output(self) -> bool:
        """Read what the worker printed; False once the pipe is closed or empty."""
        try:
            chunk = os.read(self._out_r, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            return False
        room = 2 * OUTPUT_KEEP - len(self._output)
        if room > 0:
            self._output += chunk[:room]
            chunk = chunk[room:]
        if chunk:  # keep the head and a rolling tail
            self._output_dropped += len(chunk)
            tail = bytes(self._output[OUTPUT_KEEP:]) + chunk
            self._output[OUTPUT_KEEP:] = tail[-OUTPUT_KEEP:]
        return True

    def _take_output(self) -> str:
        data = bytes(self._output)
        self._output.clear()
        dropped, self._output_dropped = self._output_dropped, 0
        text = data.decode("utf-8", errors="replace")
        if dropped:
            head = data[:OUTPUT_KEEP].decode("utf-8", errors="replace")
            tail = data[OUTPUT_KEEP:].decode("utf-8", errors="replace")
            text = f"{head}\n... [{dropped} more bytes of output not shown] ...\n{tail}"
        return text

    def _death(self, label: str) -> StudentCrash:
        proc = self.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
        while self._out_r >= 0 and self._drain_output():
            pass
        text = self._take_output()
        self._kill()
        where = f" in {label}" if label else ""
        if code is not None and code < 0:
            sig = -code
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            if sig == signal.SIGKILL:
                message = (f"Your code's process was killed{where} (it may have used more than "
                           f"{_gib(self.settings.memory_limit)} of memory, or killed itself).")
                reason = "memory"
            elif sig == signal.SIGSEGV:
                message, reason = f"Your code crashed with a segmentation fault{where}.", "signal"
            else:
                message, reason = f"Your code's process died from signal {name}{where}.", "signal"
        else:
            message = f"Your code's process exited{where} (exit status {code}); did it call sys.exit or os._exit?"
            reason = "exit"
        if self._oom_mark is not None and container.oom_kills() > self._oom_mark:
            # The machine's (container's) out-of-memory killer struck while this worker ran: what it killed
            # may be this worker or the process that started it, and the exit status then says little.
            limits = container.read_limits()
            message = container.out_of_memory_message(limits, self.settings.container_need, where)
            reason = "container_memory" if limits.below(self.settings.container_need) else "memory"
            return _with_output(StudentCrash(reason, message, label), text)
        if any(m in text for m in MEMORY_MARKERS):
            message = f"Your code used more than {_gib(self.settings.memory_limit)} of memory{where}; it was stopped."
            reason = "memory"
        return _with_output(StudentCrash(reason, message + " It was restarted for the next test.", label), text)

    def _error(self, error: dict, label: str) -> StudentCodeError:
        exc = Connection._error(error, label)
        if exc.type_name == "MemoryError" or any(m in exc.message for m in MEMORY_MARKERS[1:]):
            limit = _gib(self.settings.memory_limit)
            exc = StudentCodeError(exc.type_name, f"your code used more than {limit} of memory (the limit)"
                                   + (f": {exc.message}" if exc.message else ""), exc.traceback, label)
        return exc


def give_to_worker(folder: Path, run_as: tuple[int, int] | None) -> None:
    """Make ``folder`` the worker's own: owned by its user, closed to everyone else (0o700).

    Without a worker user (a non-root grader, whose workers map back to its own uid outside their
    user namespace, or root keeping root) the folder stays the grader's, 0o700 as well.
    """
    if run_as is not None and os.geteuid() == 0:
        os.chown(folder, run_as[0], run_as[1])
    os.chmod(folder, 0o700)


def _with_output(exc: StudentCrash, text: str) -> StudentCrash:
    if text.strip():
        exc.args = (str(exc) + "\n--- your code printed ---\n" + text.rstrip(),)
    return exc


def _read_all(fd: int, deadline: float) -> bytes:
    data = bytearray()
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _kill_all_of(uid: int) -> None:
    """Without a PID namespace: kill every process of the worker's user (orphans included)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)

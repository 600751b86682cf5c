"""Workers forked from a process that has imported torch already, so that they share its pages.

Every worker (the student's, the reference's, each restart after a crash) used to
start a fresh Python that imports torch: 366 MB of private memory per process with
the CUDA build (142 MB with the CPU build), counted again for each against the
container's limit, and 2-3 s per start. A fork server is a child of the grading
process forked **before any test is collected**, when that process holds the
engine (public), pytest's options and the libraries, and nothing of the reference,
of the hidden tests or of their expected values (``start`` refuses otherwise). It
closes every inherited descriptor and waits on a socket; for each worker it forks
a child that locks itself down exactly as ``jail.py`` does (``jail.lock_down``) and
then serves requests (``worker.serve``) without an ``exec``. The pages of torch are
then shared copy-on-write by the grading process, the fork server and every worker.

The trusted side (``ProcessConnection``) gets a ``ForkedProcess``, which behaves like
the ``subprocess.Popen`` of a launcher: ``pid``, ``poll``, ``wait``, ``kill``,
``returncode`` (the fork server reaps its children and reports their exit statuses).

Used only where the grading is reproducible with it: a grading process with no other Python
thread (so that the fork copies a consistent state), with ``PYTHONHASHSEED=0`` (``api.grade`` sets it: then
a worker hashes strings the same at every grading, where a started worker's ``python -I`` ignores
``PYTHONHASHSEED`` and draws a new seed at each start), and not with
``CVGRADE_FORK_SERVER=0``. Elsewhere workers start as before.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable

ENABLE_ENV = "CVGRADE_FORK_SERVER"
# What the fork server imports before it forks workers (when installed): what every suite's worker imports.
PRELOAD = ("numpy", "torch", "torchvision")
_MESSAGE_MAX = 1 << 22
PR_SET_PDEATHSIG = 1


class ForkServerError(RuntimeError):
    """The fork server could not start a worker (it died, or answered nonsense)."""


def unavailable_reason(modules: Iterable[str] | None = None) -> str:
    """Why a fork server must not be used in this process now; '' when it may.

    Args:
        modules: the names of the modules imported so far (default: ``sys.modules``).
    """
    if os.environ.get(ENABLE_ENV, "1") == "0":
        return f"{ENABLE_ENV}=0"
    if not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return "no fork() or no descriptor passing on this platform"
    if os.environ.get("PYTHONHASHSEED") != "0":
        return "PYTHONHASHSEED is not 0 (forked workers would hash strings differently at each grading)"
    # Python threads (xdist's execnet, a progress watcher) could hold a lock the child then waits for. Native
    # threads are not counted: the only ones here are OpenBLAS's idle pool (numpy), which its fork handler
    # stops and the child restarts; torch's OpenMP pool does not exist yet (no operation has run).
    threads = threading.active_count()
    if threads != 1:
        return f"the grading process runs {threads} Python threads (a fork would copy them half-way)"
    names = sys.modules if modules is None else modules
    secret = sorted(name for name in names
                    if name == "reference" or name.startswith("reference.") or ".hidden." in f".{name}.")
    if secret:
        return f"reference or hidden-test modules are imported already ({', '.join(secret[:3])})"
    return ""


class ForkedProcess:
    """A worker's launcher forked by the fork server: the parts of ``subprocess.Popen`` the connection uses."""

    def __init__(self, server: ForkServer, pid: int):
        self._server = server
        self.pid = pid
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
            if self.returncode is not None:
                self._close_pidfd()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._server.wait_exit(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
        self.returncode = code
        self._close_pidfd()
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, sig)  # no race with a reused pid
        else:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class ForkServer:
    """The trusted side of a fork server: start workers, learn how they ended.

    Create with ``ForkServer.start()``; ``spawn`` gives a ``ForkedProcess``; ``close`` stops the server
    (its workers die with it).
    """

    def __init__(self, pid: int, sock: socket.socket):
        self.pid = pid
        self._sock = sock
        self._lock = threading.Lock()  # one spawn at a time
        self._changed = threading.Condition()
        self._exits: dict[int, int] = {}
        self._replies: list[dict] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="cvgrade-fork-server", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, preload: Iterable[str] = PRELOAD) -> ForkServer:
        """Import ``preload`` here (those installed), then fork the server.

        Raises:
            ForkServerError: when ``unavailable_reason()`` says this process must not be forked.
        """
        for name in preload:
            try:
                __import__(name)
            except ImportError:
                pass
        reason = unavailable_reason()
        if reason:
            raise ForkServerError(f"no fork server: {reason}")
        # Imported now, while the grader's tree is readable: the children run them after it is hidden.
        from grader.sandbox import jail, server, worker  # noqa: F401

        parent = os.getpid()
        # Objects that exist now are never scanned by the garbage collector again, in this process or in
        # the children: a collection writes to every object's header, which would copy their pages.
        gc.collect()
        gc.freeze()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                _serve(theirs, parent)
            finally:
                os._exit(0)
        theirs.close()
        return cls(pid, ours)

    # -- trusted side ---------------------------------------------------------
    def spawn(self, launch: dict, worker: dict, fds: tuple[int, int, int, int]) -> ForkedProcess:
        """Start a worker: the launcher locks down by ``launch`` (``jail.lock_down``) and serves by ``worker``.

        Args:
            launch: the jail's configuration (its ``env`` becomes the worker's environment).
            worker: the worker's configuration (``worker.serve``).
            fds: request (read end), reply (write end), output (write end) and status (write end).

        Raises:
            ForkServerError: when the server is gone or does not answer within 30 s.
        """
        with self._lock:
            if self._closed:
                raise ForkServerError("the fork server is closed")
            message = json.dumps({"launch": launch, "worker": worker}).encode()
            try:
                socket.send_fds(self._sock, [message], list(fds))
            except OSError as exc:
                raise ForkServerError(f"the fork server is gone: {exc}") from None
            with self._changed:
                if not self._changed.wait_for(lambda: self._replies or self._closed, timeout=30):
                    raise ForkServerError("the fork server did not answer in 30 s")
                if not self._replies:
                    raise ForkServerError("the fork server is gone")
                reply = self._replies.pop(0)
        if not isinstance(reply.get("pid"), int):
            raise ForkServerError(f"the fork server could not start a worker: {reply.get('error', reply)!r}")
        return ForkedProcess(self, reply["pid"])

    def exit_code(self, pid: int) -> int | None:
        """How ``pid`` ended (``Popen.returncode``: -signal or the exit status), None while it runs."""
        with self._changed:
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self._closed, timeout=timeout)
            return self._exits.get(pid)

    def alive(self) -> bool:
        return not self._closed

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self._sock.close()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MESSAGE_MAX)
            except OSError:
                data = b""
            if not data:
                with self._changed:
                    self._closed = True
                    self._changed.notify_all()
                return
            try:
                message = json.loads(data)
            except ValueError:
                continue
            with self._changed:
                if "exited" in message:
                    self._exits[int(message["exited"])] = int(message["code"])
                else:
                    self._replies.append(message)
                self._changed.notify_all()


# -- the fork server (a child of the grading process) -----------------------------
def _close_other_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _default_signals() -> None:
    """Signal handling as a freshly started Python has it (pytest's handlers are not inherited)."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _serve(sock: socket.socket, parent: int) -> None:
    import ctypes
    import faulthandler

    faulthandler.disable()
    _close_other_fds({sock.fileno()})
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)
    _default_signals()
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
        for child in list(children):
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                children.discard(child)
                sock.send(json.dumps({"exited": pid, "code": os.waitstatus_to_exitcode(status)}).encode())
        if sock not in readable:
            continue
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, _MESSAGE_MAX, 8)
        except OSError:
            return
        if not data:
            return
        try:
            request = json.loads(data)
            if len(fds) != 4:
                raise ValueError(f"4 descriptors expected, got {len(fds)}")
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"error": str(exc)}).encode())
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                os.close(wake_r)
                os.close(wake_w)
                sock.close()
                _become_worker(request, fds)
                code = 0
            except BaseException:  # noqa: BLE001 - the launcher reports it on its output, then exits
                import traceback

                try:
                    traceback.print_exc()
                    sys.stderr.flush()
                except Exception:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        children.add(pid)
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"pid": pid}).encode())


def _become_worker(request: dict, fds: list[int]) -> None:
    """In the fork server's child: become a locked-down worker (what ``jail.main`` + ``worker.main`` do)."""
    import io

    from grader.sandbox import jail, worker

    request_fd, reply_fd, output_fd, status_fd = fds
    launch, config = request["launch"], request["worker"]
    os.setsid()
    _default_signals()
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    _close_other_fds({0, 1, 2, request_fd, reply_fd, status_fd})
    # As ``python -u`` has them: unbuffered, so that what the student printed before a crash is not lost.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True, line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True, line_buffering=True,
                                  errors="backslashreplace")
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    try:  # imported before the environment is replaced: its import sets a variable a started worker lacks
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    os.environ.clear()
    os.environ.update(launch["env"])
    # The interpreter's own import path (no project, no pytest rootdir inserts) and no pytest import hooks.
    sys.path[:] = list(config.get("sys_path", []))
    sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith(("_pytest", "pytest"))]
    sys.path_importer_cache.clear()
    jail.lock_down(launch, status_fd)  # first: unshare(CLONE_NEWUSER) needs a single-threaded process
    threads = launch["env"].get("OMP_NUM_THREADS")
    if threads and threadpool_limits is not None:
        # A started worker reads OMP_NUM_THREADS / OPENBLAS_NUM_THREADS at import; this one imported them in
        # the grading process, so its pools are set as the environment says (torch's by ``worker.serve``).
        threadpool_limits(int(threads))
    worker.serve(request_fd, reply_fd, config)


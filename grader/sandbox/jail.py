"""Launcher that locks a process down before it becomes the student-code worker.

Run by the trusted grader as ``python -I -S jail.py STATUS_FD CONFIG_JSON``; it
applies what the kernel allows, reports which defences are in place on
STATUS_FD (closed before any student code runs, so the report cannot be forged),
and ``exec``s the worker. A fork server's child (``grader.sandbox.forkserver``)
calls ``lock_down`` and becomes the worker without an ``exec``. Standard library only.

Defences, each applied when available:

* **namespaces**: a new mount, network, IPC and PID namespace (plus a user
  namespace when not root). In the network namespace only a downed loopback
  exists, so every connection fails. In the PID namespace the worker is PID 1:
  when it dies the kernel kills every process it left behind, and the grader's
  processes are invisible.
* **hidden paths**: an empty read-only tmpfs over each protected path (the
  course's source tree, the results folder, the grader's home), then the paths
  the worker needs (the Python installation, the worker runtime, the submission)
  bind-mounted back, read-only except its working folders.
* **private temporary folders**: a fresh writable tmpfs over ``/tmp``, ``/var/tmp``
  and ``/dev/shm``, seen by this worker only and gone with it (the paths it needs
  that lie there, such as its scratch folder, are bound back in).
* **privileges**: as root, the worker becomes an unprivileged user (``nobody``);
  otherwise it runs as a non-root user of a nested user namespace, with no
  capabilities over the mount namespace (it cannot unmount what hides the paths).
  ``no_new_privs`` is set either way.
* **limits**: address space / data size, number of processes, file size, no core
  dumps, open files.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                       flags, data.encode() if data else None), f"mount {target}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _map_user(inner_uid: int, outer_uid: int, inner_gid: int, outer_gid: int) -> None:
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{inner_uid} {outer_uid} 1")
    _write("/proc/self/gid_map", f"{inner_gid} {outer_gid} 1")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _open_exposures(protected: list[str], expose: list[tuple[str, bool]]) -> list[tuple]:
    """Descriptors for the exposed paths that lie under a protected one, opened before tmpfs covers them.

    A bind mount needs a source that still reaches the real file once its parent
    is covered; ``/proc/self/fd/N`` of an ``O_PATH`` descriptor opened now does.
    """
    found = []
    for path, writable in sorted(set(expose), key=lambda p: len(p[0])):
        if not os.path.exists(path) or not any(_under(path, p) for p in protected):
            continue
        fd = os.open(path, os.O_PATH)
        found.append((path, fd, os.path.isdir(path), writable))
    return found


def _remount_readonly(path: str) -> None:
    """Make a bind mount read-only, keeping the flags a user namespace may not drop."""
    flags = os.statvfs(path).f_flag
    keep = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048)
    if flags & 4096:  # ST_RELATIME
        keep |= 1 << 21  # MS_RELATIME
    _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)


def _hide_and_expose(protected: list[str], expose: list[tuple[str, bool]], status: dict,
                     private_temp: list[str] = (), temp_size: int | None = None) -> None:
    """tmpfs over each protected folder and each temporary folder; then bind the exposed paths back in.

    A protected folder gets an empty read-only tmpfs; a temporary folder (``/tmp``,
    ``/var/tmp``, ``/dev/shm``) a fresh writable one (mode 1777), private to this
    worker and gone with its mount namespace, so nothing it writes there reaches
    another grading, and nothing another grading left there reaches it.
    """
    temporary = [p for p in private_temp if os.path.isdir(p)]
    exposures = _open_exposures(list(protected) + temporary, expose)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    hidden: list[str] = []
    covered: list[str] = []
    for path in sorted(set(protected) | set(temporary), key=lambda p: (len(p), p)):  # same order at every run
        if not os.path.isdir(path) or any(_under(path, c) for c in covered):
            continue
        if path in temporary:
            size = f",size={temp_size}" if temp_size else ""
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" + size)
        else:
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
            hidden.append(path)
        covered.append(path)
    for path, fd, is_dir, writable in exposures:
        if is_dir:
            os.makedirs(path, exist_ok=True)
        elif not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
        if not writable:
            try:
                _remount_readonly(path)
            except OSError as exc:
                status["warnings"].append(f"{path} stays writable: {exc.strerror}")
    for path in hidden:
        _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    status["hidden"] = hidden
    status["private_temp"] = [p for p in covered if p in temporary]


# The out-of-memory killer's preference (-1000..1000): a worker is taken before the grading process, which
# then reports the test as the machine's and goes on with a new worker, instead of losing every later test.
OOM_SCORE_ADJ = 1000


def _prefer_for_oom_killer(status: dict) -> None:
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(OOM_SCORE_ADJ))
        status["defences"].append(f"killed first when the machine runs out of memory (oom_score_adj {OOM_SCORE_ADJ})")
    except OSError as exc:  # raising one's own score needs no privilege; /proc may be missing
        status["warnings"].append(f"could not set oom_score_adj: {exc.strerror}")


def _limits(cfg: dict, status: dict) -> None:
    memory = cfg.get("memory_limit")
    if memory:
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
        status["defences"].append(f"memory limit {memory} bytes (RLIMIT_DATA)")
    nproc = cfg.get("max_processes")
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        status["defences"].append(f"at most {nproc} processes")
    fsize = cfg.get("max_file_size")
    if fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _drop_root(cfg: dict, status: dict) -> None:
    uid, gid = cfg["run_as"]
    os.setgroups([int(g) for g in cfg.get("groups") or []])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    status["defences"].append(f"runs as unprivileged uid {uid}")


def _wait_while_parent_lives(child: int, grader: int) -> int:
    """Wait for ``child``; kill it if the grader (our parent) dies first. Returns the wait status.

    A parent-death signal would tie the launcher to the grader's thread that started it,
    so the launcher polls instead (woken at once by SIGCHLD when the worker exits).
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    while True:
        pid, wait_status = os.waitpid(child, os.WNOHANG)
        if pid:
            return wait_status
        if os.getppid() != grader:
            os.kill(child, signal.SIGKILL)
            return os.waitpid(child, 0)[1]
        signal.sigtimedwait({signal.SIGCHLD}, 0.5)


def lock_down(cfg: dict, status_fd: int) -> None:
    """Apply every defence of ``cfg`` to this process and report them on ``status_fd`` (then closed).

    On return this process is the locked-down worker, in ``cfg["workdir"]``, ready to run student code
    (``main`` then ``exec``s the worker; a fork server's child runs it in place). With a PID namespace the
    process forks: the parent stays outside as the worker's launcher, mirrors its exit and never returns.
    """
    grader = parent_at_start = os.getppid()
    status: dict = {"defences": [], "warnings": [], "namespaces": []}
    _prefer_for_oom_killer(status)  # first: once root is dropped, /proc/self belongs to root (not dumpable)
    is_root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    namespaces = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID
    userns = not is_root
    wanted = namespaces | (CLONE_NEWUSER if userns else 0)
    applied = 0
    if cfg.get("namespaces", True):
        for flags in (wanted, wanted & ~CLONE_NEWNET, wanted & ~(CLONE_NEWNET | CLONE_NEWPID)):
            try:
                _unshare(flags)
                applied = flags
                break
            except OSError as exc:
                status["warnings"].append(f"unshare({flags:#x}) failed: {exc.strerror}")
    if applied & CLONE_NEWUSER:
        _map_user(0, uid, 0, gid)
    names = {CLONE_NEWNS: "mount", CLONE_NEWNET: "network", CLONE_NEWPID: "pid", CLONE_NEWUSER: "user",
             CLONE_NEWIPC: "ipc"}
    status["namespaces"] = [n for f, n in names.items() if applied & f]
    if applied & CLONE_NEWNET:
        status["defences"].append("no network (empty network namespace)")
    expose = [(p, bool(w)) for p, w in cfg.get("expose", [])]
    if applied & CLONE_NEWNS:
        protected = cfg.get("protected", [])
        try:
            _hide_and_expose(protected, expose, status, cfg.get("private_temp", []), cfg.get("temp_size"))
            status["defences"].append("protected paths hidden: " + ", ".join(status.get("hidden", [])))
            if status.get("private_temp"):
                status["defences"].append("own " + ", ".join(status["private_temp"]) + " (emptied with the worker)")
        except OSError as exc:
            status["warnings"].append(f"could not hide protected paths: {exc}")

    if applied & CLONE_NEWPID:
        child = os.fork()
        if child:
            # The launcher stays outside as the worker's parent; it only waits and mirrors the exit.
            os.close(status_fd)
            signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGKILL))
            wait_status = _wait_while_parent_lives(child, grader)
            if os.WIFSIGNALED(wait_status):
                sig = os.WTERMSIG(wait_status)
                if sig not in (signal.SIGKILL, signal.SIGSTOP):  # their handlers cannot be set (EINVAL)
                    signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)
            os._exit(os.waitstatus_to_exitcode(wait_status) if hasattr(os, "waitstatus_to_exitcode") else 1)
        parent_at_start = os.getppid()  # 0: the launcher is outside this PID namespace
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if applied & CLONE_NEWNS:
            try:
                _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                status["defences"].append("own /proc (grader processes invisible)")
            except OSError as exc:
                status["warnings"].append(f"could not mount /proc: {exc}")
        status["defences"].append("own PID namespace (leftover processes die with the worker)")

    if is_root and cfg.get("run_as"):
        _drop_root(cfg, status)
    elif applied & CLONE_NEWUSER:
        # A nested user namespace: the worker is uid 1000 there, with no capabilities over the
        # mount namespace (owned by the outer one), so it cannot unmount what hides the paths.
        _unshare(CLONE_NEWUSER)
        _map_user(1000, 0, 1000, 0)
        status["defences"].append("non-root user in a nested user namespace")
    elif not is_root:
        status["defences"].append(f"runs as the grader's own uid {uid} (no user namespace)")
    else:
        status["warnings"].append("runs as root: no unprivileged user configured")
    if not applied & CLONE_NEWPID:
        # Without a PID namespace, orphans of the worker's children come back to it (not to init),
        # so the grader can still find and stop them.
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    _limits(cfg, status)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # Die with the parent (the grader, or the launcher in a PID namespace). Set last: changing
    # the user id above clears it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_at_start:
        os._exit(1)
    os.chdir(cfg["workdir"])
    os.umask(0o077)  # what the student's code writes is its own (other gradings' uids cannot read it)
    os.write(status_fd, json.dumps(status).encode())
    os.close(status_fd)


def main() -> None:
    cfg = json.loads(sys.argv[2])
    lock_down(cfg, int(sys.argv[1]))
    argv = cfg["argv"]
    os.execve(argv[0], argv, cfg["env"])


if __name__ == "__main__":
    main()

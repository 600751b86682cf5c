"""One unprivileged user id per concurrent grading on a machine (trusted side only).

As root, every grading process (one ``cvgrade grade``, one pytest session, one
pytest-xdist worker) runs its student workers as a user id of its own, taken
from a reserved range and held with a lock file for the life of the process.
Two gradings at once (``cvgrade batch -n 2``) therefore cannot read each
other's files, signal each other's processes or count against each other's
process limit. Standard library only.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RANGE = (47000, 47999)
LOCK_DIR = Path("/run/cvgrade-worker-uids")

_held: list[int] = []  # lock file descriptors kept open while this process lives

#: The shared temporary folders: each worker gets its own empty ones (``jail.py``).
TEMPORARY_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm")


@dataclass(frozen=True)
class WorkerIdentity:
    """Who a grading's workers run as.

    Attributes:
        uid, gid: the student worker's user and group (the group gates the grading's scratch folders).
        private: True when no other grading on this machine uses ``uid`` at the same time.
    """

    uid: int
    gid: int
    private: bool


def uid_range(value: str | None = None) -> tuple[int, int]:
    """``CVGRADE_WORKER_UIDS`` ("47000-47999") as a (first, last) pair.

    Raises:
        ValueError: when the value is not ``FIRST-LAST`` with 0 < FIRST <= LAST < 2**31.
    """
    text = os.environ.get("CVGRADE_WORKER_UIDS", "") if value is None else value
    if not text:
        return DEFAULT_RANGE
    try:
        first, last = (int(part) for part in text.split("-", 1))
    except ValueError:
        raise ValueError(f"CVGRADE_WORKER_UIDS must be FIRST-LAST, e.g. 47000-47999; got {text!r}") from None
    if not 0 < first <= last < 2**31:
        raise ValueError(f"CVGRADE_WORKER_UIDS must satisfy 0 < FIRST <= LAST < 2**31; got {text!r}")
    return first, last


def _lock_dir() -> Path:
    for folder in (LOCK_DIR, Path(tempfile.gettempdir()) / "cvgrade-worker-uids"):
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            info = folder.stat()
            if info.st_uid == 0 and not info.st_mode & 0o077:
                return folder
        except OSError:
            continue
    raise OSError("no root-only folder for the worker uid locks (tried /run and the temp folder)")


def _can_become(uid: int) -> bool:
    """Whether the kernel lets this process take ``uid`` (a user namespace may map only a few)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        except OSError:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _in_use(uid: int) -> bool:
    """A process of ``uid`` runs (a grading that crashed without its lock, or a real user)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    return True
            except OSError:
                continue
    return False


def take_uid(first: int, last: int) -> int | None:
    """Lock the first free uid of ``first..last`` for this process; None when all are taken."""
    folder = _lock_dir()
    for uid in range(first, last + 1):
        try:
            pwd.getpwuid(uid)
            continue  # a real account
        except KeyError:
            pass
        fd = os.open(folder / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _in_use(uid):
            os.close(fd)
            continue
        _held.append(fd)
        return uid
    return None


def shared_identity() -> tuple[int, int]:
    """``CVGRADE_WORKER_USER`` (default ``nobody``) as (uid, gid): a user every grading may share."""
    name = os.environ.get("CVGRADE_WORKER_USER", "nobody")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return (65534, 65534)
    return (entry.pw_uid, entry.pw_gid)


@functools.cache
def grading_identity() -> WorkerIdentity | None:
    """This process's student-worker identity; None when not root (workers then get a user namespace).

    ``CVGRADE_WORKER_USER`` set: that user, shared with other gradings (``private`` False).
    Otherwise a uid of ``CVGRADE_WORKER_UIDS`` locked for this process, or ``nobody`` when the range
    is exhausted or the kernel refuses it.
    """
    if os.geteuid() != 0:
        return None
    if os.environ.get("CVGRADE_WORKER_USER"):
        uid, gid = shared_identity()
        return WorkerIdentity(uid, gid, private=False)
    first, last = uid_range()
    uid = take_uid(first, last)
    if uid is not None and _can_become(uid):
        # The lock says no live grading has this uid: what an earlier one that died left behind
        # (its worker's files, its scratch folder) must not reach this grading's student.
        remove_files_of(uid)
        remove_stale_scratch(uid)
        return WorkerIdentity(uid, uid, private=True)
    uid, gid = shared_identity()
    return WorkerIdentity(uid, gid, private=False)


def remove_files_of(uid: int, folders: tuple[str, ...] = TEMPORARY_FOLDERS) -> int:
    """Delete the entries of ``folders`` owned by ``uid`` (what a worker left there); returns how many.

    Only for a uid private to this grading: others' files are never touched. Symbolic links are
    removed, never followed.
    """
    import shutil

    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                continue
    return removed


def remove_stale_scratch(gid: int, folder: str | None = None) -> int:
    """Delete ``cvgrade-*`` scratch folders (root's, of group ``gid``) that a dead grading of ``gid`` left."""
    import shutil

    removed = 0
    base = folder or tempfile.gettempdir()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return 0
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if entry.name.startswith("cvgrade-") and entry.is_dir(follow_symlinks=False) and info.st_uid == 0 \
                and info.st_gid == gid:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed

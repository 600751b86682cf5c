"""Give the memory a finished test left behind back to the machine.

A test's models and tensors often sit in reference cycles (modules, hooks, autograd
graphs) that Python's collector frees only when its allocation counters say so, and
glibc keeps freed heap pages for later instead of returning them. Across a suite the
worker then grows test by test: fcos_detection's student worker held 298 MB of private
memory at the end of a grading, 70-130 MB when each test starts from a collection and a
trim (``docs/performance.md``, section 6), and a container's limit counts every page.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

_libc: ctypes.CDLL | None = None


def _malloc_trim() -> bool:
    """``malloc_trim(0)`` where the C library is glibc; False elsewhere (musl, macOS)."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        except OSError:
            return False
    trim = getattr(_libc, "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def free_unused_memory() -> int:
    """Collect unreachable cycles (all generations) and return freed heap pages to the system.

    Returns:
        int: the number of unreachable objects the collector found.
    """
    found = gc.collect()
    _malloc_trim()
    return found

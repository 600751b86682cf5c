"""``cvgrade check --no-sandbox``: the student's code runs in this process with the terminal attached, so
``breakpoint()`` stops in pdb (driven here through a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from grader import manifest as manifests

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


def read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float) -> bool:
    """Read from ``fd`` into ``seen`` until ``wanted`` shows (True) or ``timeout`` seconds or EOF (False)."""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        seen.extend(chunk)
    return True


def submission_with_breakpoint(folder: Path) -> Path:
    reference = manifests.get("fcos_detection").reference_dir
    folder.mkdir()
    (folder / "one_stage_detector.py").write_text((reference / "one_stage_detector.py").read_text())
    source = (reference / "detection_utils.py").read_text()
    marker = "    left, top, right, bottom = deltas.unbind(dim=1)\n"
    assert marker in source
    (folder / "detection_utils.py").write_text(source.replace(
        marker, marker + "    debug_rows = deltas.shape[0]\n    breakpoint()\n", 1))
    return folder


def test_breakpoint_stops_in_pdb_on_the_terminal(tmp_path):
    folder = submission_with_breakpoint(tmp_path / "sub")
    command = [sys.executable, "-m", "grader.cli", "check", "fcos_detection", str(folder), "--no-sandbox",
               "-k", "centerness_golden"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: cvgrade on the pseudo-terminal
        os.environ.pop("PYTHONBREAKPOINT", None)
        os.execv(sys.executable, command)
    seen = bytearray()
    try:
        assert read_until(fd, b"(Pdb)", seen, 600), seen.decode(errors="replace")[-3000:]
        os.write(fd, b"p 1000000 + debug_rows\n")  # a local of the student's frame
        assert read_until(fd, b"\r\n100000", seen, 60), seen.decode(errors="replace")[-3000:]
        os.write(fd, b"c\n")
        read_until(fd, b"\x00never", seen, 600)  # to EOF
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = seen.decode(errors="replace")
    assert "detection_utils.py" in text and "breakpoint()" in text  # pdb shows the student's line
    assert "public tests" in text and os.waitstatus_to_exitcode(status) == 0, text[-3000:]

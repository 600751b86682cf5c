"""One worker uid per concurrent grading (``grader.sandbox.identity``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from grader.sandbox import identity


def test_uid_range_parses_and_quotes_bad_values():
    assert identity.uid_range("50000-50010") == (50000, 50010)
    assert identity.uid_range("") == identity.DEFAULT_RANGE
    with pytest.raises(ValueError, match="'abc'"):
        identity.uid_range("abc")
    with pytest.raises(ValueError, match="'9-3'"):
        identity.uid_range("9-3")


@pytest.mark.skipif(os.geteuid() != 0, reason="worker uids are taken only by a root grader")
def test_two_gradings_at_once_get_different_uids_and_a_freed_uid_is_reused():
    script = textwrap.dedent("""
        import sys, time
        from grader.sandbox.identity import grading_identity
        ident = grading_identity()
        print(ident.uid, ident.private, flush=True)
        time.sleep(float(sys.argv[1]))
    """)
    env = {**os.environ, "CVGRADE_WORKER_UIDS": "47900-47903"}
    env.pop("CVGRADE_WORKER_USER", None)
    first = subprocess.Popen([sys.executable, "-c", script, "3"], env=env, stdout=subprocess.PIPE, text=True)
    uid_first, private_first = first.stdout.readline().split()
    second = subprocess.run([sys.executable, "-c", script, "0"], env=env, capture_output=True, text=True, check=True)
    uid_second, private_second = second.stdout.split()
    first.wait(timeout=30)
    assert private_first == private_second == "True"
    assert uid_first != uid_second
    third = subprocess.run([sys.executable, "-c", script, "0"], env=env, capture_output=True, text=True, check=True)
    assert third.stdout.split()[0] == uid_first  # the lock died with its grading


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_remove_files_of_touches_only_that_uid(tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    (mine / "f").write_text("x")
    theirs.write_text("keep")
    os.chown(mine, 47950, 47950)
    os.symlink("/etc/passwd", tmp_path / "link")
    os.lchown(tmp_path / "link", 47950, 47950)
    assert identity.remove_files_of(47950, (str(tmp_path),)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs"]
    assert os.path.exists("/etc/passwd")

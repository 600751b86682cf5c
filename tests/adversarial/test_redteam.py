"""The red-team suite: every attack, graded by the real ``cvgrade grade`` path, as root and as a non-root user.

For each attack: the run finishes within its budget, results.json is valid, the
attacked test scores what an honest failing submission would (3 of 4 points in
all), the other tests are unaffected, and the attack's side effect did not
happen. The threat model and what each defence covers are in docs/security.md.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from attacks import ATTACKS, GOOD, Attack

from grader import paths
from grader.api import validate_results

BUDGET_SECONDS = 150
REPO = paths.project_root()

MANIFEST = """\
name = "redteam"
title = "Red team"
points = 4
student_files = ["good.py", "bad.py"]

[grading]
call_timeout = 5
memory_limit = "1GiB"
test_timeout = 60
"""

PUBLIC_TESTS = '''
import pytest, torch
from grader.compare import assert_close

X = torch.tensor([1.0, 2.0])


@pytest.mark.weight(1)
@pytest.mark.number("1")
def test_good_before(student):
    """good before"""
    assert_close(student.good.double(X), X * 2)


@pytest.mark.weight(1)
@pytest.mark.number("2")
def test_victim(student):
    """victim"""
    assert_close(student.bad.victim(X), X * 2)


@pytest.mark.weight(1)
@pytest.mark.number("3")
def test_good_after(student):
    """good after"""
    assert_close(student.good.double(X), X * 2)
'''

HIDDEN_TESTS = '''
# {secret}
import pytest, torch
from grader.compare import assert_close


@pytest.mark.weight(1)
@pytest.mark.number("4")
def test_hidden(student):
    """hidden"""
    assert_close(student.good.double(torch.ones(3)), torch.full((3,), 2.0))
'''


def _open(path: Path, mode: int) -> None:
    for root, _dirs, files in os.walk(path):
        os.chmod(root, mode)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


@pytest.fixture(scope="module")
def project():
    """A project with the ``redteam`` assignment, in a folder every user can read."""
    base = Path(tempfile.mkdtemp(prefix="cvgrade-redteam-"))
    secret = f"SECRET-{uuid.uuid4().hex}"
    suite = base / "grader" / "suites" / "redteam"
    (suite / "public").mkdir(parents=True)
    (suite / "hidden").mkdir(parents=True)
    (suite / "assignment.toml").write_text(MANIFEST)
    (suite / "public" / "test_redteam.py").write_text(PUBLIC_TESTS)
    (suite / "hidden" / "test_hidden.py").write_text(HIDDEN_TESTS.format(secret=secret))
    for tree in ("reference", "student_template"):
        (base / tree / "redteam").mkdir(parents=True)
        (base / tree / "redteam" / "good.py").write_text(GOOD)
        (base / tree / "redteam" / "bad.py").write_text(f"# REFERENCE-{secret}\ndef victim(x):\n    return x * 2\n")
    _open(base, 0o755)
    yield base, secret
    shutil.rmtree(base, ignore_errors=True)


def _non_root_runner() -> tuple[list[str], dict] | None:
    """setpriv + a system Python of the same minor version, for grading as an unprivileged user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    python = shutil.which(f"python{sys.version_info.major}.{sys.version_info.minor}", path="/usr/bin:/usr/local/bin")
    if python is None:
        return None
    try:
        user = pwd.getpwnam(os.environ.get("CVGRADE_TEST_USER", "nobody"))
    except KeyError:
        return None
    site_packages = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{site_packages}{os.pathsep}{REPO}", "PATH": "/usr/bin:/bin", "CVGRADE_FORK_SERVER": os.environ.get("CVGRADE_FORK_SERVER", "1")}
    return [shutil.which("setpriv"), f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            python], env


MODES = ["root", "non-root"]


class Listener:
    """A TCP server on loopback that records whether anything connected."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.connected = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connected = True
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def _processes_mentioning(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
    return found


# Attacks whose containment depends on the worker's user run in both modes by default; the others go
# through the same protocol path either way, so their non-root runs are -m slow (each run is a full
# sandboxed grading: 10-30 s on 2 cores).
CASES = [pytest.param(attack, mode, id=f"{attack.name}-{mode}",
                      marks=pytest.mark.slow if mode == "non-root" and not attack.depends_on_user else ())
         for attack in ATTACKS for mode in MODES]


@pytest.mark.parametrize(("attack", "mode"), CASES)
def test_attack_is_contained(project, attack: Attack, mode: str):
    base, secret = project
    runner = None
    if mode == "non-root":
        runner = _non_root_runner()
        if runner is None:
            pytest.skip("grading as a non-root user needs root, setpriv and a system Python of this version")
    elif os.geteuid() != 0:
        pytest.skip("the root-mode run needs root")

    work = Path(tempfile.mkdtemp(prefix="cvgrade-attack-"))
    os.chmod(work, 0o777)
    results_dir = work / "results"
    results_dir.mkdir()
    os.chmod(results_dir, 0o777 if mode == "non-root" else 0o755)
    results = results_dir / "results.json"
    (results_dir / "keep.txt").write_text("keep me")
    sentinel = Path(tempfile.gettempdir()) / f"cvgrade-sentinel-{uuid.uuid4().hex}"
    listener = Listener()
    submission = work / "submission"
    submission.mkdir()
    fields = {"results": str(results), "results_dir": str(results_dir), "port": listener.port,
              "sentinel": str(sentinel), "reference_glob": str(base / "reference" / "**" / "*.py"),
              "hidden_glob": str(base / "grader" / "suites" / "**" / "*.py")}
    (submission / "good.py").write_text(GOOD)
    (submission / "bad.py").write_text(textwrap.dedent(attack.bad).format(**fields))
    _open(submission, 0o755)
    home = work / "home"
    home.mkdir()
    os.chmod(home, 0o777)

    env = {**os.environ, "CVGRADE_ROOT": str(base), "HOME": str(home)}
    command = [sys.executable]
    if runner is not None:
        command, extra_env = runner
        env = {"CVGRADE_ROOT": str(base), "HOME": str(home), **extra_env}
    command = command + ["-m", "grader.cli", "grade", "redteam", str(submission), "--out", str(results), "-q"]
    started = time.monotonic()
    try:
        proc = subprocess.run(command, env=env, cwd=str(work), capture_output=True, text=True,
                              timeout=BUDGET_SECONDS)
    finally:
        listener.close()
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < BUDGET_SECONDS

    text = results.read_text()
    data = json.loads(text)
    assert not validate_results(data), validate_results(data)
    scores = {t["name"]: t["score"] for t in data["tests"]}
    assert scores == {"good before": 1, "victim": 0, "good after": 1, "hidden": 1}, (
        attack.name, {t["name"]: t.get("output", "")[:300] for t in data["tests"]})
    assert data["score"] == 3
    assert secret not in text, "the hidden tests or the reference leaked into results.json"
    assert "ignored" not in data["output"].lower() or "bad.py" not in data["output"]

    if "no_control_characters" in attack.side_effects:
        shown = "".join(t.get("output", "") for t in data["tests"]) + data.get("output", "") + proc.stdout + proc.stderr
        assert not any(c in shown for c in "\x1b\x00\x07\x08\r"), "control characters reached the output"
        assert "\\x1b" in json.dumps(data["tests"]), "the escapes should be shown, escaped"
    if "no_grader_state" in attack.side_effects:
        victim = next(t for t in data["tests"] if t["name"] == "victim")["output"]
        assert "FOUND: [" in victim, victim[:500]  # the search ran to its end
        assert "LEAKED-MODULE" not in victim and "SECRET-" not in victim, victim[:1000]
    if "small_results" in attack.side_effects:
        assert len(text) < 200_000
    if "results_untouched" in attack.side_effects:
        assert (results_dir / "keep.txt").read_text() == "keep me"
        assert not (results_dir / "pwned.txt").exists()
    if "no_connection" in attack.side_effects:
        assert not listener.connected, "student code reached a socket on the grader's loopback"
    if "no_sentinel" in attack.side_effects:
        time.sleep(6)
        assert not sentinel.exists(), "a process started by student code outlived the grading run"
    if "no_leftover_processes" in attack.side_effects:
        time.sleep(1)
        assert _processes_mentioning(str(sentinel)) == [], "processes forked by student code outlived the run"
    shutil.rmtree(work, ignore_errors=True)


CLASSMATE = """\
import os, time
print(f"uid={os.getuid()}")
def victim(x):
    time.sleep(3)  # still being graded while the copycat looks
    return x * 2  # CLASSMATE
"""

COPYCAT = """\
import glob, importlib.util, os, time
print(f"uid={os.getuid()}")
MINE = os.path.dirname(os.path.abspath(__file__))


def _classmate():
    for scratch in glob.glob("/tmp/cvgrade-*"):
        for sub in ("submission-redteam", "submission-redteam/"):
            path = os.path.join(scratch, sub, "bad.py")
            try:
                if os.path.dirname(os.path.abspath(path)) == MINE or "CLASSMATE" not in open(path).read():
                    continue
            except OSError:
                continue
            print(f"ran the classmate's {path}")
            spec = importlib.util.spec_from_file_location("classmate", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        for work in glob.glob(os.path.join(scratch, "work-*")):
            if os.path.realpath(work) == os.path.realpath(os.getcwd()):
                continue
            try:
                with open(os.path.join(work, "planted.py"), "w") as fh:
                    fh.write("written by a classmate")
                print(f"wrote into {work}")
                return "wrote"
            except OSError:
                pass
    return None


def victim(x):
    deadline = time.time() + 4
    while time.time() < deadline:
        found = _classmate()
        if found == "wrote":
            return x * 2
        if found is not None:
            return found.victim(x)
        time.sleep(0.1)
    return x * 3
"""


def test_concurrent_gradings_cannot_reach_each_other(project):
    """Two gradings at once (as ``cvgrade batch -n 2`` runs them): one cannot run, read or write the other's files."""
    if os.geteuid() != 0:
        pytest.skip("gradings are isolated from each other by uid only when the grader is root")
    base, _secret = project
    work = Path(tempfile.mkdtemp(prefix="cvgrade-pair-"))
    os.chmod(work, 0o755)
    runs = {}
    for name, bad in (("classmate", CLASSMATE), ("copycat", COPYCAT)):
        submission = work / name
        submission.mkdir()
        (submission / "good.py").write_text(GOOD)
        (submission / "bad.py").write_text(bad)
        _open(submission, 0o755)
        out = work / f"{name}.json"
        command = [sys.executable, "-m", "grader.cli", "grade", "redteam", str(submission), "--out", str(out), "-q"]
        runs[name] = (out, subprocess.Popen(command, env={**os.environ, "CVGRADE_ROOT": str(base)}, cwd=str(work),
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = {}
    for name, (out, proc) in runs.items():
        output, _ = proc.communicate(timeout=BUDGET_SECONDS)
        assert proc.returncode == 0, output
        results[name] = json.loads(out.read_text())
    shutil.rmtree(work, ignore_errors=True)
    scores = {name: {t["name"]: t["score"] for t in data["tests"]} for name, data in results.items()}
    assert scores["classmate"]["victim"] == 1, results["classmate"]
    assert scores["copycat"] == {"good before": 1, "victim": 0, "good after": 1, "hidden": 1}, (
        scores, [t.get("output", "")[-500:] for t in results["copycat"]["tests"] if t["name"] == "victim"])
    uids = {name: {line for t in data["tests"] for line in t.get("output", "").splitlines() if line.startswith("uid=")}
            for name, data in results.items()}
    assert uids["classmate"] and uids["copycat"] and not uids["classmate"] & uids["copycat"], uids


LEFTOVER = """\
import os
def victim(x):
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        with open(os.path.join(folder, "{marker}"), "w") as fh:
            fh.write("left behind")
    return x * 3
"""


def test_files_in_shared_temporary_folders_do_not_outlive_the_grading(project, tmp_path):
    """What a worker writes in /tmp, /var/tmp and /dev/shm is gone when its grading ends."""
    if os.geteuid() != 0:
        pytest.skip("needs root (the worker's uid is this grading's own)")
    base, _secret = project
    marker = f"cvgrade-leftover-{uuid.uuid4().hex}"
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "good.py").write_text(GOOD)
    (submission / "bad.py").write_text(LEFTOVER.format(marker=marker))
    _open(tmp_path, 0o755)
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "grade", "redteam", str(submission), "--out", str(out),
                           "-q"], env={**os.environ, "CVGRADE_ROOT": str(base)}, capture_output=True, text=True,
                          timeout=BUDGET_SECONDS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text())["score"] == 3
    left = [folder for folder in ("/tmp", "/var/tmp", "/dev/shm") if os.path.exists(os.path.join(folder, marker))]
    assert left == [], f"files of the worker outlived the grading in {left}"

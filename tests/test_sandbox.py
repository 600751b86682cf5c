"""The sandboxed worker: proxies for models, datasets, optimizers and generators; limits; crash recovery."""

from __future__ import annotations

import os
import textwrap
import time

import pytest
import torch
from engine_support import by_name, make_project, run

from grader.sandbox.client import StaleObjectError, StudentCodeError, StudentCrash, StudentImportError
from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as
from grader.student import (
    call_keeping_inputs,
    is_instance,
    module_info,
    num_parameters,
    student_raises,
    type_name,
    value_and_grad,
)

CODE = '''
import os, sys, time
import torch
from torch.utils.data import Dataset, DataLoader

print("imported")

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.bn = torch.nn.BatchNorm1d(2)
    def forward(self, x):
        return self.bn(self.fc(x))

class Squares(Dataset):
    def __len__(self):
        return 5
    def __getitem__(self, i):
        if i >= 5:
            raise IndexError(i)
        return torch.tensor([float(i)]), i * i

def loader():
    return DataLoader(Squares(), batch_size=2)

def counter(n):
    for i in range(n):
        yield i

def train_step(model, optimizer, x):
    optimizer.zero_grad()
    loss = model(x).pow(2).mean()
    loss.backward()
    optimizer.step()
    return float(loss)

def loss_fn(x):
    return (x ** 3).sum()

def shout(n):
    print("x" * n)
    sys.stderr.write("err\\n")
    return n

def sleep(s):
    time.sleep(s)
    return s

def hog(gib):
    return len(bytearray(int(gib * 2**30)))

def die():
    os._exit(7)

def bad_value():
    raise ValueError("unknown class 'unicorn'")

def clamp_in_place(x, scale=1.0):
    return x.clamp_(0, 1).sum() * scale

def clamp_copy(x, scale=1.0):
    return x.clamp(0, 1).sum() * scale

def bump_nested(items):
    items[1]["boxes"] += 1
    return len(items)

def oom_score_adj():
    with open("/proc/self/oom_score_adj") as f:
        return int(f.read())
'''


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sub")
    (folder / "mod.py").write_text(textwrap.dedent(CODE))
    os.chmod(folder, 0o755)
    os.chmod(folder / "mod.py", 0o644)
    settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as())
    connection = ProcessConnection(str(folder), ["mod"], settings)
    connection.call_timeout = 20
    yield connection
    connection.close()


def test_module_proxy_calls_iterates_and_passes_handles_back(conn):
    mod = conn.import_module("mod")
    model = mod.Net()
    assert type_name(model) == "mod.Net" and is_instance(model, "torch.nn.Module")
    assert is_instance(model.fc, "torch.nn.Linear")
    assert num_parameters(model) == 3 * 2 + 2 + 2 + 2
    info = module_info(model)
    assert info["training"] is True and ("fc", "torch.nn.modules.linear.Linear") in info["modules"]
    model.eval()
    assert module_info(model)["training"] is False
    out = model(torch.ones(4, 3))
    assert type(out) is torch.Tensor and out.shape == (4, 2)
    state = model.state_dict()
    assert set(state) == {"fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                          "bn.num_batches_tracked"}
    state["fc.weight"] = torch.full((2, 3), 0.5)
    model.load_state_dict(state)
    assert torch.equal(model.fc.weight, torch.full((2, 3), 0.5))
    model.train()
    optim = conn.import_module("torch.optim")
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    loss = mod.train_step(model, optimizer, torch.randn(4, 3, generator=torch.Generator().manual_seed(0)))
    assert isinstance(loss, float) and loss > 0
    assert not torch.equal(model.fc.weight, torch.full((2, 3), 0.5))
    requires = [p.requires_grad for p in model.parameters()]
    assert requires == [True] * 4


def test_empty_and_large_tensors_cross_both_ways(conn):
    """A request goes piece by piece: an empty tensor's piece is empty and must not stall the rest."""
    mod = conn.import_module("mod")
    start = time.monotonic()
    assert mod.clamp_copy(torch.empty(0), torch.tensor(2.0)).item() == 0.0  # the empty piece comes first
    big = torch.rand(3 * 2**20, generator=torch.Generator().manual_seed(1))  # 12 MB: several pipe writes
    assert mod.clamp_copy(big).item() == pytest.approx(big.sum().item(), rel=1e-4)
    worker_torch = conn.import_module("torch")
    assert worker_torch.zeros(0, 3).shape == (0, 3)
    assert torch.equal(worker_torch.arange(3 * 2**20), torch.arange(3 * 2**20))  # 24 MB back
    assert time.monotonic() - start < 10


def test_a_second_proxy_of_one_object_dying_leaves_the_first_working(conn):
    """``model.train()`` returns ``model``: the worker answers with the id it already gave it, so one
    object has two proxies; the first must keep working when the second is collected."""
    import gc

    mod = conn.import_module("mod")
    model = mod.Net()
    again = model.train()
    assert type_name(again) == "mod.Net"
    del again
    gc.collect()
    model.eval()  # the next request carries the pending releases
    assert module_info(model)["training"] is False and num_parameters(model) == 12
    del model
    gc.collect()
    assert conn.import_module("mod").Net() is not None


def test_datasets_loaders_and_generators(conn):
    mod = conn.import_module("mod")
    dataset = mod.Squares()
    assert len(dataset) == 5
    x, y = dataset[3]
    assert torch.equal(x, torch.tensor([3.0])) and y == 9
    assert [int(item[1]) for item in dataset] == [0, 1, 4, 9, 16]
    batches = list(mod.loader())
    assert [b[1].tolist() for b in batches] == [[0, 1], [4, 9], [16]]
    assert list(mod.counter(3)) == [0, 1, 2]


def test_gradients_and_errors(conn):
    mod = conn.import_module("mod")
    value, (grad,) = value_and_grad(mod.loss_fn, torch.tensor([1.0, 2.0]))
    assert value.item() == 9.0 and torch.equal(grad, torch.tensor([3.0, 12.0]))
    with student_raises("ValueError", match="unicorn") as caught:
        mod.bad_value()
    assert "mod.py" in caught["error"].traceback
    with pytest.raises(StudentCodeError, match="has no attribute 'missing'"):
        mod.missing  # noqa: B018


def test_inputs_changed_in_place_are_seen_in_the_worker(conn):
    """The grader's own copy of an argument never changes (it was copied to the worker); the check that runs in
    the worker sees the student's ``clamp_`` on the caller's tensor, names the argument, and passes clean code."""
    mod = conn.import_module("mod")
    x = torch.tensor([-1.0, 0.5, float("nan"), 3.0])
    kept = x.clone()
    mod.clamp_in_place(x)
    assert torch.equal(x.nan_to_num(), kept.nan_to_num())  # why a grader-side comparison cannot fail
    assert call_keeping_inputs(mod.clamp_copy, x, scale=2.0).isnan()
    with pytest.raises(AssertionError, match=r"clamp_in_place\(\.\.\.\) changed its input args\[0\] in place"):
        call_keeping_inputs(mod.clamp_in_place, x)
    with pytest.raises(AssertionError, match=r"args\[0\]\[1\]\['boxes'\]"):
        call_keeping_inputs(mod.bump_nested, [torch.zeros(2), {"boxes": torch.zeros(3, 4)}])
    with pytest.raises(AssertionError, match=r"kwargs\['x'\]"):
        call_keeping_inputs(lambda x: x.mul_(2), x=torch.ones(2))  # a local function: the same check


def test_output_is_captured_per_call(conn):
    mod = conn.import_module("mod")
    printed = []
    conn.on_output = printed.append
    try:
        assert mod.shout(3) == 3
        assert "".join(printed) == "xxx\nerr\n"
        printed.clear()
        mod.shout(200_000)
        text = "".join(printed)
        assert len(text) < 40_000 and "more bytes of output not shown" in text
    finally:
        conn.on_output = None


def test_timeout_crash_and_memory_are_contained(conn):
    mod = conn.import_module("mod")
    model = mod.Net()
    with pytest.raises(StudentCrash, match=r"ran past the time limit of 1 s in mod.sleep"):
        mod.sleep.__call__  # noqa: B018 - attribute access works
        conn.call_timeout = 1
        try:
            mod.sleep(5)
        finally:
            conn.call_timeout = 20
    conn.tripped = None
    with pytest.raises(StaleObjectError):
        model(torch.ones(1, 3))  # the worker was replaced: old objects are gone
    mod = conn.import_module("mod")  # a fresh worker imports again
    assert mod.sleep(0) == 0
    with pytest.raises(StudentCodeError, match="more than 2 GiB of memory"):
        mod.hog(3)
    conn.tripped = None
    assert mod.sleep(0) == 0
    with pytest.raises(StudentCrash, match=r"exited in mod.die.*exit status 7"):
        mod.die()
    assert conn.import_module("mod").sleep(0) == 0
    assert conn.starts >= 3


def test_defences_are_reported(conn):
    mod = conn.import_module("mod")
    # A machine short of memory kills the worker before the grading process (which then goes on).
    assert mod.oom_score_adj() == 1000
    defences = " ".join(conn.defences["defences"])
    if os.geteuid() == 0:
        assert "unprivileged uid" in defences
    assert "memory limit" in defences


def test_import_error_is_a_student_import_error(tmp_path):
    (tmp_path / "broken.py").write_text("import numpy\nx = numpy.nope\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "broken.py", 0o644)
    settings = SandboxSettings(protected=default_protected(), run_as=default_run_as(), preload=())
    connection = ProcessConnection(str(tmp_path), ["broken"], settings)
    try:
        with pytest.raises(StudentImportError, match="Could not import broken.py: AttributeError"):
            connection.import_module("broken")
    finally:
        connection.close()


def test_sandbox_marker_sets_the_call_timeout(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_t.py": '''
        import pytest

        @pytest.mark.weight(1)
        @pytest.mark.sandbox(call_timeout=1)
        def test_short(student):
            """short limit"""
            student.mod.add(1, 2)
    '''}, reference="import time\ndef add(a, b):\n    time.sleep(3)\n    return a + b\n")
    data, _ = run(pytester)
    record = by_name(data)["short limit"]
    assert record["score"] == 0 and "time limit of 1 s" in record["output"]


CYCLE_MOD = """\
import gc, weakref

freed = []

class Cycle:
    def __init__(self):
        self.me = self
        self.payload = bytearray(32 * 2**20)

def make_cycle():
    gc.disable()  # from now on only an explicit collection frees the cycle
    weakref.finalize(Cycle(), freed.append, 1)
    return len(freed)

def freed_count():
    gc.enable()
    return len(freed)
"""


def test_each_test_starts_with_the_cycles_of_earlier_tests_freed(pytester, monkeypatch):
    """The worker collects and trims before each test, so that its memory does not grow test by test."""
    make_project(pytester, monkeypatch, {"public/test_cycle.py": '''
        import pytest

        @pytest.mark.weight(1)
        def test_a(student):
            """leaves a cycle"""
            assert student.mod.make_cycle() == 0

        @pytest.mark.weight(1)
        def test_b(student):
            """finds it freed"""
            assert student.mod.freed_count() == 1
    '''}, reference=CYCLE_MOD)
    data, _ = run(pytester)
    assert [t["score"] for t in data["tests"]] == [1, 1], [t["output"] for t in data["tests"]]


GRADER_THAT_DIES = '''
import sys
from pathlib import Path
from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as
settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as(),
                           workdir=Path(sys.argv[2]))
connection = ProcessConnection(sys.argv[1], ["spin"], settings)
connection.call_timeout = 600
print("calling", flush=True)
connection.import_module("spin").spin()
'''


def _processes_in(folder: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if folder.encode() in fh.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


def _readable_course_folder(tmp_path, files: dict[str, str]):
    """``tmp_path/sub`` with ``files``, readable by the sandbox's unprivileged worker user."""
    folder = tmp_path / "sub"
    folder.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(folder, 0o755)
    for name, source in files.items():
        (folder / name).write_text(source)
        os.chmod(folder / name, 0o644)
    return folder


def test_worker_dies_with_a_killed_grader(tmp_path):
    """SIGKILL of the grading process (a batch timeout, say) while student code spins: nothing is left running."""
    import signal
    import subprocess
    import sys
    import time

    folder = _readable_course_folder(
        tmp_path, {"spin.py": "def spin():\n    open('spinning', 'w').close()\n    while True:\n        pass\n"})
    workdir = tmp_path / "work"
    workdir.mkdir()
    os.chmod(workdir, 0o777)
    grader = subprocess.Popen([sys.executable, "-c", GRADER_THAT_DIES, str(folder), str(workdir)],
                              stdout=subprocess.PIPE,
                              text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        assert grader.stdout.readline().strip() == "calling"
        deadline = time.monotonic() + 120
        while not (workdir / "spinning").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (workdir / "spinning").exists(), "the student's code never ran"
    finally:
        grader.send_signal(signal.SIGKILL)
        grader.wait()
    deadline = time.monotonic() + 10
    while _processes_in(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _processes_in(str(folder))
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the student's sandbox outlived the grader: {left}"


def test_a_module_that_crashes_at_import_is_not_retried_forever(tmp_path):
    import time

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "boom.py").write_text("import os\nos._exit(3)\n")
    (folder / "fine.py").write_text("def one():\n    return 1\n")
    for path in (tmp_path, folder):
        os.chmod(path, 0o755)
    settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as())
    connection = ProcessConnection(str(folder), ["boom", "fine"], settings)
    try:
        for _ in range(2):
            with pytest.raises(StudentCrash):
                connection.import_module("boom")
        start = time.monotonic()
        with pytest.raises(StudentCrash, match="not tried again"):
            connection.import_module("boom")
        assert time.monotonic() - start < 0.5
        assert connection.import_module("fine").one() == 1  # the other modules still work
    finally:
        connection.close()


def test_a_worker_that_dies_at_start_shows_what_it_printed(tmp_path):
    """The start-up failure keeps the worker's last words (they were dropped, which left a one-off
    'exit status 1' in a loaded CI run unexplained)."""
    folder = _readable_course_folder(tmp_path, {"mod.py": "x = 1\n"})
    settings = SandboxSettings(memory_limit=48 * 2**20, protected=default_protected(), run_as=default_run_as())
    connection = ProcessConnection(str(folder), ["mod"], settings)
    try:
        with pytest.raises(StudentCrash, match="could not start") as caught:
            connection.import_module("mod")
        assert "--- your code printed ---" in str(caught.value), str(caught.value)
        assert caught.value.reason == "memory", str(caught.value)  # torch cannot even be mapped in 48 MB
    finally:
        connection.close()


def test_the_worker_has_its_own_empty_temporary_folders(conn, tmp_path):
    """A file another grading left in /tmp, /var/tmp or /dev/shm is invisible to the worker, and
    what the worker writes there is invisible outside it, even while it runs."""
    osmod = conn.import_module("os")
    if "mount" not in conn.defences.get("namespaces", []):
        pytest.skip("no mount namespace on this machine")
    name = f"cvgrade-planted-{os.getpid()}-{tmp_path.name}"
    planted = [os.path.join(folder, name) for folder in ("/tmp", "/var/tmp", "/dev/shm") if os.path.isdir(folder)]
    try:
        for path in planted:
            with open(path, "w") as fh:
                fh.write("a classmate's file")
            os.chmod(path, 0o666)
        assert [p for p in planted if osmod.path.exists(p)] == []
        pathlib = conn.import_module("pathlib")
        written = [p + "-by-worker" for p in planted]
        for path in written:
            pathlib.Path(path).write_text("mine")
        assert [p for p in written if osmod.path.exists(p)] == written  # the worker sees its own files
        assert [p for p in written if os.path.exists(p)] == []
    finally:
        for path in planted:
            os.unlink(path)

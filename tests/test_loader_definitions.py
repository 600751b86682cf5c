"""Script-style student files imported as their definitions only (``grader.sandbox.loader``).

Real 16-824 solutions run their work when imported: argparse at the top, data sets built from
``data/VOCdevkit``, a training loop. Grading needs their functions and classes, not that work.
"""

from __future__ import annotations

import textwrap

import pytest

from grader.sandbox.loader import ModuleImportError, import_definitions, load_modules

SCRIPT = textwrap.dedent('''
    """Task 2 of a student, written as a script."""
    import argparse
    import os
    import torch
    from helpers import double

    CLASS_NAMES = ["aeroplane", "bicycle", "bird"]
    INV_CLASS = {name: i for i, name in enumerate(CLASS_NAMES)}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    EPOCHS: int = 3

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()
    train_list = open("data/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt").read().split()
    IMAGES = os.listdir("data/VOCdevkit/VOC2007/JPEGImages")

    def iou(a, b):
        return double(a) + b

    class WSDDN(torch.nn.Module):
        n_classes = len(CLASS_NAMES)

        def forward(self, x):
            return x * self.n_classes

    def train():
        open(os.path.join(os.environ["MARKER_DIR"], "trained"), "w").write("the training ran")
        return 1

    model_result = train()
    for epoch in range(EPOCHS):
        train()
    train()

    if __name__ == "__main__":
        train()
''')


@pytest.fixture
def course(tmp_path, monkeypatch):
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "task_2.py").write_text(SCRIPT)
    (folder / "helpers.py").write_text("def double(x):\n    return 2 * x\n")
    (folder / "task_1.py").write_text("from task_2 import iou\n\ndef uses_iou(a, b):\n    return iou(a, b)\n")
    monkeypatch.setenv("MARKER_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return folder


def test_a_plain_import_of_the_script_fails(course):
    with pytest.raises(ModuleImportError, match="task_2.py"):
        load_modules(course, ["task_2"])


def test_definitions_only_keeps_imports_functions_classes_and_constants(course, tmp_path):
    module = load_modules(course, ["task_2"], definitions_only=["task_2"])["task_2"]
    assert module.iou(1, 2) == 4
    assert module.WSDDN().forward(2) == 6
    assert module.INV_CLASS == {"aeroplane": 0, "bicycle": 1, "bird": 2}
    assert str(module.device) in ("cpu", "cuda") and module.EPOCHS == 3
    assert module.__doc__ is None or "script" in module.__doc__
    assert not (tmp_path / "trained").exists(), "the training ran at import"
    for name in ("args", "train_list", "IMAGES", "model_result"):
        assert not hasattr(module, name), name
    left_out = module.__cvgrade_left_out__
    # argparse configuration is kept (the script's functions read its defaults); parsing sys.argv is not
    assert not any("add_argument" in line for line in left_out), left_out
    assert module.parser.parse_args([]).lr == 0.1
    assert any(line.startswith("line 15: args = parser.parse_args()") for line in left_out), left_out
    assert any("args = parser.parse_args()" in line for line in left_out)
    assert any("trainval.txt" in line for line in left_out), left_out  # open() is not run
    assert any("IMAGES = os.listdir" in line and "raised here" in line for line in left_out), left_out
    assert any("model_result = train()" in line for line in left_out)
    assert not any("__main__" in line for line in left_out)
    assert module.train() == 1 and (tmp_path / "trained").exists()  # still callable on purpose


def test_another_student_file_that_imports_the_script_gets_its_definitions(course, tmp_path):
    modules = load_modules(course, ["task_1"], definitions_only=["task_2"])
    assert modules["task_1"].uses_iou(1, 1) == 3
    assert not (tmp_path / "trained").exists()


def test_definitions_on_error_falls_back_only_when_the_plain_import_raises(course, tmp_path):
    (course / "library_style.py").write_text("VALUE = 1\nprint('imported')\n")
    modules = load_modules(course, ["task_2", "library_style"], definitions_on_error=True)
    assert modules["task_2"].iou(1, 0) == 2 and modules["task_2"].__cvgrade_left_out__
    assert modules["library_style"].VALUE == 1
    assert not hasattr(modules["library_style"], "__cvgrade_left_out__")


def test_a_syntax_error_is_never_hidden(course):
    (course / "broken.py").write_text("def f(:\n    pass\n")
    with pytest.raises(ModuleImportError, match="SyntaxError at line 1 of broken.py"):
        load_modules(course, ["broken"], definitions_on_error=True)
    with pytest.raises(ModuleImportError, match="SyntaxError"):
        load_modules(course, ["broken"], definitions_only=["broken"])


def test_when_the_definitions_fail_too_the_plain_import_error_is_shown(course):
    (course / "bad.py").write_text("raise RuntimeError('my own error')\nimport not_a_module_anywhere\n")
    with pytest.raises(ModuleImportError, match="RuntimeError: my own error"):
        load_modules(course, ["bad"], definitions_on_error=True)


def test_import_definitions_of_one_file(course):
    module, left_out = import_definitions("helpers_copy", course / "helpers.py")
    assert module.double(3) == 6 and left_out == []


@pytest.mark.parametrize("mode", ["sandbox", "loopback"])
def test_the_worker_imports_definitions_only_and_tells_the_student(course, tmp_path, mode):
    """Through the real sandboxed worker (and the in-process loopback): the manifest's options reach the
    loader, the functions work, and the student is told on stderr what was left out."""
    import os

    from grader.sandbox.client import LoopbackConnection
    from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as

    for path in [course, *course.iterdir()]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    os.chmod(tmp_path, 0o755)
    if mode == "sandbox":
        settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as(),
                                   definitions_only=("task_2",))
        conn = ProcessConnection(str(course), ["task_1", "task_2", "helpers"], settings)
        conn.call_timeout = 60
    else:
        conn = LoopbackConnection(str(course), ["task_1", "task_2", "helpers"], definitions_only=("task_2",))
    printed: list[str] = []
    conn.on_output = printed.append
    try:
        task_1 = conn.import_module("task_1")
        assert task_1.uses_iou(2, 1) == 5
        text = "".join(printed)
        assert "cvgrade: task_2.py runs code when imported, so only its definitions" in text, text
        assert "line 15: args = parser.parse_args()" in text
    finally:
        conn.on_output = None
        conn.close()
    assert not (tmp_path / "trained").exists()


def test_manifest_options_for_script_style_files(tmp_path):
    from grader.manifest import ManifestError, load_manifest

    folder = tmp_path / "demo"
    folder.mkdir()
    base = 'name = "demo"\npoints = 1\nstudent_files = ["task_1.py", "task_2.py"]\n[grading]\n'
    (folder / "assignment.toml").write_text(base + 'definitions_only = ["task_2.py"]\n'
                                            "definitions_on_import_error = true\n")
    manifest = load_manifest(folder / "assignment.toml")
    assert manifest.definitions_only_modules == ("task_2",) and manifest.grading.definitions_on_import_error
    (folder / "assignment.toml").write_text(base + 'definitions_only = ["other.py"]\n')
    with pytest.raises(ManifestError, match=r"definitions_only must list student files .*'other.py'"):
        load_manifest(folder / "assignment.toml")


def test_a_lazy_module_that_answers_every_attribute_does_not_break_the_note(course, monkeypatch):
    """Seen in CI: a library's lazy module returned an int for ``__cvgrade_left_out__``, and every import failed."""
    import sys
    import types

    from grader.sandbox.client import LoopbackConnection

    class Lazy(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__cvgrade"):
                return 0  # what a lazy module that answers every name gives
            raise AttributeError(name)

    monkeypatch.setitem(sys.modules, "some_lazy_library", Lazy("some_lazy_library"))
    conn = LoopbackConnection(str(course), ["task_1", "task_2", "helpers"], definitions_only=("task_2",))
    try:
        assert conn.import_module("task_1").uses_iou(1, 1) == 3
    finally:
        conn.close()


def test_a_broken_sibling_import_is_left_out_and_the_rest_is_kept(course):
    """train_q2.py's ``import trainer`` when trainer.py raises: ResNet is graded all the same."""
    (course / "trainer.py").write_text("def train(:\n    pass\n")
    (course / "train_q2.py").write_text(
        "import trainer\nfrom helpers import double\n\nclass ResNet:\n    def size(self):\n        return double(9)\n")
    module = load_modules(course, ["train_q2"], definitions_on_error=True)["train_q2"]
    assert module.ResNet().size() == 18
    assert any("import trainer" in line and "raised here" in line for line in module.__cvgrade_left_out__)
    with pytest.raises(ModuleImportError, match="SyntaxError at line 1 of trainer.py"):
        load_modules(course, ["trainer"], definitions_on_error=True)


def test_the_worker_shares_a_folder_module_but_not_another_folders(course, tmp_path):
    """Not isolated (the worker): ``utils`` that trainer imported is the ``utils`` the grader loads next,
    so a patch of it reaches trainer; a ``utils`` from another folder (the reference's, in a --no-sandbox
    run) is never taken for the student's."""
    import sys

    other = tmp_path / "other"
    other.mkdir()
    (other / "utils.py").write_text("WHO = 'other'\n")
    (course / "utils.py").write_text("WHO = 'student'\n")
    (course / "trainer.py").write_text("import utils\n\ndef who():\n    return utils.WHO\n")
    saved = {n: sys.modules.pop(n) for n in ("utils", "trainer") if n in sys.modules}
    saved_path = list(sys.path)
    try:
        assert load_modules(other, ["utils"], isolated=False)["utils"].WHO == "other"
        trainer = load_modules(course, ["trainer"], isolated=False)["trainer"]
        utils = load_modules(course, ["utils"], isolated=False)["utils"]
        assert utils.WHO == "student" and utils is trainer.utils
        utils.WHO = "patched"
        assert trainer.who() == "patched"
    finally:
        for n in ("utils", "trainer"):
            sys.modules.pop(n, None)
        sys.modules.update(saved)
        sys.path[:] = saved_path


def test_an_earlier_folders_definitions_finder_does_not_take_a_later_folders_file(course, tmp_path):
    """Not isolated, the finder stays on sys.meta_path (the worker); in a --no-sandbox run another
    submission's task_2.py, first on sys.path, must not be answered from the earlier folder."""
    import sys

    later = tmp_path / "later"
    later.mkdir()
    (later / "task_2.py").write_text("def get_detections():\n    return 'later'\n")
    saved_modules = {n: sys.modules.pop(n) for n in ("task_2", "helpers") if n in sys.modules}
    saved_path, saved_meta = list(sys.path), list(sys.meta_path)
    try:
        first = load_modules(course, ["task_2"], isolated=False, definitions_only=["task_2"])["task_2"]
        assert first.iou(1, 1) == 3
        second = load_modules(later, ["task_2"], isolated=False)["task_2"]
        assert second.get_detections() == "later"
    finally:
        for n in ("task_2", "helpers"):
            sys.modules.pop(n, None)
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path
        sys.meta_path[:] = saved_meta

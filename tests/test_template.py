"""The template builder: regions, prompts, marker errors with file:line, byte-for-byte copies, --check."""

from __future__ import annotations

import ast
import textwrap

import pytest
from typer.testing import CliRunner

from grader.template import MarkerError, build, render, strip_solutions


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_solution_region_becomes_raise_with_qualified_name():
    reference = src('''
        import torch

        class FCOS:
            def forward(self, x):
                """Docstring stays."""
                # Hint stays too.
                # BEGIN SOLUTION
                y = x + 1
                return y
                # END SOLUTION

        def nms(boxes):
            # BEGIN SOLUTION
            return boxes
            # END SOLUTION
    ''')
    template = strip_solutions(reference, "one_stage_detector.py")
    assert 'raise NotImplementedError("TODO: FCOS.forward")' in template
    assert '        raise NotImplementedError("TODO: FCOS.forward")\n' in template  # at the region's indentation
    assert 'raise NotImplementedError("TODO: nms")' in template
    assert "y = x + 1" not in template and "BEGIN" not in template
    assert '"""Docstring stays."""' in template and "# Hint stays too." in template
    ast.parse(template)


def test_module_level_region_and_no_prompt_region():
    reference = src('''
        import math

        # BEGIN SOLUTION NO PROMPT
        def _private_helper():
            return 1
        # END SOLUTION

        CONSTANT = 3
        # BEGIN SOLUTION
        TABLE = [math.pi]
        # END SOLUTION
    ''')
    template = strip_solutions(reference, "theory.py")
    assert "_private_helper" not in template
    assert 'raise NotImplementedError("TODO: theory")' in template
    assert "\n\n\n\n" not in template


def test_prompt_block_replaces_the_following_solution():
    reference = src('''
        class Net:
            def __init__(self):
                # BEGIN PROMPT
                # self.fc = None  # TODO: a linear layer
                # END PROMPT
                # BEGIN SOLUTION
                self.fc = 3
                # END SOLUTION
                self.other = 1
    ''')
    template = strip_solutions(reference, "net.py")
    assert "        self.fc = None  # TODO: a linear layer\n" in template
    assert "NotImplementedError" not in template and "self.fc = 3" not in template
    assert "self.other = 1" in template


def test_file_without_markers_is_unchanged_byte_for_byte():
    text = "x = 1\r\n# BEGINNING of something is not a marker? no: it is rejected below\r\n"
    plain = "x = 1\r\ny = 2\r\n"
    assert strip_solutions(plain, "plain.py") is plain
    with pytest.raises(MarkerError, match=r"weird.py:2: malformed marker"):
        strip_solutions(text.replace("BEGINNING", "BEGIN NING"), "weird.py")


@pytest.mark.parametrize(("body", "message"), [
    ("# BEGIN SOLUTION\nx = 1\n", r"f.py:1: '# BEGIN' region is never closed"),
    ("x = 1\n# END SOLUTION\n", r"f.py:2: '# END SOLUTION' without a matching"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n# END SOLUTION\n", r"f.py:2: .*cannot nest"),
    ("# BEGIN PROMPT\n# x\n# END SOLUTION\n", r"f.py:3: '# END SOLUTION' closes the '# BEGIN PROMPT'"),
    ("def f():\n    # BEGIN SOLUTION\n    x = 1\n# END SOLUTION\n", r"f.py:4: .*indented differently"),
    ("# BEGIN SOLUTIONS\n", r"f.py:1: malformed marker"),
    ("#begin solution\n", r"f.py:1: malformed marker"),
    ("# END SOLUTION NO PROMPT\n", r"f.py:1: 'NO PROMPT' only follows"),
    ("def f(:\n    # BEGIN SOLUTION\n    pass\n    # END SOLUTION\n", r"f.py:1: the reference is not valid Python"),
    ("if True:\n    # BEGIN SOLUTION NO PROMPT\n    x = 1\n    # END SOLUTION\n", r"f.py:.*would not be valid Python"),
    ("def f():\n    # BEGIN PROMPT\n    x = 1\n    # END PROMPT\n", r"f.py:3: lines in a PROMPT"),
])
def test_marker_errors_name_file_and_line(body, message):
    with pytest.raises(MarkerError, match=message):
        strip_solutions(body, "f.py")


def _tree(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


def test_build_render_check_and_cleanup(tmp_path):
    reference = tmp_path / "reference"
    template_root = tmp_path / "student_template"
    _tree(reference, {
        "a/mod.py": "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",
        "a/train.py": "print('no markers')\n",
        "a/data.bin": b"\x00\x01binary",
        "a/secret.py": "# cvgrade: reference-only\nANSWER = 42\n",
        "a/plots.py": "PLOTS = 1\n",
        "a/__pycache__/mod.cpython-311.pyc": b"junk",
    })
    patterns = {"a": ["plots.py"]}
    files = render(reference, patterns)
    assert set(files) == {"a/mod.py", "a/train.py", "a/data.bin"}
    assert files["a/data.bin"] == b"\x00\x01binary"
    assert files["a/train.py"] == b"print('no markers')\n"

    report = build(reference_root=reference, template_root=template_root, patterns=patterns)
    assert sorted(report.written) == ["a/data.bin", "a/mod.py", "a/train.py"]
    assert build(check=True, reference_root=reference, template_root=template_root, patterns=patterns).clean

    (template_root / "a/mod.py").write_text("def f():\n    return 'edited by hand'\n")
    (template_root / "a/stray.py").write_text("x = 1\n")
    stale = build(check=True, reference_root=reference, template_root=template_root, patterns=patterns)
    assert not stale.clean and stale.stale == ["a/mod.py"] and stale.extra == ["a/stray.py"]
    assert "edited by hand" in stale.diff and "(committed)" in stale.diff
    assert (template_root / "a/stray.py").exists()  # --check writes nothing

    fixed = build(reference_root=reference, template_root=template_root, patterns=patterns)
    assert fixed.removed == ["a/stray.py"] and fixed.written == ["a/mod.py"]
    assert build(check=True, reference_root=reference, template_root=template_root, patterns=patterns).clean


def test_cli_build_check_fails_with_a_diff(tmp_path, monkeypatch):
    from grader.cli import app

    (tmp_path / "grader" / "suites").mkdir(parents=True)
    _tree(tmp_path / "reference", {"a/mod.py": "def f():\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n"})
    monkeypatch.setenv("CVGRADE_ROOT", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["build", "--check"]).exit_code == 1
    assert runner.invoke(app, ["build"]).exit_code == 0
    result = runner.invoke(app, ["build", "--check"])
    assert result.exit_code == 0 and "current" in result.output
    _tree(tmp_path / "reference", {"a/bad.py": "# BEGIN SOLUTION\n"})
    result = runner.invoke(app, ["build"])
    assert result.exit_code == 2 and "bad.py:1" in result.output

"""Notebooks as student files (code cells in order, IPython lines dropped) and ``check`` from a notebook cell."""

from __future__ import annotations

import json

import pytest

from grader import manifest as manifests
from grader.notebook import module_to_notebook, notebook_to_module, python_of_cell


def cell(source: str, kind: str = "code") -> dict:
    return {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True), "outputs": []}


def test_code_cells_in_order_become_the_module_without_ipython_lines():
    notebook = {"cells": [cell("# Title", "markdown"), cell("%matplotlib inline\nimport math\n!pip install x\n"),
                          cell("%%bash\necho hi\n"), cell("%%time\nX = math.pi\n"), cell("def f():\n    return X\n")]}
    module = notebook_to_module(json.dumps(notebook), "nb.ipynb")
    namespace: dict = {}
    exec(compile(module, "nb.py", "exec"), namespace)
    assert namespace["f"]() == pytest.approx(3.14159, abs=1e-4)
    assert "%" not in module.replace("%%", "") and "!pip" not in module and "echo" not in module
    assert module.index("# cell 2") < module.index("# cell 4") and "Title" not in module


def test_a_cell_magic_that_is_python_keeps_its_body():
    assert python_of_cell("%%timeit\ny = 2\n") == "y = 2"
    assert python_of_cell("%%writefile a.txt\nhello\n") == ""
    assert python_of_cell("  !ls\nz = 1") == "z = 1"


def test_a_file_that_is_not_a_notebook_becomes_a_module_that_says_so(tmp_path):
    from grader.submission import prepare

    manifest = manifests.get("fcos_detection")
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "detection_utils.ipynb").write_text("{not json")
    prepared = prepare(tmp_path / "up", manifest, tmp_path / "out")
    assert prepared.notebooks == ["detection_utils.py"] and "one_stage_detector.py" in prepared.missing
    text = (tmp_path / "out" / "detection_utils.py").read_text()
    assert "raise ImportError(" in text and "detection_utils.ipynb is not a Jupyter notebook" in text


def test_a_notebook_grades_like_the_py_it_holds_and_check_runs_from_a_cell(tmp_path, capsys):
    """The reference's detection_utils.py as a notebook (with magics): the same score on the centerness tests."""
    import grader
    from cvgrade import check
    from grader import api

    reference = manifests.get("fcos_detection").reference_dir
    as_py, as_notebook = tmp_path / "py", tmp_path / "nb"
    for folder in (as_py, as_notebook):
        folder.mkdir()
        (folder / "one_stage_detector.py").write_text((reference / "one_stage_detector.py").read_text())
    source = (reference / "detection_utils.py").read_text()
    (as_py / "detection_utils.py").write_text(source)
    notebook = module_to_notebook(source)
    assert len(notebook["cells"]) > 3
    notebook["cells"].insert(1, cell("%load_ext autoreload\n!nvidia-smi\n"))
    (as_notebook / "detection_utils.ipynb").write_text(json.dumps(notebook))
    expected = api.check("fcos_detection", as_py, keyword="centerness or deltas")
    got = check("fcos_detection", "centerness or deltas", folder=as_notebook)
    assert expected.max_score > 0 and got.score == expected.score == expected.max_score
    assert [t["name"] for t in got.tests] == [t["name"] for t in expected.tests]
    assert "from the notebook detection_utils.ipynb" in got.results["output"]
    assert f"Score {got.score:g} / {got.max_score:g}" in capsys.readouterr().out
    assert grader.check is check

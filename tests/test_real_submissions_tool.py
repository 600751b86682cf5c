"""bench.real_submissions: checkouts (plain folders or git directories without a work tree) and the table."""

from __future__ import annotations

import subprocess
import sys

from grader import paths

sys.path.insert(0, str(paths.project_root()))  # bench/ is not installed

import pytest  # noqa: E402

from bench.real_submissions import Graded, load_verdicts, materialize, table  # noqa: E402


def test_a_bare_git_checkout_is_materialized_from_head(tmp_path):
    work = tmp_path / "work"
    (work / "detection").mkdir(parents=True)
    (work / "detection" / "detection_utils.py").write_text("X = 1\n")
    (work / "README.md").write_text("not graded\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "x"], check=True)
    bare = tmp_path / "owner+name" / "repo"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    folder = materialize(bare, "detection", tmp_path / "out")
    assert (folder / "detection_utils.py").read_text() == "X = 1\n"
    assert not (tmp_path / "out" / "README.md").exists()
    plain = materialize(work, "detection", tmp_path / "out2")
    assert (plain / "detection_utils.py").is_file()


def test_the_table_lists_every_lost_point_with_a_column_to_classify_it():
    rows = [Graded("a/b @ 123", 41.5, 60, [("nms of no boxes", 1.0, "detection_utils.py has no 'nms'")])]
    text = table(rows)
    assert "| a/b @ 123 | 41.5 / 60 | 1 | 0 | 0 | 1 |" in text
    assert "| nms of no boxes | 1 | detection_utils.py has no 'nms' | ? |" in text


def test_verdicts_classify_lost_points_and_are_validated(tmp_path):
    path = tmp_path / "verdicts.toml"
    path.write_text('[[verdict]]\nsubmission = "a/b"\ntest = "nms"\nwhose = "grader"\nwhy = "not the course\'s"\n'
                    '[[verdict]]\nsubmission = "a/b"\ntest = "inference"\nwhose = "student"\nwhy = "x clipped with H"\n')
    rows = [Graded("a/b @ 123", 50, 60, [("nms of no boxes", 1.0, "no 'nms'"), ("FCOS.inference: x", 7.0, "boxes"),
                                         ("centerness", 2.0, "wrong")])]
    text = table(rows, load_verdicts(path))
    assert "| a/b @ 123 | 50 / 60 | 10 | 7 | 1 | 2 |" in text
    assert "| FCOS.inference: x | 7 | boxes | student: x clipped with H |" in text
    assert "| centerness | 2 | wrong | ? |" in text
    path.write_text('[[verdict]]\nsubmission = "a/b"\ntest = "nms"\nwhose = "nobody"\nwhy = ""\n')
    with pytest.raises(ValueError, match="whose must be one of"):
        load_verdicts(path)

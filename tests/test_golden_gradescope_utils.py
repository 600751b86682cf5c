"""Golden check: one unittest module graded by gradescope-utils' JSONTestRunner and by our plugin.

Scores, max scores, names, numbers, visibility, tags, status and leaderboard must
agree. (Where we deliberately differ, gradescope-utils drops skipped tests; that
case is left out here and covered in test_plugin.py.)
"""

from __future__ import annotations

import json
import sys
import textwrap

from grader.api import validate_results

SUITE = '''
import unittest
from gradescope_utils.autograder_utils.decorators import (
    hide_errors, leaderboard, number, partial_credit, tags, visibility, weight)


class TestGolden(unittest.TestCase):
    @weight(2)
    @number("1.1")
    def test_pass(self):
        """passing test"""
        self.assertEqual(1 + 1, 2)

    @weight(3)
    @number("1.2")
    @visibility("after_due_date")
    def test_fail(self):
        """failing test"""
        self.assertEqual(1 + 1, 3)

    @weight(1.5)
    @tags("a", "b")
    @visibility("hidden")
    def test_tags(self):
        """tagged"""

    @partial_credit(4)
    @number("2")
    def test_partial(self, set_score=None):
        """partial credit"""
        set_score(1.5)

    @weight(2)
    @hide_errors("Something is off")
    def test_hidden_error(self):
        """hidden error"""
        raise ValueError("secret detail")

    @weight(1)
    def test_error(self):
        """raises"""
        raise RuntimeError("boom")

    @weight(0.5)
    def test_no_docstring(self):
        pass

    @leaderboard("accuracy")
    def test_board(self, set_leaderboard_value=None):
        set_leaderboard_value(0.75)

    @leaderboard("seconds", "asc")
    def test_board_asc(self, set_leaderboard_value=None):
        set_leaderboard_value(3)
'''

RUNNER = '''
import json, sys, unittest
sys.path.insert(0, ".")
from gradescope_utils.autograder_utils.json_test_runner import JSONTestRunner
suite = unittest.defaultTestLoader.loadTestsFromName("test_golden_suite")
with open("gradescope_utils.json", "w") as fh:
    JSONTestRunner(stream=fh, visibility="visible").run(suite)
'''


def _normalise(test: dict) -> tuple:
    return (test["name"], float(test.get("score", 0.0)), float(test.get("max_score", 0.0)), test.get("number"),
            test.get("visibility", "visible"), tuple(test.get("tags", ())), test["status"])


def test_same_results_as_gradescope_utils(pytester):
    pytester.makepyfile(test_golden_suite=textwrap.dedent(SUITE))
    pytester.makepyfile(run_gradescope_utils=RUNNER)
    result = pytester.run(sys.executable, "run_gradescope_utils.py")
    assert result.ret == 0, result.stderr.str()
    theirs = json.loads((pytester.path / "gradescope_utils.json").read_text())

    ours_path = pytester.path / "ours.json"
    pytester.runpytest_inprocess("test_golden_suite.py", f"--results-json={ours_path}", "-p", "no:cacheprovider")
    ours = json.loads(ours_path.read_text())
    assert not validate_results(ours)

    assert sorted(map(_normalise, ours["tests"])) == sorted(map(_normalise, theirs["tests"]))
    assert ours["score"] == theirs["score"]
    assert ours["leaderboard"] == theirs["leaderboard"]
    hidden = next(t for t in ours["tests"] if t["name"] == "hidden error")
    assert "Something is off" in hidden["output"] and "secret detail" not in hidden["output"]

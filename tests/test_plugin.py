"""Every behaviour of the pytest plugin, each run through pytester and checked against the Gradescope schema."""

from __future__ import annotations

import json

import pytest
from engine_support import MANIFEST, by_name, make_project, run

NO_SANDBOX = "--no-sandbox"


def test_decorators_and_markers_give_points_numbers_visibility_tags(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_meta.py": '''
        import pytest
        from gradescope_utils.autograder_utils.decorators import weight, number, visibility, tags

        @weight(2)
        @number("1.2")
        @visibility("after_due_date")
        @tags("arith", "easy")
        def test_decorated(student):
            """add with decorators"""
            assert student.mod.add(1, 2) == 3

        @pytest.mark.weight(3)
        @pytest.mark.number("1.10")
        @pytest.mark.tags("arith")
        def test_marked(student):
            """add with markers"""
            assert student.mod.add(2, 2) == 4

        @pytest.mark.weight(5)
        def test_failing(student):
            """a failing test"""
            assert student.mod.add(2, 2) == 5
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    tests = by_name(data)
    decorated = tests["add with decorators"]
    assert (decorated["score"], decorated["max_score"], decorated["status"]) == (2, 2, "passed")
    assert decorated["number"] == "1.2" and decorated["visibility"] == "after_due_date"
    assert decorated["tags"] == ["arith", "easy"]
    marked = tests["add with markers"]
    assert (marked["score"], marked["max_score"], marked["number"], marked["tags"]) == (3, 3, "1.10", ["arith"])
    assert marked["visibility"] == "visible"
    failing = tests["a failing test"]
    assert (failing["score"], failing["max_score"], failing["status"]) == (0, 5, "failed")
    assert "assert 4 == 5" in failing["output"]
    assert data["score"] == 5
    # numbered tests come first, in natural order (1.2 before 1.10)
    assert [t["name"] for t in data["tests"]][:2] == ["add with decorators", "add with markers"]


def test_parametrized_test_splits_its_points_even_when_cases_are_deselected(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_param.py": '''
        import pytest

        @pytest.mark.weight(3)
        @pytest.mark.number("2")
        @pytest.mark.parametrize("x", [1, 2, 30])
        def test_scale(student, x):
            """scale"""
            assert student.mod.scale(x, 2) == 2 * x if x < 10 else False
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    cases = [t for t in data["tests"] if t["name"].startswith("scale")]
    assert [t["max_score"] for t in cases] == [1.0, 1.0, 1.0]
    assert [t["score"] for t in cases] == [1.0, 1.0, 0.0]
    assert [t["number"] for t in cases] == ["2.1", "2.2", "2.3"]
    assert [t["name"] for t in cases] == ["scale [1]", "scale [2]", "scale [30]"]
    data, _ = run(pytester, NO_SANDBOX, "-k", "not 30")
    assert [t["max_score"] for t in data["tests"]] == [1.0, 1.0]


def test_partial_credit_with_decorator_and_fixture(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_partial.py": '''
        import pytest
        from gradescope_utils.autograder_utils.decorators import partial_credit

        @partial_credit(4)
        def test_decorator(set_score=None):
            """decorator partial"""
            set_score(2.5)

        @pytest.mark.weight(4)
        def test_fixture(set_score):
            """fixture partial then failure"""
            set_score(1)
            assert False, "half done"

        @pytest.mark.weight(2)
        def test_out_of_range(set_score):
            """set_score above the weight is clamped"""
            set_score(10)

        @pytest.mark.weight(2)
        @pytest.mark.parametrize("i", [0, 1])
        def test_param(set_score, i):
            """param partial"""
            set_score(0.5 * i)
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    tests = by_name(data)
    assert (tests["decorator partial"]["score"], tests["decorator partial"]["status"]) == (2.5, "failed")
    assert tests["fixture partial then failure"]["score"] == 1
    assert "half done" in tests["fixture partial then failure"]["output"]
    assert tests["set_score above the weight is clamped"]["score"] == 2
    assert [tests[f"param partial [{i}]"]["score"] for i in (0, 1)] == [0.0, 0.5]


def test_leaderboard_entries(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_board.py": '''
        import pytest
        from gradescope_utils.autograder_utils.decorators import leaderboard

        @leaderboard("accuracy")
        def test_acc(set_leaderboard_value=None):
            set_leaderboard_value(0.93)

        @pytest.mark.leaderboard("time", order="asc")
        def test_time(set_leaderboard_value):
            set_leaderboard_value(12.5)

        @pytest.mark.weight(1)
        def test_normal():
            pass
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    assert data["leaderboard"] == [{"name": "accuracy", "value": 0.93, "order": "desc"},
                                   {"name": "time", "value": 12.5, "order": "asc"}]
    assert [t["max_score"] for t in data["tests"]] == [1]


def test_setup_error_teardown_error_skip_and_xfail_outcomes(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_outcomes.py": '''
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture exploded")

        @pytest.fixture
        def messy():
            yield
            raise RuntimeError("cleanup exploded")

        @pytest.mark.weight(2)
        def test_setup_error(broken):
            """setup error"""

        @pytest.mark.weight(2)
        def test_teardown_error(messy):
            """teardown error"""

        @pytest.mark.weight(2)
        @pytest.mark.skip(reason="needs a GPU")
        def test_skipped():
            """skipped"""

        @pytest.mark.weight(2)
        def test_skip_inside():
            """skipped inside"""
            pytest.skip("not today")

        @pytest.mark.weight(2)
        @pytest.mark.xfail(reason="known")
        def test_xfail():
            """xfail"""
            assert False

        @pytest.mark.weight(2)
        @pytest.mark.xfail(reason="known")
        def test_xpass():
            """xpass"""

        @pytest.mark.weight(2)
        @pytest.mark.xfail(reason="known", strict=True)
        def test_xpass_strict():
            """xpass strict"""
    '''}, points=14)
    data, _ = run(pytester, NO_SANDBOX, "--expected-points=14")
    tests = by_name(data)
    setup = tests["setup error"]
    assert (setup["score"], setup["max_score"], setup["status"]) == (0, 2, "failed")
    assert "could not start" in setup["output"] and "fixture exploded" in setup["output"]
    teardown = tests["teardown error"]
    assert (teardown["score"], teardown["status"]) == (2, "passed") and "cleanup exploded" in teardown["output"]
    for name, reason in (("skipped", "needs a GPU"), ("skipped inside", "not today")):
        assert (tests[name]["score"], tests[name]["max_score"]) == (0, 0)
        assert reason in tests[name]["output"] and tests[name]["extra_data"]["declared_max_score"] == 2
    assert tests["xfail"]["max_score"] == 0 and tests["xfail"]["extra_data"]["outcome"] == "xfailed"
    assert tests["xpass"]["max_score"] == 0 and tests["xpass"]["extra_data"]["outcome"] == "xpassed"
    strict = tests["xpass strict"]
    assert (strict["score"], strict["max_score"], strict["status"]) == (0, 2, "failed")
    assert "Tests that did not run" not in tests  # skipped points are declared, nothing is missing


def test_timeout_becomes_a_plain_message(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_slow.py": '''
        import time, pytest

        @pytest.mark.weight(1)
        @pytest.mark.timeout(1)
        def test_sleepy():
            """sleepy"""
            time.sleep(30)
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    sleepy = by_name(data)["sleepy"]
    assert sleepy["score"] == 0 and "time limit" in sleepy["output"]


def test_collection_error_is_a_record_and_its_points_are_not_lost_silently(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {
        "public/test_ok.py": '''
            import pytest
            @pytest.mark.weight(4)
            def test_fine():
                """fine"""
        ''',
        "hidden/test_broken.py": '''
            import not_a_module_anywhere
        ''',
    })
    data, _ = run(pytester, NO_SANDBOX, "--expected-points=10")
    tests = by_name(data)
    broken = next(t for t in data["tests"] if t["extra_data"]["outcome"] == "collection_error")
    assert "not_a_module_anywhere" in broken["output"] and broken["visibility"] == "after_published"
    missing = tests["Tests that did not run"]
    assert (missing["score"], missing["max_score"]) == (0, 6)
    assert data["score"] == 4


def test_student_output_is_attached_and_can_be_hidden(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_print.py": '''
        import pytest
        @pytest.mark.weight(1)
        def test_add(student):
            """add prints"""
            assert student.mod.add(1, 1) == 2
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    assert "adding 1 1" in by_name(data)["add prints"]["output"]
    data, _ = run(pytester, NO_SANDBOX, "--student-output=hide")
    assert "adding" not in by_name(data)["add prints"]["output"]


def test_output_is_trimmed_to_the_limit(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_big.py": '''
        import pytest
        @pytest.mark.weight(1)
        def test_big():
            """big"""
            assert False, "x" * 100000 + "THE END"
    '''})
    data, _ = run(pytester, NO_SANDBOX, "--output-limit=2000")
    output = by_name(data)["big"]["output"]
    assert len(output) <= 2000 and "THE END" in output and "characters not shown" in output


def test_visibility_defaults_options_and_ini_keys(pytester, monkeypatch):
    root = make_project(pytester, monkeypatch, {
        "public/test_pub.py": "import pytest\n@pytest.mark.weight(1)\ndef test_pub():\n    '''pub'''\n",
        "hidden/test_hid.py": "import pytest\n@pytest.mark.weight(1)\ndef test_hid():\n    '''hid'''\n",
    })
    data, _ = run(pytester, NO_SANDBOX)
    tests = by_name(data)
    assert tests["pub"]["visibility"] == "visible"
    assert tests["hid"]["visibility"] == "after_published"  # from the manifest
    assert data["visibility"] == "visible" and data["stdout_visibility"] == "hidden"
    data, _ = run(pytester, NO_SANDBOX, "--hidden-visibility=hidden", "--default-visibility=after_due_date",
                  "--stdout-visibility=visible")
    tests = by_name(data)
    assert tests["hid"]["visibility"] == "hidden" and data["visibility"] == "after_due_date"
    assert data["stdout_visibility"] == "visible"
    # the same through ini keys
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nhidden_visibility = hidden\n"
                                     "results_json = out/from_ini.json\nsandbox = false\n")
    pytester.runpytest_inprocess("grader/suites/toy")
    data = json.loads((root / "out" / "from_ini.json").read_text())
    assert by_name(data)["hid"]["visibility"] == "hidden"


def test_bad_option_values_are_usage_errors(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_a.py": "def test_a():\n    pass\n"})
    result = pytester.runpytest_inprocess("grader/suites/toy", "--output-limit=lots")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*output-limit*"])


def test_missing_file_and_import_error_are_explained(pytester, monkeypatch, tmp_path):
    make_project(pytester, monkeypatch, {"public/test_imp.py": '''
        import pytest
        @pytest.mark.weight(1)
        def test_add(student):
            """add"""
            assert student.mod.add(1, 1) == 2
    '''})
    broken = tmp_path / "sub" / "nested"
    broken.mkdir(parents=True)
    (broken / "mod.py").write_text("def add(a, b):\n    return a +\n")
    (broken / "given.py").write_text("GIVEN = 'student copy'\n")
    data, _ = run(pytester, NO_SANDBOX, f"--submission={tmp_path}")
    output = by_name(data)["add"]["output"]
    assert "Could not import mod.py: SyntaxError at line 2" in output and "return a +" in output
    assert "found mod.py (found at sub/nested/mod.py)" in data["output"]
    assert "ignored your sub/nested/given.py" in data["output"]
    empty = tmp_path / "empty"
    empty.mkdir()
    data, _ = run(pytester, NO_SANDBOX, f"--submission={empty}")
    assert "MISSING mod.py" in data["output"]
    assert "mod.py" in by_name(data)["add"]["output"]


def test_student_exception_shows_only_student_frames(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_exc.py": '''
        import pytest
        @pytest.mark.weight(1)
        def test_add(student):
            """add"""
            student.mod.add(1, None)
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    output = by_name(data)["add"]["output"]
    assert "Your code raised TypeError in mod.add(...)" in output
    assert 'File "mod.py", line 3, in add' in output and "grader" not in output


def test_template_grades_to_zero_with_todo_messages(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_t.py": '''
        import pytest
        @pytest.mark.weight(1)
        def test_add(student):
            """add"""
            assert student.mod.add(1, 1) == 2
    '''})
    data, _ = run(pytester, NO_SANDBOX, "--submission=template")
    assert data["score"] == 0
    assert "Not implemented yet in mod.add(...): TODO: add" in by_name(data)["add"]["output"]


def test_reference_fixture_is_refused_in_public_tests(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {
        "public/test_pub.py": "import pytest\n@pytest.mark.weight(1)\ndef test_pub(reference):\n    '''pub'''\n",
        "hidden/test_hid.py": ("import pytest\n@pytest.mark.weight(1)\ndef test_hid(reference, student):\n"
                               "    '''hid'''\n    assert student.mod.add(2, 3) == reference.mod.add(2, 3)\n"),
    })
    data, _ = run(pytester, NO_SANDBOX)
    tests = by_name(data)
    assert tests["pub"]["score"] == 0 and "public tests cannot use the reference" in tests["pub"]["output"]
    assert tests["hid"]["score"] == 1


def test_unittest_testcases_are_graded_too(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_unit.py": '''
        import unittest
        from gradescope_utils.autograder_utils.decorators import weight, number

        class TestThings(unittest.TestCase):
            @weight(2)
            @number("4")
            def test_good(self):
                """unittest passes"""
                self.assertEqual(1, 1)

            @weight(1)
            def test_bad(self):
                self.assertEqual(1, 2)
    '''})
    data, _ = run(pytester, NO_SANDBOX)
    tests = by_name(data)
    assert tests["unittest passes"]["score"] == 2 and tests["unittest passes"]["number"] == "4"
    bad = next(t for t in data["tests"] if t["name"].startswith("test_bad ("))
    assert (bad["score"], bad["max_score"]) == (0, 1)


def test_results_are_written_even_when_the_run_dies(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_die.py": '''
        import os, pytest
        @pytest.mark.weight(1)
        def test_first():
            """first"""

        @pytest.mark.weight(1)
        def test_die():
            """die"""
            os._exit(3)
    '''})
    out = pytester.path / "out" / "results.json"
    result = pytester.runpytest_subprocess("grader/suites/toy", f"--results-json={out}", NO_SANDBOX,
                                           "--expected-points=10")
    assert result.ret == 3
    data = json.loads(out.read_text())
    from grader.api import validate_results

    assert not validate_results(data)
    assert data["extra_data"]["finished"] is False
    assert "did not finish" in data["output"]
    assert by_name(data)["first"]["score"] == 1
    assert by_name(data)["Tests that did not run"]["max_score"] == 9


def test_xdist_run_gives_the_same_records(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_x.py": '''
        import pytest
        @pytest.mark.weight(3)
        @pytest.mark.parametrize("i", range(6))
        def test_many(student, i):
            """many"""
            assert student.mod.scale(i, 1) == i and i != 5
    '''})
    serial, _ = run(pytester, NO_SANDBOX, inprocess=False)
    parallel, _ = run(pytester, NO_SANDBOX, "-n", "2", inprocess=False)
    key = lambda d: sorted((t["name"], t["score"], t["max_score"], t.get("number")) for t in d["tests"])  # noqa: E731
    assert key(serial) == key(parallel)
    assert parallel["score"] == 2.5


def test_plugin_is_inert_without_results_json(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("results.json"))


@pytest.mark.parametrize("sandbox", [True, False], ids=["sandbox", "no-sandbox"])
def test_sandbox_and_loopback_give_the_same_results(pytester, monkeypatch, sandbox):
    make_project(pytester, monkeypatch, {"public/test_same.py": '''
        import pytest, torch
        from grader.compare import assert_close

        @pytest.mark.weight(1)
        def test_tensor(student):
            """tensors travel"""
            assert_close(student.mod.scale(torch.arange(4.0), 2), torch.arange(4.0) * 2)

        @pytest.mark.weight(1)
        def test_wrong(student):
            """wrong answer explained"""
            assert_close(student.mod.scale(torch.arange(4.0), 2), torch.arange(4.0) * 3, call="scale(x, 2)")
    '''})
    data, _ = run(pytester, *([] if sandbox else [NO_SANDBOX]))
    tests = by_name(data)
    assert tests["tensors travel"]["score"] == 1
    assert "first at index [1]: got 2, expected 3" in tests["wrong answer explained"]["output"]


PROFILED_TESTS = {
    "public/test_core.py": """
        import pytest
        @pytest.mark.weight(4)
        def test_core():
            '''core'''
        """,
    "public/test_extra.py": """
        import pytest
        pytestmark = pytest.mark.part("extra")
        @pytest.mark.weight(2)
        def test_extra():
            '''extra'''
        @pytest.mark.weight(2)
        @pytest.mark.parametrize("x", [pytest.param(1, marks=pytest.mark.part("main")), 2])
        def test_mixed(x):
            '''mixed'''
        """,
}
PROFILES_TOML = """
[profiles.course]
points = 5
parts = ["main"]
[profiles.extended]
title = "with the extra part"
points = 8
parts = ["main", "extra"]
"""


def _with_profiles(root, text: str = PROFILES_TOML) -> None:
    """The toy manifest with 5 points, default_profile 'course' and the profiles of ``text``."""
    manifest = MANIFEST.format(points=5, call_timeout=30).replace("[grading]", 'default_profile = "course"\n\n[grading]')
    (root / "grader" / "suites" / "toy" / "assignment.toml").write_text(manifest + text)


def test_profiles_select_parts_and_are_reported(pytester, monkeypatch):
    root = make_project(pytester, monkeypatch, PROFILED_TESTS)
    _with_profiles(root)
    data, result = run(pytester, NO_SANDBOX, "--expected-points=5")
    assert sorted(by_name(data)) == ["core", "mixed [1]"]  # the default profile; a case's own part mark wins
    assert data["score"] == 5 and data["extra_data"]["max_score"] == 5
    assert data["extra_data"]["profiles"] == {"toy": "course (5 points: main)"}
    assert "toy graded in profile course (5 points: main)" in data["output"]
    result.stdout.fnmatch_lines(["*2 deselected*"])
    data, _ = run(pytester, NO_SANDBOX, "--profile=extended", "--expected-points=8")
    assert sorted(by_name(data)) == ["core", "extra", "mixed [1]", "mixed [2]"]
    assert data["score"] == 8 and not any(t["extra_data"]["outcome"] == "missing_points" for t in data["tests"])
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\nprofile = extended\n")
    data, _ = run(pytester, NO_SANDBOX)
    assert data["extra_data"]["profiles"] == {"toy": "extended (8 points: main, extra)"}


def test_unknown_profile_and_undeclared_part_are_usage_errors(pytester, monkeypatch):
    root = make_project(pytester, monkeypatch, PROFILED_TESTS)
    _with_profiles(root)
    result = pytester.runpytest_inprocess("grader/suites/toy", NO_SANDBOX, "--profile=everything")
    assert result.ret != 0
    assert "toy has no profile 'everything'; its profiles are ['course', 'extended']" in result.stderr.str()
    _with_profiles(root, text=PROFILES_TOML.replace('parts = ["main", "extra"]', 'parts = ["main", "bonus"]'))
    from grader import manifest as manifests

    manifests._manifest_in_dir.cache_clear()  # manifests are read once per process
    result = pytester.runpytest_inprocess("grader/suites/toy", NO_SANDBOX)
    assert result.ret != 0
    assert "part('extra') is graded by no profile of toy; its parts are ['bonus', 'main']" in result.stderr.str()


def test_a_suite_without_profiles_grades_every_main_test(pytester, monkeypatch):
    make_project(pytester, monkeypatch, {"public/test_core.py": PROFILED_TESTS["public/test_core.py"]})
    data, _ = run(pytester, NO_SANDBOX)
    assert list(by_name(data)) == ["core"] and data["extra_data"]["profiles"] == {"toy": "default (10 points: main)"}


CUDA_TESTS = {"public/test_gpu.py": '''
    import pytest

    @pytest.mark.weight(3)
    def test_cpu():
        """on the CPU"""

    @pytest.mark.cuda
    @pytest.mark.weight(2)
    def test_on_gpu():
        """on a GPU"""
'''}


@pytest.mark.parametrize("gpu", [False, True])
def test_cuda_checks_count_only_where_the_manifest_grades_on_a_gpu(pytester, monkeypatch, gpu):
    """``grading.gpu = false``: a CUDA check has weight 0 (skipped without a device, reported with one), so
    the score never depends on the machine. ``true``: it carries its weight; without a device that is an
    error naming the configuration, never the student's code."""
    import torch

    from grader import manifest as manifests

    root = make_project(pytester, monkeypatch, CUDA_TESTS)
    toml = root / "grader" / "suites" / "toy" / "assignment.toml"
    toml.write_text(toml.read_text().replace("[grading]", f"[grading]\ngpu = {str(gpu).lower()}"))
    manifests._manifest_in_dir.cache_clear()
    data, _ = run(pytester, NO_SANDBOX)
    manifests._manifest_in_dir.cache_clear()
    gpu_test = by_name(data)["on a GPU"]
    assert gpu_test["max_score"] == (2 if gpu else 0)
    if torch.cuda.is_available():
        assert gpu_test["score"] == gpu_test["max_score"]
    elif gpu:
        assert gpu_test["score"] == 0 and data["extra_data"]["max_score"] == 5
        assert "Grader configuration error" in gpu_test["output"] and "grading.gpu = true" in gpu_test["output"]
        assert "not about your code" in gpu_test["output"]
    else:
        assert gpu_test["extra_data"]["outcome"] == "skipped" and "needs a CUDA device" in gpu_test["output"]
        assert data["score"] == 3 and data["extra_data"]["max_score"] == 3

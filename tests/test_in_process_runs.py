"""In-process pytester runs (mutants, templates) keep the libraries they import.

pytester forgets the modules first imported during a run; for a library that meant
a second import later in the same process, with two copies of its classes. After a
segmentation suite had imported ``torchvision.transforms.v2``, byol's public tests
saw ``ToImage + ToDtype(float32, scale=True)`` return uint8 (tests/conftest.py).
"""

from __future__ import annotations

import sys

import pytest
from _pytest.pytester import SysModulesSnapshot
from library_modules import is_library_module

# Standard-library modules that nothing in the test process imports.
_UNUSED_STDLIB = ("wave", "colorsys", "tabnanny", "netrc", "sched", "fileinput", "graphlib")


def _unimported_stdlib_module() -> str:
    for name in _UNUSED_STDLIB:
        if name not in sys.modules:
            return name
    pytest.skip("every candidate module is already imported")


def test_a_library_first_imported_during_a_run_stays_imported(pytester: pytest.Pytester) -> None:
    library = _unimported_stdlib_module()
    pytester.makepyfile(course_module="VALUE = 1\n")
    pytester.makepyfile(test_imports=f"import {library}\nimport course_module\n\ndef test_it():\n    pass\n")
    pytester.syspathinsert()
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert library in sys.modules
    assert "course_module" not in sys.modules
    assert "test_imports" not in sys.modules


def test_a_snapshot_forgets_course_files_but_keeps_libraries(pytester: pytest.Pytester) -> None:
    library = _unimported_stdlib_module()
    pytester.makepyfile(course_module="VALUE = 1\n")
    pytester.syspathinsert()
    snapshot = SysModulesSnapshot()
    __import__(library)
    __import__("course_module")
    assert is_library_module(library)
    assert not is_library_module("course_module")
    snapshot.restore()
    assert library in sys.modules
    assert "course_module" not in sys.modules

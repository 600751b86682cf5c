"""Grade a submission with a suite inside the test process (fast; used by mutant and template tests).

Runs pytest in-process through ``pytester`` with ``--no-sandbox``: the sandbox is
tested on its own (tests/adversarial, tests/test_sandbox.py); here only the
suite's power to tell right from wrong matters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.manifest import Manifest


@dataclass
class SuiteRun:
    results: dict

    @property
    def score(self) -> float:
        return float(self.results["score"])

    @property
    def max_score(self) -> float:
        return float(self.results["extra_data"]["max_score"])

    @property
    def failed(self) -> list[str]:
        return [t["name"] for t in self.results["tests"] if t["status"] == "failed"]

    def outputs(self) -> str:
        return "\n\n".join(f"{t['name']}: {t.get('output', '')}" for t in self.results["tests"]
                           if t["status"] == "failed")


def grade_in_process(pytester: pytest.Pytester, manifest: Manifest, submission: Path | str,
                     select: str = "", public_only: bool = False, sandbox: bool = False,
                     profile: str | None = None) -> SuiteRun:
    results = pytester.path / "results.json"
    target = manifest.suite_dir / "public" if public_only else manifest.suite_dir
    args = [str(target), *([] if sandbox else ["--no-sandbox"]), f"--submission={submission}",
            f"--results-json={results}",
            "-p", "no:cacheprovider", "-o", "addopts=", f"--rootdir={manifest.suite_dir.parent.parent.parent}",
            "-q", "-p", "no:randomly"]
    if select:
        args += ["-k", select]
    if profile:
        args.append(f"--profile={profile}")
    pytester.runpytest_inprocess(*args)
    return SuiteRun(json.loads(results.read_text()))

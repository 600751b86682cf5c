"""Where the project's trees live.

The repository (or the unpacked Gradescope source folder) holds ``reference/``,
``student_template/`` and ``grader/suites/`` side by side. ``CVGRADE_ROOT`` points
somewhere else when the package is installed away from its data.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The folder that holds ``reference/``, ``student_template/`` and ``grader/``."""
    env = os.environ.get("CVGRADE_ROOT")
    return Path(env).resolve() if env else PACKAGE_DIR.parent


def reference_root() -> Path:
    return project_root() / "reference"


def template_root() -> Path:
    return project_root() / "student_template"


def suites_root() -> Path:
    return project_root() / "grader" / "suites"


SCHEMA_PATH = PACKAGE_DIR / "schema" / "gradescope_results.schema.json"

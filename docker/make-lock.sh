#!/usr/bin/env bash
# Regenerates docker/gradescope-py310.lock, the one lock of every package a Gradescope image installs:
# the grader's runtime dependencies (pyproject.toml) and every assignment's gradescope.course_packages,
# resolved in a fresh virtual environment of Gradescope's Python (3.10 on its Ubuntu 22.04 image),
# with torch and torchvision at the pins of constraints.txt.
#
#   docker/make-lock.sh [PYTHON3.10]      (default: python3.10 on PATH, e.g. pyenv's 3.10.13)
#
# The CUDA-only packages that PyPI's torch pulls in (nvidia-*, triton, cuda-*) are left out: the image
# installs the CPU build of torch, which has none of them. The faithful simulated run
# (tests/test_gradescope_image.py) installs exactly these pins and grades with them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY310="${1:-python3.10}"
"$PY310" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || {
    echo "make-lock.sh: $PY310 is not Python 3.10" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY310" -m venv "$work/venv"
python3 -m grader.image lock-inputs --all-assignments > "$work/inputs.txt"
"$work/venv/bin/python" -m pip install --quiet -c constraints.txt torch torchvision
"$work/venv/bin/python" -m pip install --quiet -c constraints.txt -r "$work/inputs.txt"
{
    echo "# The Gradescope image's packages for Python 3.10, every one pinned (docker/make-lock.sh wrote this;"
    echo "# do not edit by hand). Each zip carries it as constraints.txt; setup.sh installs from it."
    echo "# Resolved with $("$work/venv/bin/python" --version) on $(date -u +%Y-%m-%d)."
    "$work/venv/bin/python" -m pip freeze --all | grep -v -E '^(nvidia-|triton==|cuda-)' | LC_ALL=C sort -f
} > docker/gradescope-py310.lock
echo "wrote docker/gradescope-py310.lock ($(grep -c '==' docker/gradescope-py310.lock) pins)"

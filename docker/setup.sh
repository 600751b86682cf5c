#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image from the zip that
# `cvgrade package` made (unpacked in /autograder/source). It installs every package grading
# needs at the version of the zip's lock (constraints.txt), checks that the result imports and
# matches the lock, creates the unprivileged user that runs student code, and locks the course's
# files away from it. Any failure stops it with a non-zero status and a line that starts with
# "cvgrade setup FAILED:", so a half-built image never grades anyone.
#
# The grader itself is the zip's grader/ folder: run_autograder puts /autograder/source on
# PYTHONPATH and loads the pytest plugin with -p, so nothing depends on an installed cvgrade.
#
# CVGRADE_PYTHON           the interpreter to set up (default python3, Python 3.10 on Ubuntu 22.04)
# CVGRADE_TORCH_INDEX_URL  where torch and torchvision come from (default: the zip's torch_index_url,
#                          CPU-only builds unless the assignment asks for a GPU); the simulated run
#                          in the tests sets it because the CPU wheel index cannot be reached there
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${CVGRADE_PYTHON:-python3}"

fail() {
    echo "cvgrade setup FAILED: $*" >&2
    exit 1
}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    { apt-get update && apt-get install -y --no-install-recommends python3 python3-pip; } \
        || fail "$PYTHON is missing and apt-get could not install python3"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "$("$PYTHON" --version 2>&1) is older than Python 3.10, which grading needs"
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    { apt-get update && apt-get install -y --no-install-recommends python3-pip; } \
        || fail "$PYTHON has no pip and apt-get could not install python3-pip"
fi

meta() {  # a value of cvgrade-assignment.json by its dotted key: meta gradescope.gpu
    "$PYTHON" -c 'import functools,json,sys; print(functools.reduce(dict.__getitem__, sys.argv[2].split("."), json.load(open(sys.argv[1]))))' \
        "$SOURCE/cvgrade-assignment.json" "$1"
}
ASSIGNMENT="$(meta assignment)" || fail "cvgrade-assignment.json is missing or unreadable"
TORCH_INDEX="${CVGRADE_TORCH_INDEX_URL:-$(meta torch_index_url)}"
GPU="$(meta gradescope.gpu)"
LOCK="$SOURCE/constraints.txt"
PIP=("$PYTHON" -m pip install --no-cache-dir --disable-pip-version-check --no-input --progress-bar off)

echo "cvgrade: setting up $ASSIGNMENT with $("$PYTHON" --version 2>&1); torch from $TORCH_INDEX"
"${PIP[@]}" -c "$LOCK" pip \
    || fail "pip could not be brought to its locked version"
# torch and torchvision first, from their index (PyPI stays an extra index for their dependencies);
# constraints.txt pins them, and the CPU index's 2.14.1+cpu satisfies the lock's 2.14.1.
"${PIP[@]}" --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple -c "$LOCK" torch torchvision \
    || fail "torch and torchvision did not install from $TORCH_INDEX"
"${PIP[@]}" -c "$LOCK" -r "$SOURCE/requirements.txt" \
    || fail "the packages of requirements.txt did not install"

VERIFY=(-m grader.image verify --requirements "$SOURCE/requirements.txt" --lock "$LOCK")
if [ "$GPU" = "True" ] || [ -n "${CVGRADE_TORCH_INDEX_URL:-}" ]; then
    VERIFY+=(--allow-cuda-torch)
fi
(cd "$SOURCE" && PYTHONPATH="$SOURCE" "$PYTHON" "${VERIFY[@]}") \
    || fail "the installed packages do not match the lock or do not import (lines above)"
(cd "$SOURCE" && PYTHONPATH="$SOURCE" "$PYTHON" -m grader.cli --version >/dev/null) \
    || fail "the grader in $SOURCE/grader does not start"

if ! id -u cvgrade-student >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin cvgrade-student \
        || fail "could not create the user cvgrade-student that runs student code"
fi

# The reference, the hidden tests and the grader: readable by root only.
chmod -R go-rwx "$SOURCE"
chmod 0755 "$SOURCE/run_autograder" "$SOURCE/setup.sh"
echo "cvgrade: set up $ASSIGNMENT"

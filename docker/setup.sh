#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image from the zip that
# `cvgrade package` made (unpacked in /autograder/source). It installs what grading needs and
# locks the course's files away from the unprivileged user that runs student code.
#
# CVGRADE_SKIP_INSTALL=1 skips the package installs (the simulated Gradescope run in the tests).
set -euo pipefail
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "${CVGRADE_SKIP_INSTALL:-0}" != "1" ]; then
    if ! command -v python3 >/dev/null 2>&1; then
        apt-get update
        apt-get install -y --no-install-recommends python3 python3-pip
    fi
    python3 -m pip install --no-cache-dir --upgrade pip
    # CPU-only PyTorch unless the assignment asked for a GPU (requirements.txt carries the index).
    python3 -m pip install --no-cache-dir -r "$SOURCE/requirements.txt"
    if ! id -u cvgrade-student >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin cvgrade-student
    fi
fi

# The reference, the hidden tests and the grader: readable by root only.
chmod -R go-rwx "$SOURCE"
chmod 0755 "$SOURCE/run_autograder" "$SOURCE/setup.sh"
echo "cvgrade: set up $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["assignment"])' "$SOURCE/cvgrade-assignment.json")"

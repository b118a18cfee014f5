#!/usr/bin/env bash
# Quick start 2/2: set up .venv (compiled core + test extras) and run the test suite, then run the core
# suites once more on the uncompiled source, so both builds are held to the same tests.
# Always reinstalls (FORCE=1), then records the source stamp run.sh checks (scripts/_install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
. scripts/_install.sh
FORCE=1 ensure_installed "[dev]"
.venv/bin/python -m pytest "$@"
echo "== the same core suites on the pure-Python source ==" >&2
BASTION_EXPECT_PURE=1 PYTHONPATH=src .venv/bin/python -m pytest -q tests/test_build.py tests/core tests/differential tests/property "$@"

#!/usr/bin/env bash
# Quick start 2/2: set up .venv (compiled core + test extras) and run the test suite, then run the core
# suites once more on the uncompiled source, so both builds are held to the same tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
echo "installing bastion (compiling the core with mypyc; about a minute)..." >&2
.venv/bin/python -m pip install -q --disable-pip-version-check ".[dev]" >/dev/null
.venv/bin/python -m pytest "$@"
echo "== the same core suites on the pure-Python source ==" >&2
BASTION_EXPECT_PURE=1 PYTHONPATH=src .venv/bin/python -m pytest -q tests/test_build.py tests/core tests/differential tests/property "$@"

#!/usr/bin/env bash
# Quick start 2/2: set up a virtual environment with the test extras and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]" >/dev/null
exec .venv/bin/python -m pytest "$@"

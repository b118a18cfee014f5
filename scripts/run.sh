#!/usr/bin/env bash
# Quick start 1/2: set up a virtual environment and run the main job on the bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e . >/dev/null
exec .venv/bin/bastion simulate --out out/simulate "$@"

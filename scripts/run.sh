#!/usr/bin/env bash
# Quick start 1/2: set up .venv (compiled core) and run the main job: replay the bundled real Binance
# sample through the full venue; writes out/replay/report.html and out/replay/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
if ! .venv/bin/python -c "import bastion" 2>/dev/null; then
  echo "installing bastion (compiling the core with mypyc; about a minute)..." >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check . >/dev/null
fi
exec .venv/bin/bastion replay --out out/replay "$@"

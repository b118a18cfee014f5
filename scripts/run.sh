#!/usr/bin/env bash
# Quick start 1/2: set up .venv (compiled core) and run the main job: replay the bundled real Binance
# sample through the full venue; writes out/replay/report.html and out/replay/summary.json.
# Reinstalls only when the source differs from what .venv was built from (scripts/_install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
. scripts/_install.sh
ensure_installed ""
exec .venv/bin/bastion replay --out out/replay "$@"

# Sourced by run.sh and test.sh: (re)install the package into .venv when the source changed.
#
# The stamp .venv/.bastion-source-stamp holds a SHA-256 over pyproject.toml, setup.py and every file
# under src/ (names and contents; caches and build products excluded). A stale .venv (an install of
# older source) would otherwise run old code: checking only `import bastion` cannot see that.

source_stamp() {
  "$PY" - <<'PY'
import hashlib, os
digest = hashlib.sha256()
paths = ["pyproject.toml", "setup.py"]
for root, dirs, files in os.walk("src"):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info"))
    paths += [os.path.join(root, f) for f in sorted(files) if not f.endswith((".pyc", ".so", ".pyd"))]
for path in sorted(paths):
    with open(path, "rb") as handle:
        digest.update(path.encode() + b"\0" + hashlib.sha256(handle.read()).digest())
print(digest.hexdigest())
PY
}

# ensure_installed EXTRAS: EXTRAS is "" or "[dev]"; FORCE=1 reinstalls regardless of the stamp. The stamp
# is "<source hash> <extras>": an install with [dev] also serves run.sh, not the other way round.
ensure_installed() {
  local extras="$1" stamp_file=.venv/.bastion-source-stamp source stored
  if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
  source="$(source_stamp)"
  stored="$(cat "$stamp_file" 2>/dev/null || true)"
  if [ "${FORCE:-0}" = 1 ] || ! .venv/bin/python -c "import bastion" 2>/dev/null \
      || [ "${stored%% *}" != "$source" ] || { [ -n "$extras" ] && [ "${stored#* }" != "$extras" ]; }; then
    echo "installing bastion${extras} (compiling the core with mypyc; about a minute)..." >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check ".${extras}" >/dev/null
    printf '%s %s\n' "$source" "$extras" > "$stamp_file"
  fi
}

# Sourced by demo.sh and test.sh: create (or reuse) the project's virtualenv.
#
# Two layers, so a second run — even from a fresh clone — costs seconds, not minutes:
#   ~/.cache/picaivid/deps-<hash of the requirement files>   every dependency (shared across checkouts)
#   <checkout>/.venv                                         this checkout's project, editable, on top:
#                                                            a .pth file puts the shared layer on sys.path
# torch is installed first and pinned through constraints.txt: an unpinned torch would pull a multi-GB
# CUDA build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/picaivid"
VENV="$ROOT/.venv"

pip_quiet() {
  # Local package indexes print a warning per missing mirror folder; keep real errors visible.
  "$@" 2> >(grep -v -e "is neither a file nor a directory" >&2)
}

find_python() {
  local py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for candidate in python3.11 python3.12 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
    done
  fi
  [ -n "$py" ] || { echo "error: python3 (3.11+) is needed" >&2; exit 2; }
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "error: python 3.11+ is needed (found $("$py" --version 2>&1))" >&2; exit 2; }
  echo "$py"
}

ensure_deps() {
  local flavour="$1" reqs="$ROOT/requirements.txt" hash
  [ "$flavour" = dev ] && reqs="$ROOT/requirements-dev.txt"
  hash="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/requirements-nodeps.txt" "$ROOT/requirements-dev-nodeps.txt" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)"
  # A dev layer serves the demo too.
  if [ "$flavour" = runtime ] && [ -f "$CACHE_ROOT/deps-$hash-dev/.complete" ]; then flavour=dev; fi
  DEPS="$CACHE_ROOT/deps-$hash-$flavour"
  [ -f "$DEPS/.complete" ] && return 0
  local py
  py="$(find_python)"
  echo "==> installing dependencies into $DEPS (first run only: a few minutes)" >&2
  rm -rf "$DEPS"
  mkdir -p "$CACHE_ROOT"
  "$py" -m venv "$DEPS"
  local pip=(pip_quiet "$DEPS/bin/python" -m pip install --disable-pip-version-check -q)
  "${pip[@]}" --upgrade pip setuptools wheel >/dev/null
  "${pip[@]}" -c "$ROOT/constraints.txt" "torch==2.13.0"
  "${pip[@]}" -c "$ROOT/constraints.txt" -r "$reqs"
  "${pip[@]}" --no-deps -r "$ROOT/requirements-nodeps.txt"
  if [ "$flavour" = dev ]; then "${pip[@]}" --no-deps -r "$ROOT/requirements-dev-nodeps.txt"; fi
  date > "$DEPS/.complete"
}

ensure_venv() {
  ensure_deps "$1"
  local site deps_site
  deps_site="$("$DEPS/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.deps" 2>/dev/null)" != "$DEPS" ]; then
    rm -rf "$VENV"
    "$DEPS/bin/python" -m venv "$VENV"
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$deps_site" > "$site/_picaivid_deps.pth"
    local log
    log="$(mktemp)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$ROOT" \
      >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
    echo "$DEPS" > "$VENV/.deps"
  fi
}

activate_venv() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  # Tools of the shared layer (moto_server, alembic, ruff, mypy) on PATH after the project's own.
  export PATH="$PATH:$DEPS/bin"
  # librosa's numba kernels take about 20 s to compile cold: keep them across clones.
  export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$CACHE_ROOT/numba}"
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  # Compile them now, in this one process, before anything starts processes in parallel (the test
  # workers, a fleet). Every process also takes the cache's lock itself (app/media/numba_cache.py), so
  # this only moves the wait here; it costs a file check once the cache is warm.
  python -m app.media.numba_cache
}

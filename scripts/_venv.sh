# Sourced by demo.sh and test.sh: create (or reuse) the project's virtualenv.
#
# The venv lives in .venv and carries a stamp of the hash of the requirement files it was built
# from; a second run with the same requirements costs nothing. torch is installed first and pinned
# through constraints.txt: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PICAIVID_VENV:-$ROOT/.venv}"

ensure_venv() {
  local flavour="$1"   # runtime | dev
  local reqs="$ROOT/requirements.txt"
  [ "$flavour" = dev ] && reqs="$ROOT/requirements-dev.txt"
  local hash
  hash="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/constraints.txt" "$ROOT/pyproject.toml" \
          | sha256sum | cut -c1-16)-$flavour"
  if [ -x "$VENV/bin/python" ] && { [ "$(cat "$VENV/.requirements-hash" 2>/dev/null)" = "$hash" ] \
       || { [ "$flavour" = runtime ] && [ "$(cat "$VENV/.requirements-hash" 2>/dev/null)" = "${hash%-runtime}-dev" ]; }; }; then
    return 0
  fi
  local py="${PYTHON:-}"
  if [ -z "$py" ]; then
    for candidate in python3.11 python3.12 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
    done
  fi
  [ -n "$py" ] || { echo "error: python3 (3.11+) is needed" >&2; exit 2; }
  "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || { echo "error: python 3.11+ is needed (found $("$py" --version 2>&1))" >&2; exit 2; }
  echo "==> creating virtualenv in $VENV ($flavour requirements)" >&2
  "$py" -m venv "$VENV"
  local pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  "${pip[@]}" --upgrade pip setuptools wheel >/dev/null
  "${pip[@]}" -c "$ROOT/constraints.txt" "torch==2.13.0"
  "${pip[@]}" -c "$ROOT/constraints.txt" -r "$reqs"
  "${pip[@]}" -c "$ROOT/constraints.txt" --no-deps -e "$ROOT"
  echo "$hash" > "$VENV/.requirements-hash"
}

activate_venv() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/var/numba-cache}"
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
}

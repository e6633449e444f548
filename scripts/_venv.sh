# Sourced by demo.sh and test.sh: create (or reuse) the project's virtualenv.
#
# Virtualenvs live in ~/.cache/picaivid/venv-<hash of the requirement files>, so a second run — even
# from a fresh clone — with the same requirements costs nothing; .venv in the checkout links to it.
# The project itself is installed editable from whichever checkout runs the script. torch is installed
# first and pinned through constraints.txt: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/picaivid"

pip_quiet() {
  # Local package indexes print a warning per missing mirror folder; keep real errors visible.
  "$@" 2> >(grep -v -e "is neither a file nor a directory" -e "BuildBackendWarning" >&2)
}

ensure_venv() {
  local flavour="$1"   # runtime | dev
  local reqs="$ROOT/requirements.txt"
  [ "$flavour" = dev ] && reqs="$ROOT/requirements-dev.txt"
  local hash
  hash="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$ROOT/constraints.txt" | sha256sum | cut -c1-16)-$flavour"
  # A dev venv serves the demo too.
  local dev_venv="$CACHE_ROOT/venv-${hash%-*}-dev"
  if [ -z "${PICAIVID_VENV:-}" ] && [ "$flavour" = runtime ] && [ -f "$dev_venv/.complete" ]; then
    VENV="$dev_venv"
  else
    VENV="${PICAIVID_VENV:-$CACHE_ROOT/venv-$hash}"
  fi
  ln -sfn "$VENV" "$ROOT/.venv" 2>/dev/null || true
  if [ -f "$VENV/.complete" ]; then
    install_project
    return 0
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
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
  local pip=(pip_quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  "${pip[@]}" --upgrade pip setuptools wheel >/dev/null
  "${pip[@]}" -c "$ROOT/constraints.txt" "torch==2.13.0"
  "${pip[@]}" -c "$ROOT/constraints.txt" -r "$reqs"
  echo "$hash" > "$VENV/.complete"
  install_project
}

install_project() {
  # Cheap when this checkout is already the installed one; a few seconds otherwise.
  local here
  here="$(cd / && "$VENV/bin/python" -c 'import app, pathlib; print(pathlib.Path(app.__file__).resolve().parents[1])' 2>/dev/null || true)"
  if [ "$here" != "$ROOT" ] || [ ! -x "$VENV/bin/picaivid" ]; then
    local log
    log="$(mktemp)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e "$ROOT" \
      >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
  fi
}

activate_venv() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  # librosa's numba kernels take about a minute to compile cold: keep them across clones.
  export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$CACHE_ROOT/numba}"
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
}

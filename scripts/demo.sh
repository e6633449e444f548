#!/usr/bin/env bash
# Renders the bundled sample listing on this machine: no Postgres, SQS, S3 or GPU needed.
#   scripts/demo.sh [OUT_DIR]      (default: var/demo)
# It creates its own virtualenv, generates a synthetic listing (photos + music at a known tempo),
# renders it and prints the video's path. Poster and storyboard land next to the video.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
ensure_venv runtime
activate_venv
cd "$ROOT"

OUT="${1:-$ROOT/var/demo}"
mkdir -p "$OUT"
# The demo keeps its own embedded state so it never touches a configured fleet database or bucket.
export DATABASE_URL="sqlite:///$OUT/picaivid.db" LOCAL_STORAGE_PATH="$OUT/storage" WORK_DIR="$OUT/work"
unset S3_BUCKET

if [ ! -f "$OUT/sample/ground_truth.json" ]; then
  echo "==> generating the sample listing in $OUT/sample" >&2
  # With its true depth as sidecars (as a 3-D tour export brings them): the clips use depth parallax.
  python scripts/make_sample_listing.py "$OUT/sample" --depth >&2
fi
echo "==> rendering" >&2
picaivid render "$OUT/sample/photos" --music "$OUT/sample/music.wav" --out "$OUT/listing.mp4" \
  --target-length "${TARGET_LENGTH:-30}"

#!/usr/bin/env bash
# A whole fleet on one machine: moto_server (SQS + S3), the CPU and GPU queues with their dead-letter
# queues, the control API, N CPU workers and M GPU workers (on a machine without a GPU, GPU workers use
# the CPU renderers), all against PostgreSQL.
#
#   scripts/fleet.sh [--cpu N] [--gpu M] [--port PORT] [--smoke]
#
# Uses DATABASE_URL if it names PostgreSQL, else the local PostgreSQL on 127.0.0.1:5432 (database
# picaivid_fleet, kept between runs), else a throwaway cluster. Uses AWS_ENDPOINT_URL if given, else
# starts moto_server. Uploads a generated sample listing to S3 and writes var/fleet/job.json, a request
# body for POST /internal/jobs. Ctrl-C stops everything (workers get SIGTERM, like ECS does).
#
# --smoke: create a job with curl, wait for it, apply a reorder edit, wait for the new timeline version
# to render, print both video URLs, and exit (a self-check of the whole path).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
CPU=1 GPU=2 PORT="${API_PORT:-8000}" SMOKE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU="$2"; shift 2 ;;
    --gpu) GPU="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
ensure_venv dev
activate_venv
cd "$ROOT"
source "$ROOT/scripts/_services.sh"

FLEET_DIR="$ROOT/var/fleet"
LOGS="$FLEET_DIR/logs"
mkdir -p "$LOGS"

case "${DATABASE_URL:-}" in
  postgres*) ;;
  *) provision_postgres picaivid_fleet keep; export DATABASE_URL="$PG_URL" ;;
esac
[ -n "${AWS_ENDPOINT_URL:-}" ] || provision_moto
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export S3_BUCKET="${S3_BUCKET:-picaivid-fleet}" API_KEY="${API_KEY:-dev-fleet-key}"
# No instance metadata service on a laptop: Spot-notice polling off (SIGTERM still works).
export SPOT_TERMINATION_ENDPOINT="${SPOT_TERMINATION_ENDPOINT:-}"
export OUTPUT_RESOLUTION="${OUTPUT_RESOLUTION:-1280x720}" OUTPUT_X264_PRESET="${OUTPUT_X264_PRESET:-veryfast}"
export SQS_WAIT_SECONDS="${SQS_WAIT_SECONDS:-2}" WORKER_HEARTBEAT_SECONDS="${WORKER_HEARTBEAT_SECONDS:-10}"
export WORK_DIR="$FLEET_DIR/work" LOCAL_STORAGE_PATH="$FLEET_DIR/storage"

echo "==> database migrations" >&2
picaivid db upgrade >&2
python - <<'PY'
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
try:
    s3.create_bucket(Bucket=os.environ["S3_BUCKET"])
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
PY
eval "$(picaivid queues create --prefix picaivid)"
export SQS_QUEUE_URL SQS_GPU_QUEUE_URL

if [ ! -f "$FLEET_DIR/job.json" ] || [ -n "$SMOKE" ]; then
  echo "==> uploading a sample listing to s3://$S3_BUCKET/uploads/sample/" >&2
  python scripts/make_sample_listing.py "$FLEET_DIR/sample" --width 960 --height 640 --music-seconds 30 \
    --rooms exterior living_room kitchen bedroom_a bathroom >/dev/null
  python - "$FLEET_DIR" <<'PY'
import json, os, sys
from pathlib import Path
import boto3
out = Path(sys.argv[1])
truth = json.loads((out / "sample" / "ground_truth.json").read_text())
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
bucket = os.environ["S3_BUCKET"]
photos = []
for item in truth["photos"]:
    path = out / "sample" / item["file"]
    key = f"uploads/sample/{path.parent.name}/{path.name}"
    s3.upload_file(str(path), bucket, key)
    photos.append({"uri": f"s3://{bucket}/{key}", "room_label": path.parent.name})
s3.upload_file(str(out / "sample" / "music.wav"), bucket, "uploads/sample/music.wav")
body = {"listing_id": "sample-listing", "photos": photos, "music_uri": f"s3://{bucket}/uploads/sample/music.wav",
        "target_length": 20, "enqueue": True}
(out / "job.json").write_text(json.dumps(body, indent=2))
PY
fi

PIDS=()
stop_fleet() {
  echo "==> stopping the fleet (SIGTERM)" >&2
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  cleanup
}
trap stop_fleet EXIT

uvicorn app.api.main:app --host 127.0.0.1 --port "$PORT" >"$LOGS/api.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 "$CPU"); do picaivid worker --type cpu >"$LOGS/cpu-$i.log" 2>&1 & PIDS+=($!); done
for i in $(seq 1 "$GPU"); do picaivid worker --type gpu >"$LOGS/gpu-$i.log" 2>&1 & PIDS+=($!); done
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.2; done

API="http://127.0.0.1:$PORT"
cat >&2 <<MSG
==> fleet up: API $API ($CPU CPU + $GPU GPU workers), logs in $LOGS
    export API=$API KEY=$API_KEY
    curl -s -H "X-API-Key: \$KEY" -H 'Content-Type: application/json' -d @$FLEET_DIR/job.json \$API/internal/jobs
    curl -s -H "X-API-Key: \$KEY" \$API/internal/jobs/1            # status, phases, clips, video URL
    curl -s -H "X-API-Key: \$KEY" \$API/internal/jobs/1/timeline   # beats, cuts, versions
    curl -s -H "X-API-Key: \$KEY" -d '{"type":"set_target_length","target_length":15}' \$API/internal/jobs/1/edits
    curl -s -H "X-API-Key: \$KEY" \$API/internal/metrics
    docs: $API/docs
MSG

if [ -z "$SMOKE" ]; then
  wait
  exit 0
fi

# --- smoke: the issue's "done when", with curl -------------------------------------------------
hdr=(-H "X-API-Key: $API_KEY" -H 'Content-Type: application/json')
field() { python -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, {'d': d}))" "$1"; }
wait_version() {  # job_id version timeout: until that timeline version is rendered
  local deadline=$((SECONDS + $3)) job timeline
  while [ $SECONDS -lt $deadline ]; do
    job="$(curl -sf "${hdr[@]}" "$API/internal/jobs/$1")"
    [ "$(echo "$job" | field "d['status']")" = failed ] && { echo "error: job failed: $(echo "$job" | field "d['error']")" >&2; return 1; }
    timeline="$(curl -s "${hdr[@]}" "$API/internal/jobs/$1/timeline")"
    if [ "$(echo "$job" | field "d['status']")" = completed ] \
        && [ "$(echo "$timeline" | field "any(v['version'] == $2 and v['status'] == 'rendered' for v in d.get('versions', []))")" = True ]; then
      echo "$job"; return 0
    fi
    sleep 2
  done
  echo "error: timed out waiting for job $1, timeline v$2" >&2; return 1
}
job="$(curl -sf "${hdr[@]}" -d @"$FLEET_DIR/job.json" "$API/internal/jobs" | field "d['job_id']")"
echo "==> created job $job; waiting for it to render" >&2
first="$(wait_version "$job" 1 900)"
echo "==> v1 video: $(echo "$first" | field "d['artifacts']['video']")" >&2
order="$(curl -sf "${hdr[@]}" "$API/internal/jobs/$job/timeline" | field "[c['clip_id'] for c in d['clips']][::-1]")"
curl -sf "${hdr[@]}" -d "{\"type\": \"reorder\", \"clip_ids\": $order}" "$API/internal/jobs/$job/edits" >/dev/null
echo "==> reorder edit applied; waiting for timeline v2 to render" >&2
second="$(wait_version "$job" 2 600)"
echo "==> v2 video: $(echo "$second" | field "d['artifacts']['video']")" >&2
echo "==> smoke test passed" >&2

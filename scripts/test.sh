#!/usr/bin/env bash
# Runs every test against real PostgreSQL, real ffmpeg and a real SQS/S3 wire protocol (moto_server).
#   scripts/test.sh [pytest args...]
# Installs what it needs (virtualenv with dev requirements). Uses TEST_DATABASE_URL if given; else
# creates a throwaway database on the local PostgreSQL, or starts a throwaway cluster with initdb.
# Uses AWS_ENDPOINT_URL if given; else starts moto_server on a free loopback port.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
ensure_venv dev
activate_venv
cd "$ROOT"

CLEANUP=()
cleanup() { for cmd in "${CLEANUP[@]}"; do eval "$cmd" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

provision_postgres() {
  local db="picaivid_test_$$_$RANDOM"
  # 1. A PostgreSQL already listening on 127.0.0.1:5432 (trust auth, user postgres).
  if command -v psql >/dev/null 2>&1 && psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "create database $db" >/dev/null
    CLEANUP+=("psql -h 127.0.0.1 -U postgres -d postgres -qc 'drop database if exists $db with (force)'")
    export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$db"
    return 0
  fi
  # 2. Start a throwaway cluster (installing PostgreSQL from Debian if it is missing).
  local bindir
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$bindir" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> installing PostgreSQL" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  fi
  [ -n "$bindir" ] || { echo "error: no PostgreSQL found; set TEST_DATABASE_URL" >&2; exit 2; }
  local data port as=()
  data="$(mktemp -d /tmp/picaivid-pg.XXXXXX)"
  port="$(free_port)"
  if [ "$(id -u)" = 0 ]; then chown postgres "$data"; as=(runuser -u postgres --); fi
  echo "==> starting a throwaway PostgreSQL on 127.0.0.1:$port" >&2
  "${as[@]}" "$bindir/initdb" -D "$data" -U postgres -A trust >/dev/null
  "${as[@]}" "$bindir/pg_ctl" -D "$data" -o "-p $port -k $data -h 127.0.0.1" -w start -l "$data/log" >/dev/null
  CLEANUP+=("${as[*]} $bindir/pg_ctl -D $data -m immediate stop; rm -rf $data")
  "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "create database $db" >/dev/null
  export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/$db"
}

provision_moto() {
  local port
  port="$(free_port)"
  python -c 'from moto.server import main; main()' -H 127.0.0.1 -p "$port" >"/tmp/picaivid-moto-$port.log" 2>&1 &
  CLEANUP+=("kill $!")
  for _ in $(seq 1 150); do
    python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.2
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
}

[ -n "${TEST_DATABASE_URL:-}" ] || provision_postgres
[ -n "${AWS_ENDPOINT_URL:-}" ] || provision_moto
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export PICAIVID_REQUIRE_SERVICES=1

echo "==> PostgreSQL: ${TEST_DATABASE_URL%%@*}@...  SQS/S3: $AWS_ENDPOINT_URL" >&2
python -m pytest "$@"

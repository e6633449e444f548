# Sourced by test.sh and fleet.sh: throwaway PostgreSQL and moto_server (SQS + S3 wire protocol).
# provision_postgres DBNAME [keep]  exports PG_URL; without "keep" the database is dropped on exit.
# provision_moto [PORT]             exports AWS_ENDPOINT_URL.
CLEANUP=()
cleanup() { for cmd in "${CLEANUP[@]}"; do eval "$cmd" >/dev/null 2>&1 || true; done; }
trap cleanup EXIT

free_port() { python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

provision_postgres() {
  local db="$1" keep="${2:-}"
  # 1. A PostgreSQL already listening on 127.0.0.1:5432 (trust auth, user postgres).
  if command -v psql >/dev/null 2>&1 && psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname='$db'" | grep -q 1; then
      psql -h 127.0.0.1 -U postgres -d postgres -qc "create database $db" >/dev/null
    fi
    [ -n "$keep" ] || CLEANUP+=("psql -h 127.0.0.1 -U postgres -d postgres -qc 'drop database if exists $db with (force)'")
    export PG_URL="postgresql+psycopg://postgres@127.0.0.1:5432/$db"
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
  export PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/$db"
}

provision_moto() {
  local port="${1:-}"
  [ -n "$port" ] || port="$(free_port)"
  python -c 'from moto.server import main; main()' -H 127.0.0.1 -p "$port" >"/tmp/picaivid-moto-$port.log" 2>&1 &
  CLEANUP+=("kill $!")
  for _ in $(seq 1 150); do
    python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.2
  done
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
}


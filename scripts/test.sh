#!/usr/bin/env bash
# Runs every test against real PostgreSQL, real ffmpeg and a real SQS/S3 wire protocol (moto_server).
#   scripts/test.sh [pytest args...]        (PYTEST_WORKERS=N processes, default 2)
# Installs what it needs (virtualenv with dev requirements). Uses TEST_DATABASE_URL if given; else
# creates a throwaway database on the local PostgreSQL, or starts a throwaway cluster with initdb.
# Uses AWS_ENDPOINT_URL if given; else starts moto_server on a free loopback port.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
ensure_venv dev
activate_venv
cd "$ROOT"

source "$ROOT/scripts/_services.sh"

if [ -z "${TEST_DATABASE_URL:-}" ]; then provision_postgres "picaivid_test_$$_$RANDOM"; export TEST_DATABASE_URL="$PG_URL"; fi
[ -n "${AWS_ENDPOINT_URL:-}" ] || provision_moto
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-testing}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-testing}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export PICAIVID_REQUIRE_SERVICES=1

echo "==> PostgreSQL: ${TEST_DATABASE_URL%%@*}@...  SQS/S3: $AWS_ENDPOINT_URL" >&2
# Two processes by default (PYTEST_WORKERS=0 for one): the fleet tests spend most of their time waiting on
# leases and visibility timeouts, which the other process fills with media tests. A file stays on one
# process (--dist loadfile), so module fixtures are built once.
# Each test has its own limit (pytest-timeout, pyproject.toml); this bounds the run as a whole, so even a
# hang outside any test (collection, a session fixture, xdist itself) ends it.
workers="${PYTEST_WORKERS:-2}"
limit="${PICAIVID_SUITE_TIMEOUT:-2400}"
if [ "$workers" != 0 ]; then
  timeout --kill-after=30 "$limit" python -m pytest -n "$workers" --dist loadfile "$@"
else
  timeout --kill-after=30 "$limit" python -m pytest "$@"
fi

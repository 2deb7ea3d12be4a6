#!/usr/bin/env bash
# Property-based API test: schemathesis (from PyPI) generates requests from the query API's own
# OpenAPI document (/api/v1/openapi.json) and checks every answer: never a 5xx
# (not_a_server_error), and status codes, content types, headers and bodies as documented.
# Slow (minutes), so it is not part of scripts/test.sh. Exits non-zero on any failure.
#
# It starts the services (scripts/services.sh), builds `hookrelay`, makes a throwaway database
# and AMQP namespace, starts `hookrelay api` on a free loopback port with an owner token, runs
# schemathesis against it, then stops the API and drops the database. No dispatcher runs, so
# the webhooks it creates are never called; every request goes to 127.0.0.1.
#
# Environment (all optional):
#   ST_BIN           a built `hookrelay` to test (default: cargo build, the debug binary)
#   ST_MAX_EXAMPLES  examples per operation and phase (default 100)
#   ST_CHECKS        schemathesis checks (default all)
#   ST_EXCLUDE_CHECKS  checks left out (default positive_data_acceptance,negative_data_rejection:
#                    they compare how strict input validation is with the schema, which
#                    does not spell out every rule, e.g. until after since; set it empty for them)
#   ST_SEED          a seed, to repeat a run
#   ST_VENV          where schemathesis is installed (default /var/tmp/schemathesis-venv)
#   ST_REPORT_DIR    keep the JUnit report there (default: a temporary folder)
#   ST_ARGS          more arguments for `schemathesis run`
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=${ST_VENV:-/var/tmp/schemathesis-venv}
ST_EXCLUDE_CHECKS=${ST_EXCLUDE_CHECKS-positive_data_acceptance,negative_data_rejection}
log() { echo "schemathesis.sh: $*"; }

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

bash scripts/services.sh
if [ -n "${ST_BIN:-}" ]; then
  BIN=$ST_BIN
else
  cargo build -q --bin hookrelay
  target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$target_dir/debug/hookrelay"
fi

suffix="$(date +%s)_$$"
db="hookrelay_schemathesis_$suffix"
work=$(mktemp -d)
export HOOKRELAY_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
export HOOKRELAY_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
export HOOKRELAY_REDIS_URL="redis://127.0.0.1:6379/0"
export HOOKRELAY_NAMESPACE="st_$suffix"
export HOOKRELAY_API_ADDR="127.0.0.1:0"
export HOOKRELAY_ALLOW_PRIVATE_TARGETS=false
export HOOKRELAY_LOG_FORMAT=json
export RUST_LOG="${RUST_LOG:-warn}"
unset HOOKRELAY_CONFIG

api_pid=""
cleanup() {
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  # (the exchange {ns}.events stays: rabbitmqctl cannot delete one; it holds nothing)
  for q in events events.dead deliveries; do
    rabbitmqctl -q delete_queue "$HOOKRELAY_NAMESPACE.$q" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE \"$db\"" >/dev/null
"$BIN" migrate >/dev/null
token=$("$BIN" tokens create --name schemathesis --role owner | tail -n 1)

"$BIN" api >"$work/api.out" 2>"$work/api.log" &
api_pid=$!
base=""
for _ in $(seq 100); do
  base=$(sed -n 's|^hookrelay API: \(http://127\.0\.0\.1:[0-9]*\)/api/v1$|\1|p' "$work/api.out")
  [ -n "$base" ] && break
  kill -0 "$api_pid" 2>/dev/null || { cat "$work/api.log"; log "the API did not start"; exit 1; }
  sleep 0.2
done
[ -n "$base" ] || { log "the API did not say where it listens"; exit 1; }
log "API at $base (database $db)"

st() { # label, filter arguments...
  local label=$1; shift
  log "$label"
  # From the temporary folder: schemathesis keeps a cache (.schemathesis/) where it runs.
  # shellcheck disable=SC2086
  (cd "$work" && "$VENV/bin/schemathesis" run "$base/api/v1/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks "${ST_CHECKS:-all}" \
    ${ST_EXCLUDE_CHECKS:+--exclude-checks "$ST_EXCLUDE_CHECKS"} \
    --max-examples "${ST_MAX_EXAMPLES:-100}" \
    ${ST_SEED:+--seed "$ST_SEED"} \
    --generation-database none \
    --report junit --report-dir "${ST_REPORT_DIR:-$work}" \
    --no-color \
    "$@" ${ST_ARGS:-})
}

status=0
# Revoking tokens goes last, alone: its stateful tests find the owner token in the token list
# and revoke it, which would leave every other operation answering 401.
st "every operation but DELETE /api/v1/tokens/{id}" --exclude-operation-id revoke_token || status=$?
st "DELETE /api/v1/tokens/{id}" --include-operation-id revoke_token || status=$?

# A panic is answered with a 500 by the API's catch-panic layer: show any, whatever the checks said.
if grep -qi "panic" "$work/api.log"; then
  log "the API logged a panic:"
  grep -i "panic" "$work/api.log" | head -20
  status=1
fi
exit $status

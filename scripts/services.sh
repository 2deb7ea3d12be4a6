#!/usr/bin/env bash
# Starts what hookrelay's tests need, idempotently: PostgreSQL, Redis, RabbitMQ (the machine
# doc's start commands), and installs Chromium + ChromeDriver (browser tests) and promtool
# (alert-rule checks) when missing. Safe to run any number of times.
set -uo pipefail

log() { echo "services: $*"; }
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

wait_for() { # name, tries, command...
  local name=$1 tries=$2; shift 2
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "$name did not come up"; return 1
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  wait_for PostgreSQL 60 pg_isready -h 127.0.0.1 -p 5432 -q || exit 1
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_for Redis 30 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG' || exit 1
fi

if ! rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1; then
  log "starting RabbitMQ"
  $SUDO rabbitmq-server -detached || true
  sleep 3
  rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
  # the broker may be up with its app stopped (e.g. after a fault test): start the app too
  rabbitmqctl -q start_app >/dev/null 2>&1 || true
  wait_for RabbitMQ 120 rabbitmq-diagnostics -q check_port_connectivity || exit 1
fi
# after a fault test the app can be stopped while the node runs
rabbitmq-diagnostics -q check_running >/dev/null 2>&1 || rabbitmqctl -q start_app >/dev/null 2>&1 || true

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || log "could not install ${need_apt[*]}"
fi

# Databases left behind by interrupted test runs.
stale=$(psql -h 127.0.0.1 -U postgres -tAc "SELECT datname FROM pg_database WHERE datname LIKE 'hookrelay_t_%'" 2>/dev/null || true)
for db in $stale; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
log "PostgreSQL, Redis and RabbitMQ are up"

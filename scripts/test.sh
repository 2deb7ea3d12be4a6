#!/usr/bin/env bash
# The one test command: starts the services if needed, runs every test against them, then the
# fault tests (they stop the shared RabbitMQ, Redis and PostgreSQL for a few seconds each, so
# they run alone, one at a time, after everything else). Arguments go to the first run only;
# with arguments, the fault tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
# Not --all-targets: that would run the harness-less benchmarks too. Examples are still built.
cargo test --workspace --all-features "$@"
if [ $# -eq 0 ]; then
  # A fault test that failed hard may leave a service stopped: bring everything back after.
  status=0
  # --workspace as above, so features resolve the same and the main run's build is reused.
  cargo test --workspace --all-features --test faults -- --ignored --test-threads=1 || status=$?
  bash scripts/services.sh >/dev/null
  exit $status
fi

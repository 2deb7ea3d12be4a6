#!/usr/bin/env bash
# The one test command: starts the services if needed, then runs every test against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
# Not --all-targets: that would run the harness-less benchmarks too. Examples are still built.
cargo test --workspace --all-features "$@"

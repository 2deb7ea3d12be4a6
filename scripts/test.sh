#!/usr/bin/env bash
# The one test command: starts the services if needed, then runs every test against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
cargo test --workspace --all-targets --all-features "$@"

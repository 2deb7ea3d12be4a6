#!/usr/bin/env bash
# The one test command: starts the services if needed, builds every test once, runs every test
# binary against the services, then the fault tests (they stop the shared RabbitMQ, Redis and
# PostgreSQL for a few seconds each, so they run alone, one at a time, after everything else).
#
# Without arguments the test binaries run side by side (most tests wait on timers and the
# network, so one binary at a time leaves the cores idle); each binary's output is printed
# whole when it ends. With arguments it is `cargo test --workspace --all-features "$@"` (one
# binary at a time, cargo's own output) and the fault tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh

if [ $# -gt 0 ]; then
  # Not --all-targets: that would run the harness-less benchmarks too. Examples are still built.
  exec cargo test --workspace --all-features "$@"
fi

# One build; the JSON lines name each test binary and its package (its tests run there, as
# under cargo).
list=$(mktemp)
logs=$(mktemp -d)
trap 'rm -rf "$list" "$logs"' EXIT
cargo test --workspace --all-features --no-run --message-format=json-render-diagnostics \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        if m["target"]["name"] != "faults":
            print(m["executable"], m["manifest_path"].rsplit("/", 1)[0])
' > "$list"

pids=()
names=()
i=0
while read -r exe dir; do
  (cd "$dir" && CARGO_MANIFEST_DIR="$dir" "$exe" > "$logs/$i.log" 2>&1) &
  pids+=("$!")
  names+=("${exe##*/} (${dir#"$PWD"})")
  i=$((i + 1))
done < "$list"

status=0
failed=()
for n in "${!pids[@]}"; do
  if wait "${pids[$n]}"; then rc=0; else rc=$?; fi
  echo "===== ${names[$n]}: exit $rc"
  cat "$logs/$n.log"
  if [ "$rc" -ne 0 ]; then status=1; failed+=("${names[$n]}"); fi
done

# A fault test that failed hard may leave a service stopped: bring everything back after.
# --workspace as above, so features resolve the same and the main build is reused.
cargo test --workspace --all-features --test faults -- --ignored --test-threads=1 || status=1
bash scripts/services.sh >/dev/null
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
fi
exit $status

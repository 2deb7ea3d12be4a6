#!/usr/bin/env bash
# The one test command: starts the services if needed, builds every test once, runs every test
# binary against the services, then the fault tests (they stop the shared RabbitMQ, Redis and
# PostgreSQL for a few seconds each, so they run alone, one at a time, after everything else).
#
# Without arguments the root package's end-to-end tests run beside the other test binaries
# (most tests wait on timers and the network, so one binary at a time leaves a core idle);
# each binary's output is printed whole when it ends. With arguments it is `cargo test --workspace --all-features "$@"` (one
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

# Two streams side by side: the root package's end-to-end binary (the longest, about 4 min),
# and every other binary one after another. More at once loads the 2-core machine enough to
# upset the tests that check timing.
run_one() { # exe dir log
  (cd "$2" && CARGO_MANIFEST_DIR="$2" "$1" < /dev/null > "$3" 2>&1)
}
root=$(awk -v d="$PWD" '$2 == d && $1 ~ /\/it-[0-9a-f]+$/ {print $1}' "$list")
status=0
failed=()
report() { # name log rc
  echo "===== $1: exit $3"
  cat "$2"
  if [ "$3" -ne 0 ]; then status=1; failed+=("$1"); fi
}
if [ -n "$root" ]; then
  run_one "$root" "$PWD" "$logs/root.log" &
  root_pid=$!
fi
i=0
while read -r exe dir; do
  [ "$exe" = "$root" ] && continue
  name="${exe##*/} (${dir#"$PWD"/})"
  if run_one "$exe" "$dir" "$logs/$i.log"; then rc=0; else rc=$?; fi
  report "$name" "$logs/$i.log" "$rc"
  i=$((i + 1))
done < "$list"
if [ -n "$root" ]; then
  if wait "$root_pid"; then rc=0; else rc=$?; fi
  report "${root##*/} (the root package's tests/it)" "$logs/root.log" "$rc"
fi
# Every listed binary ran (a test's child reading stdin once swallowed the rest of the list;
# each binary's stdin is /dev/null now).
ran=$i
if [ -n "$root" ]; then ran=$((ran + 1)); fi
listed=$(wc -l < "$list")
if [ "$ran" -ne "$listed" ]; then
  echo "ran $ran of the $listed test binaries"
  status=1
fi

# A fault test that failed hard may leave a service stopped: bring everything back after.
# --workspace as above, so features resolve the same and the main build is reused.
cargo test --workspace --all-features --test faults -- --ignored --test-threads=1 || status=1
bash scripts/services.sh >/dev/null
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
fi
exit $status

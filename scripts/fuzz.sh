#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after another, each for a bounded time, on the
# stable toolchain (libFuzzer's coverage instrumentation needs no nightly; `--sanitizer none`
# because the workspace forbids unsafe code, so AddressSanitizer would find nothing more).
# Installs cargo-fuzz from crates.io when missing. Not part of scripts/test.sh: the
# proptests in the crates cover the same properties in CI.
#
#   bash scripts/fuzz.sh                 every target, 180 s each
#   bash scripts/fuzz.sh 300 event_parse one target, 300 s
#
# A crash leaves its input in fuzz/artifacts/<target>/ and makes this script exit non-zero;
# replay it with `cargo fuzz run --sanitizer none <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-180}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event_parse cursor_decode duration_parse signature_verify pattern_parse)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2

status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" logs
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "fuzz.sh: $t for ${secs}s"
  set +e
  nice -n 10 cargo fuzz run --sanitizer none "$t" "corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$secs" -print_final_stats=1 >"logs/$t.log" 2>&1
  rc=$?
  set -e
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+== ERROR)|panicked" \
    "logs/$t.log" || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: $t FAILED (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
    status=1
  fi
done
exit $status

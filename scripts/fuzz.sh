#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 30) against the committed seed corpus, copied into a
# temporary working corpus so the committed one stays small. Fails on the first crash and prints its file.
# Stable Rust: cargo-fuzz with `--sanitizer none` needs no nightly (FUZZING.md says why this fuzzer).
#
# Run with: scripts/fuzz.sh [SECONDS]      (FUZZ_TARGETS="splitter flv" to run only some)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_PER_TARGET="${1:-30}"
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

echo "== building the fuzz targets (stable, no sanitizer)"
nice -n 10 cargo fuzz build -s none

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bin="target/x86_64-unknown-linux-gnu/release"
failed=0
for t in $targets; do
  mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
  echo "== $t: ${SECONDS_PER_TARGET}s"
  set +e
  nice -n 10 "$bin/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -rss_limit_mb=2048 \
    -artifact_prefix="$work/artifacts/$t/" "${dict[@]}" "$work/corpus/$t" "corpus/$t" >"$work/$t.log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(find "$work/corpus/$t" -type f | wc -l)
  echo "   $t: $execs executions, $rate exec/s, working corpus $corpus files"
  crash=$(find "$work/artifacts/$t" -type f | head -n 1)
  if [ "$rc" -ne 0 ] || [ -n "$crash" ]; then
    tail -n 40 "$work/$t.log"
    if [ -n "$crash" ]; then
      mkdir -p artifacts/"$t"
      cp "$crash" artifacts/"$t"/
      echo "!! $t crashed: fuzz/artifacts/$t/$(basename "$crash") (reproduce: cd fuzz && cargo fuzz run -s none $t artifacts/$t/$(basename "$crash"))"
    else
      echo "!! $t failed (exit $rc)"
    fi
    failed=1
  fi
done
exit "$failed"

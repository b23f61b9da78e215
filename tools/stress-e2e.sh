#!/usr/bin/env bash
# Runs the whole end-to-end suite (`ctest -L e2e`) ROUNDS times in a row while two busy loops keep
# two cores loaded, and fails if any test fails in any round. This is the proof that no test
# depends on how fast the machine is (issue 9, item 3): deadlines follow the server's injected
# clock, which the tests move, and every wait is a generous "until it happens".
#
# usage: tools/stress-e2e.sh [BUILD_DIR] [ROUNDS]      defaults: build/release 5
#   STRESS_JOBS=N   ctest -j N inside each round (default 1: one test at a time)
# Prints one summary line per round and a final line; each round's full ctest output is kept in
# a temporary directory, and printed when the round failed.
set -euo pipefail

cd "$(dirname "$0")/.."
build_dir=${1:-build/release}
rounds=${2:-5}
jobs=${STRESS_JOBS:-1}

if [ ! -f "$build_dir/CTestTestfile.cmake" ]; then
  echo "stress-e2e: $build_dir is not a configured build directory" >&2
  exit 2
fi
case "$rounds" in
  '' | *[!0-9]* | 0)
    echo "stress-e2e: ROUNDS must be a positive integer, got '$rounds'" >&2
    exit 2
    ;;
esac

# Sanitizer builds: the same settings as tools/test.sh (harmless for a release build).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

logs=$(mktemp -d "${TMPDIR:-/tmp}/stress-e2e.XXXXXX")
busy_pids=()
stop_busy_loops() {
  # Only the loops this script started, by PID.
  for pid in "${busy_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${busy_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  busy_pids=()
}
trap stop_busy_loops EXIT
trap 'stop_busy_loops; exit 130' INT TERM

for _ in 1 2; do
  sh -c 'while :; do :; done' &
  busy_pids+=("$!")
done
echo "stress-e2e: $build_dir, $rounds rounds of ctest -L e2e (-j $jobs), busy loops pid ${busy_pids[*]}," \
  "load $(cut -d' ' -f1-3 /proc/loadavg), logs in $logs"

failed_rounds=0
for round in $(seq 1 "$rounds"); do
  log="$logs/round-$round.log"
  start=$(date +%s)
  set +e
  (cd "$build_dir" && ctest -L e2e -j "$jobs" --output-on-failure --timeout 900) >"$log" 2>&1
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  summary=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1 || true)
  [ -n "$summary" ] || summary="no ctest summary"
  if grep -q 'No tests were found' "$log"; then
    rc=1
    summary="no e2e tests found"
  fi
  if [ "$rc" -eq 0 ]; then
    echo "round $round/$rounds: PASS  $summary  (${took} s, load $(cut -d' ' -f1 /proc/loadavg))"
  else
    failed_rounds=$((failed_rounds + 1))
    echo "round $round/$rounds: FAIL  $summary  (${took} s, load $(cut -d' ' -f1 /proc/loadavg))"
    sed -n '/The following tests FAILED/,$p' "$log"
    echo "---- full output of round $round ($log) ----"
    cat "$log"
    echo "---- end of round $round ----"
  fi
done

if [ "$failed_rounds" -ne 0 ]; then
  echo "stress-e2e: FAILED: $failed_rounds of $rounds rounds had failures ($build_dir)"
  exit 1
fi
echo "stress-e2e: all $rounds rounds passed under load ($build_dir)"

#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for SECONDS each (default 60), two at a time, with
# ASan, UBSan and leak detection, each on a scratch copy of its seed corpus (nothing is written into
# the repository). Fails on any crash, leak, timeout, out-of-memory or sanitizer report, and names
# the input that caused it. Ends with one line per target: executions and result.
#
#   bash tools/fuzz.sh [SECONDS]
#
# Environment: RINGMX_FUZZ_BUILD_DIR (default build/fuzz), RINGMX_FUZZ_TARGETS (default: all),
# RINGMX_FUZZ_JOBS (targets at once, default 2), RINGMX_FUZZ_KEEP=1 keeps the scratch folder (the
# corpora the run grew) and prints its path.
#
# A failure leaves the reproducer in $RINGMX_FUZZ_BUILD_DIR/artifacts/<target>/. To replay it:
#   $RINGMX_FUZZ_BUILD_DIR/tests/fuzz/fuzz_<target> <file>
# Once fixed, add it to tests/fuzz/corpus/<target>/ as crash-<what> so ctest replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
case "$seconds" in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
build=${RINGMX_FUZZ_BUILD_DIR:-build/fuzz}
jobs=${RINGMX_FUZZ_JOBS:-2}
all_targets=(session command data_decoder config envelope_json ktls_records queue_record queue_scan
  recipient_table sasl passwd_file reply dsn_params stored_envelope proxy_header milter
  metrics_request session_milter)
read -r -a targets <<<"${RINGMX_FUZZ_TARGETS:-${all_targets[*]}}"
start=$(date +%s)

# --- what the fuzz build needs beyond the normal build (tools/install-deps.sh) -------------------
bash tools/install-deps.sh
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
# clang-14 and its compiler-rt (libclang_rt.fuzzer, asan, ubsan: libclang-rt-14-dev on Debian 12);
# nlohmann-json3-dev: the independent JSON parser of the envelope and session targets.
packages=(clang-14 libclang-rt-14-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- build ----------------------------------------------------------------------------------------
echo "== fuzz build (clang, libFuzzer, ASan + UBSan) in $build"
mkdir -p "$build"
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRINGMX_FUZZ=ON -DRINGMX_BUILD_BENCH=OFF -DRINGMX_BUILD_TESTS=ON >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target "${targets[@]/#/fuzz_}"
built=$(date +%s)

# --- run --------------------------------------------------------------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-fuzz.XXXXXX")
if [ "${RINGMX_FUZZ_KEEP:-0}" != 1 ]; then trap 'rm -rf "$scratch"' EXIT; fi
artifacts="$PWD/$build/artifacts"
rm -rf "$artifacts"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

run_target() {  # run_target NAME: writes $scratch/NAME.log and $scratch/NAME.rc
  local t=$1
  local dir="$scratch/$t"
  mkdir -p "$dir/corpus" "$artifacts/$t"
  cp -R "tests/fuzz/corpus/$t/." "$dir/corpus/"
  local dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=("-dict=tests/fuzz/$t.dict")
  local rc=0
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$artifacts/$t/" "${dict[@]}" \
    "$dir/corpus" >"$scratch/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$scratch/$t.rc"
}

echo "== running ${#targets[@]} targets for ${seconds}s each, $jobs at a time"
running=0
for t in "${targets[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
wait || true

# --- report -----------------------------------------------------------------------------------------
failed=0
summary=()
for t in "${targets[@]}"; do
  log="$scratch/$t.log"
  rc=$(cat "$scratch/$t.rc" 2>/dev/null || echo 99)
  # (|| true: a grep that finds nothing is not a failure of this script)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  rate=$(grep -o 'exec/s: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  artifact=$(grep -o "Test unit written to [^ ]*" "$log" | sed 's/Test unit written to //' | tail -1 || true)
  kind=$(grep -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer): [a-zA-Z-]+|runtime error|check failed' "$log" | head -1 || true)
  if [ "$rc" = 0 ] && [ -z "$artifact" ] && ! grep -q "runtime error" "$log"; then
    result=ok
  else
    result="FAILED (rc=$rc${kind:+, $kind})"
    failed=1
    echo "---- $t: last lines of its log ($log) ----"
    tail -n 60 "$log"
    if [ -n "$artifact" ]; then echo "---- $t: reproducer: $artifact"; fi
  fi
  summary+=("$(printf 'fuzz %-14s %12s execs %8s exec/s  %s' "$t" "${execs:-?}" "${rate:-?}" "$result")")
done
end=$(date +%s)
echo "== fuzz summary (build $((built - start))s, run $((end - built))s)"
printf '%s\n' "${summary[@]}"
if [ "${RINGMX_FUZZ_KEEP:-0}" = 1 ]; then echo "scratch corpora and logs kept in $scratch"; fi
if [ "$failed" != 0 ]; then
  echo "fuzz: FAILED; reproducers in $artifacts"
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s without a finding"

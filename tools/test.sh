#!/usr/bin/env bash
# The README's test command. Installs what is needed, then builds and tests ringmx four ways:
#   1. release build: every unit and end-to-end test (ctest), then the kernel-TLS tests in a VM;
#   2. ASan + UBSan build: every test again;
#   3. ThreadSanitizer build: the net/ and end-to-end tests (the server binary runs under TSan);
#   4. libFuzzer: every fuzz target for RINGMX_FUZZ_SECONDS (default 30) each (a longer run by
#      hand: RINGMX_FUZZ_SECONDS=600 bash tools/fuzz.sh).
# Exits non-zero on any failure. Works from any checkout path (spaces included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)

bash tools/check_layering.sh
bash tools/check_format.sh

echo "== release build =="
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGMX_BUILD_BENCH=ON
cmake --build build/release -j "$jobs"
(cd build/release && ctest --output-on-failure -j "$jobs" --timeout 900)

echo "== kernel TLS in a VM (Debian's kernel has the TLS ULP this machine lacks) =="
# A step that could not run says `SKIPPED: ...` on a line of its own; the last line repeats it.
skipped=()
if [ "${RINGMX_SKIP_VM:-0}" = 1 ]; then
  skipped+=("SKIPPED: RINGMX_SKIP_VM=1 (the kernel-TLS path was not tested)")
  echo "${skipped[-1]}"
else
  vm_log=$(mktemp)
  bash tools/ktls-vm-test.sh build/release 2>&1 | tee "$vm_log"
  while IFS= read -r line; do skipped+=("$line"); done < <(grep '^SKIPPED:' "$vm_log" || true)
  rm -f "$vm_log"
fi

echo "== ASan + UBSan build =="
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRINGMX_SANITIZE=ON -DRINGMX_BUILD_BENCH=OFF
cmake --build build/asan -j "$jobs"
(cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j "$jobs" --timeout 1800)

echo "== ThreadSanitizer build (net/ and end-to-end tests) =="
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGMX_TSAN=ON -DRINGMX_BUILD_BENCH=OFF
cmake --build build/tsan -j "$jobs"
tsan_reports=$(mktemp -d)
trap 'rm -rf "$tsan_reports"' EXIT
# Every process under test (the test binaries and the servers they start) writes its reports to
# $tsan_reports and stops at the first one; any report fails the step even if a test missed it.
tsan_rc=0
(cd build/tsan && TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$tsan_reports/tsan" \
  ctest --output-on-failure -j "$jobs" --timeout 1800 -L 'net|e2e') || tsan_rc=$?
if compgen -G "$tsan_reports/tsan*" >/dev/null; then
  cat "$tsan_reports"/tsan*
  echo "ThreadSanitizer reported the races above"
  tsan_rc=1
fi
[ "$tsan_rc" = 0 ]

echo "== fuzzing: every libFuzzer target for ${RINGMX_FUZZ_SECONDS:-30} s =="
bash tools/fuzz.sh "${RINGMX_FUZZ_SECONDS:-30}"

echo "all tests passed in release, ASan+UBSan and TSan builds; fuzzers found nothing"
for line in "${skipped[@]}"; do echo "but $line"; done

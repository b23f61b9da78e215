#!/usr/bin/env bash
# Installs what is needed, builds ringmx twice (release, and ASan+UBSan) and runs every test in
# both builds. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
jobs=$(nproc)

bash tools/check_layering.sh
bash tools/check_format.sh

echo "== release build =="
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGMX_BUILD_BENCH=ON
cmake --build build/release -j "$jobs"
(cd build/release && ctest --output-on-failure -j "$jobs" --timeout 600)

echo "== kernel TLS in a VM (Debian's kernel has the TLS ULP this machine lacks) =="
if [ "${RINGMX_SKIP_VM:-0}" = 1 ]; then
  echo "SKIPPED: RINGMX_SKIP_VM=1"
else
  bash tools/ktls-vm-test.sh build/release
fi

echo "== ASan + UBSan build =="
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRINGMX_SANITIZE=ON -DRINGMX_BUILD_BENCH=OFF
cmake --build build/asan -j "$jobs"
(cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j "$jobs" --timeout 900)
echo "all tests passed in release and sanitizer builds"

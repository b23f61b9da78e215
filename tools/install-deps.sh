#!/usr/bin/env bash
# Installs everything ringmx needs to build and test on Debian 12, from Debian's packages only.
# Idempotent: safe to run again.
set -euo pipefail
# Every program the scripts in tools/ run is here or in a package every Debian system has
# (Essential or Priority: required: coreutils, findutils, grep, sed, gzip, dpkg, apt, libc-bin,
# util-linux). tools/ktls-vm-test.sh installs its own VM tools (qemu-system-x86, busybox-static,
# cpio, openssl) and tools/fresh-machine-test.sh its debootstrap.
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
packages=(
  build-essential cmake ninja-build pkg-config
  liburing-dev libssl-dev libabsl-dev libmimalloc-dev
  libisal-dev  # CRC32C of the queue's log records (core/queue)
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev
  openssl ca-certificates python3 clang-format git
  libcrypt-dev  # libxcrypt: crypt_rn() and crypt_checksalt() for AUTH (yescrypt, sha512-crypt, bcrypt)
  nlohmann-json3-dev  # the independent JSON parser of the fuzz targets (their corpora replay in ctest)
  swaks libnet-ssleay-perl  # AUTH interop in tests/e2e/auth_e2e_test (swaks needs Net::SSLeay for --tls)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing ${missing[*]}; run as root (or install sudo) to install them"
    exit 1
  fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

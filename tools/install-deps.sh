#!/usr/bin/env bash
# Installs everything ringmx needs to build and test on Debian 12, from Debian's packages only.
# Idempotent: safe to run again.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
packages=(
  build-essential cmake ninja-build pkg-config
  liburing-dev libssl-dev libabsl-dev libmimalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev
  openssl ca-certificates python3 clang-format git
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

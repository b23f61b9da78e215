#!/usr/bin/env bash
# Runs the kernel-TLS tests inside a small VM that boots Debian's own kernel, which has the TLS
# ULP module (tls.ko) that the development and CI machines lack. The VM gets only loopback. The
# test binaries go into the initramfs under /opt/ringmx, their shared libraries at their usual
# paths, and the server binary also at the path compiled into tls_e2e_test (the build tree's, which
# may be anywhere, /tmp included: the VM's init mounts nothing over /tmp, whose rootfs is already a
# tmpfs).
#
# usage: bash tools/ktls-vm-test.sh [BUILD_DIR] [GTEST_FILTER]
#   BUILD_DIR     a release build with tests (default: build/release in this checkout)
#   GTEST_FILTER  for tls_e2e_test (default: the tests whose result depends on the record layer)
#
# Passes (exit 0) only when the kernel path really ran in the VM: every kernel module the tests
# need loaded, ktls_test and tls_e2e_test ran at least one test each, all passed and none skipped
# itself, and a real `ringmx serve` inside the VM logged `record_layer=kernel` for a STARTTLS
# session driven by `openssl s_client`. Anything else is a failure (exit 1), with the reason on a
# line starting with "FAIL:".
#
# Exit 0 with a line starting with "SKIPPED:" only when the VM cannot be had at all: the tools to
# build and boot it (qemu, busybox, cpio, openssl) cannot be installed, Debian's kernel package
# cannot be downloaded, or the guest kernel never started. Bounded: the VM is killed after 600 s
# (RINGMX_VM_TIMEOUT).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ $# -ge 1 ]; then build=$1; else build=$repo/build/release; fi
filter=${2:-'TlsTest.KernelTls*:TlsTest.StartTls*:TlsTest.ImplicitTls*:TlsTest.CloseNotify*:TlsTest.CommandsInjected*:TlsTest.LargeMessages*'}
vm_timeout=${RINGMX_VM_TIMEOUT:-600}  # about 1 min idle, 2 min on a busy 2-core machine

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIPPED: $*"; exit 0; }

[ -d "$build" ] || fail "no build directory '$build' (build the release tests first)"
build=$(realpath -- "$build")
binaries=("$build/tools/ringmx" "$build/tests/net/ktls_test" "$build/tests/e2e/tls_e2e_test")
for b in "${binaries[@]}"; do
  [ -x "$b" ] || fail "'$b' is missing (build the release tests first)"
done

# Every program this script runs. apt-get, dpkg, dpkg-deb, find, gzip, ldd, sed, grep, timeout,
# realpath and mktemp come with every Debian system (Essential or Priority: required packages);
# the rest is installed here.
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
[ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  if ! { $SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
    --no-install-recommends "${need[@]}"; }; then
    skip "could not install ${need[*]} (needed to build and boot the VM)"
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-ktls-vm-XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# Debian's current kernel package (downloaded, not installed). A machine whose package lists are
# missing or stale gets them refreshed once.
download_kernel() {
  (cd "$work" && rm -f -- *.deb && apt-get download linux-image-amd64 >/dev/null 2>&1 &&
    pkg=$(dpkg-deb -f linux-image-amd64_*.deb Depends | sed 's/[ ,].*//') &&
    apt-get download "$pkg" >/dev/null 2>&1 && rm -rf kernel && dpkg-deb -x "$pkg"_*.deb kernel)
}
if ! download_kernel; then
  echo "== apt-get download failed; refreshing the package lists once"
  { $SUDO apt-get update >/dev/null 2>&1 && download_kernel; } ||
    skip "could not download Debian's kernel package (linux-image-amd64)"
fi
vmlinuz=$(find "$work/kernel/boot" -name 'vmlinuz-*' | head -1)
moddir=$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)
[ -n "$vmlinuz" ] && [ -n "$moddir" ] || fail "the kernel package has no vmlinuz or no modules"
kver=$(basename -- "$moddir")
# Where tls_e2e_test looks for the server: CMake's $<TARGET_FILE:ringmx>, under the build directory
# as CMake spelled it (which need not be the realpath). (The binary need not hold that path as one
# string: GCC may build it from immediates. If it is wrong, tls_e2e_test fails in the VM.)
cmake_dir=$(sed -n 's/^CMAKE_CACHEFILE_DIR:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null)
ringmx_path="${cmake_dir:-$build}/tools/ringmx"
kconfig="$work/kernel/boot/config-$kver"

# The modules the kernel path needs: the TLS ULP and the AEAD ciphers kTLS offloads (the kernel
# also asks /sbin/modprobe for them on demand). Each one that is a module in this kernel must load
# in the VM; one that is built in needs nothing; one that is neither makes the test fail here.
declare -A kconfig_of=(
  [tls]=CONFIG_TLS [gcm]=CONFIG_CRYPTO_GCM [ghash_generic]=CONFIG_CRYPTO_GHASH
  [aesni_intel]=CONFIG_CRYPTO_AES_NI_INTEL [aes_generic]=CONFIG_CRYPTO_AES
  [chacha20poly1305]=CONFIG_CRYPTO_CHACHA20POLY1305 [chacha_generic]=CONFIG_CRYPTO_CHACHA20
  [poly1305_generic]=CONFIG_CRYPTO_POLY1305
)
modules=()
for m in tls gcm ghash_generic aesni_intel aes_generic chacha20poly1305 chacha_generic \
  poly1305_generic; do
  # Module files may spell "_" as "-" (ghash-generic.ko); the loaded module is named with "_".
  if [ -n "$(find "$moddir" -name "${m//_/[-_]}.ko*" -print -quit)" ]; then
    modules+=("$m")
  elif grep -qx "${kconfig_of[$m]}=y" "$kconfig" 2>/dev/null; then
    echo "== $m is built into kernel $kver"
  else
    fail "kernel $kver has neither a module nor built-in support for $m (${kconfig_of[$m]})"
  fi
done

root="$work/initramfs"
opt="$root/opt/ringmx"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc} "$opt/bin" "$opt/tests" "$opt/smoke"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
mkdir -p "$root/lib/modules/$kver/kernel/net"
cp -r "$moddir/kernel/crypto" "$moddir/kernel/arch" "$moddir/kernel/lib" \
  "$root/lib/modules/$kver/kernel/"
cp -r "$moddir/kernel/net/tls" "$root/lib/modules/$kver/kernel/net/"
cp "$moddir"/modules.builtin* "$moddir"/modules.order "$root/lib/modules/$kver/" 2>/dev/null || true
cp "$build/tools/ringmx" "$opt/bin/ringmx"
mkdir -p "$root$(dirname -- "$ringmx_path")"
ln "$opt/bin/ringmx" "$root$ringmx_path"
cp "$build/tests/net/ktls_test" "$build/tests/e2e/tls_e2e_test" "$opt/tests/"
openssl_bin=$(command -v openssl)
cp "$openssl_bin" "$opt/bin/openssl"
for b in "$opt/bin/ringmx" "$opt/bin/openssl" "$opt/tests/ktls_test" "$opt/tests/tls_e2e_test"; do
  ldd "$b" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname -- "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
printf '%s\n' "$filter" >"$opt/gtest_filter"
printf '%s\n' "$ringmx_path" >"$opt/ringmx_path"
printf '%s\n' "${modules[@]}" >"$opt/modules"

# A server and a certificate for the direct check that `ringmx serve` puts sessions on the kernel.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.example.test \
  -keyout "$opt/smoke/mx.key" -out "$opt/smoke/mx.pem" >/dev/null 2>&1 ||
  fail "openssl could not make the certificate for the VM's server"
cat >"$opt/smoke/ringmx.toml" <<'TOML'
hostname = "mx.example.test"
workers = 1

[[listener]]
name = "mx"
address = "127.0.0.1:2525"
tls = "starttls"

[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]

[spool]
path = "/tmp/smoke/spool"

[control]
socket = "/tmp/smoke/control.sock"

[tls]
cert = "/opt/ringmx/smoke/mx.pem"
key = "/opt/ringmx/smoke/mx.key"
ktls = true

[log]
file = "/tmp/smoke/ringmx.log"
TOML

# The VM's init. Nothing from the host is expanded into it: every path it uses is fixed above.
# Each check that fails prints "== FAIL: ..." and the run ends with one verdict line.
cat >"$root/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# No tmpfs over /tmp: the rootfs is one already, and the build tree (holding the server binary at
# the path tls_e2e_test has compiled in) may be under /tmp.
ip link set lo up
echo "== kernel $(cat /proc/sys/kernel/osrelease)"
failed=0
problem() { echo "== FAIL: $*"; failed=1; }
depmod
for m in $(cat /opt/ringmx/modules); do
  if ! out=$(modprobe "$m" 2>&1); then
    problem "module $m did not load: $out"
  elif ! grep -q "^$m " /proc/modules; then
    problem "module $m is not in /proc/modules after modprobe"
  fi
done
echo "== modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
export HOME=/tmp TMPDIR=/tmp
ringmx_path=$(cat /opt/ringmx/ringmx_path)
[ -x "$ringmx_path" ] || problem "the server binary is missing at '$ringmx_path'"

# run_gtest NAME BINARY FILTER MUST_PASS: runs one test binary; it must exit 0, run at least one
# test, skip none, and report MUST_PASS (a test name, or "") as OK.
run_gtest() {
  echo "== $1"
  { "$2" --gtest_filter="$3" --gtest_color=no; echo $? >"/tmp/$1.rc"; } 2>&1 | tee "/tmp/$1.out"
  rc=$(cat "/tmp/$1.rc")
  [ "$rc" = 0 ] || problem "$1 exited with $rc"
  grep -q '^\[  PASSED  \] [1-9]' "/tmp/$1.out" || problem "$1 passed no tests"
  if grep -q '^\[  SKIPPED \]' "/tmp/$1.out"; then
    problem "$1 skipped tests (the kernel path did not run): $(grep '^\[  SKIPPED \] [A-Za-z]' \
      "/tmp/$1.out" | sed 's/^\[  SKIPPED \] //; s/ (.*//' | sort -u | tr '\n' ' ')"
  fi
  if [ -n "$4" ] && ! grep -q "^\[       OK \] $4 " "/tmp/$1.out"; then
    problem "$1 did not run $4"
  fi
}
# ktls_test's InstallWithoutUlpFailsCleanly is about kernels without the TLS ULP; here it would
# skip, so it is left out rather than allowed to skip.
run_gtest ktls_test /opt/ringmx/tests/ktls_test '-KernelTlsTest.InstallWithoutUlpFailsCleanly' \
  KernelTlsTest.ExportedKeysInstalledInTheKernelCarryRealRecords
filter=$(cat /opt/ringmx/gtest_filter)
case "$filter" in
  *KernelTls*) must=TlsTest.KernelTlsCarriesWholeSessionsWhereTheKernelHasIt ;;
  *) must= ;;
esac
run_gtest tls_e2e_test /opt/ringmx/tests/tls_e2e_test "$filter" "$must"

# The real server with a STARTTLS listener, one TLS 1.2 session from openssl s_client (TLS 1.2
# moves to the kernel on every kernel with the ULP): its log must say record_layer=kernel.
echo "== ringmx serve, one STARTTLS session"
mkdir -p /tmp/smoke/spool
/opt/ringmx/bin/ringmx serve -c /opt/ringmx/smoke/ringmx.toml >/tmp/smoke/stderr 2>&1 &
server=$!
i=0
while ! grep -qs 'ringmx ready' /tmp/smoke/ringmx.log /tmp/smoke/stderr && [ $i -lt 60 ]; do
  sleep 1; i=$((i + 1))
done
printf 'EHLO vm.example.test\nQUIT\n' | timeout 60 /opt/ringmx/bin/openssl s_client \
  -connect 127.0.0.1:2525 -starttls smtp -tls1_2 -crlf -quiet -verify_quiet >/tmp/smoke/client 2>&1
echo "s_client said: $(tr '\r\n' '  ' </tmp/smoke/client)"
kill -TERM $server
wait $server
echo "== server exited with $?"
cat /tmp/smoke/stderr /tmp/smoke/ringmx.log 2>/dev/null | grep -E 'record_layer|error|ready'
if grep -qs 'record_layer=kernel' /tmp/smoke/ringmx.log /tmp/smoke/stderr; then
  echo "== server log: a session ran on record_layer=kernel"
else
  problem "the server's log shows no session on the kernel record layer"
fi

if [ $failed = 0 ]; then echo "== vm verdict: PASS"; else echo "== vm verdict: FAIL"; fi
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"

# Software emulation: KVM inside these (already virtual) machines hangs before the kernel prints.
echo "== booting Debian's kernel $kver in qemu (TCG; at most ${vm_timeout} s)"
qemu_rc=0
timeout "$vm_timeout" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic \
  -no-reboot -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" -nic none </dev/null |
  tee "$work/console.log" || qemu_rc=$?
if ! grep -q '== kernel ' "$work/console.log"; then
  # The kernel announces a dead or missing init even when quiet: that is our initramfs, not the
  # environment.
  if grep -qE 'Kernel panic|No working init|Attempted to kill init' "$work/console.log"; then
    fail "the VM's kernel started but our /init did not run (see the console output above)"
  fi
  skip "the VM did not boot (qemu rc=$qemu_rc; see the console output above)"
fi
if ! grep -q '== vm verdict: ' "$work/console.log"; then
  fail "the VM did not finish its tests within ${vm_timeout} s (qemu rc=$qemu_rc)"
fi
# Every reason the VM gave, and the host's own reading of the transcript, so that a mistake in
# /init cannot turn a skip into a pass.
tr -d '\r' <"$work/console.log" >"$work/console.txt"
reasons=$(sed -n 's/^== FAIL: /FAIL: /p' "$work/console.txt")
grep -q '^\[  SKIPPED \]' "$work/console.txt" && reasons+=$'\n'"FAIL: a test skipped itself in the VM"
grep -q 'tls shard=.* record_layer=kernel' "$work/console.txt" ||
  reasons+=$'\n'"FAIL: the VM's server log shows no session on the kernel record layer"
grep -q '^== vm verdict: PASS' "$work/console.txt" || reasons+=$'\n'"FAIL: the VM's verdict is not PASS"
if [ -n "$reasons" ]; then
  echo "== kernel TLS in the VM failed (kernel $kver):"
  printf '%s\n' "$reasons" | sed '/^$/d'
  exit 1
fi
echo "PASS: kernel TLS ran in the VM (kernel $kver)"

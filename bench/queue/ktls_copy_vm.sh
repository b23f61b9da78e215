#!/usr/bin/env bash
# The body-copy count of bench/queue/copy_count.py on kernel-TLS connections. Machines without
# the TLS ULP cannot make such a session, so like tools/ktls-vm-test.sh this boots Debian's kernel
# (downloaded with apt-get, not installed) in qemu with an initramfs holding busybox, ringmx,
# openssl and the memcpy_count.c shim. In the VM, `ringmx serve` (durable, one shard, STARTTLS,
# ktls = true) runs under the shim, and `openssl s_client -starttls smtp -tls1_2` sends SESSIONS
# sessions of one message of SIZE body bytes each, first without MAIL FROM SIZE=, then with it;
# then the same over plain SMTP (busybox nc) as the control, in the same VM.
# The shim's totals (and the server's held-input counters) are printed before, between and after,
# and the host prints the copied bytes per body byte. The server's log must show
# record_layer=kernel. Bounded: qemu is killed after 900 s.
#
# usage: bash bench/queue/ktls_copy_vm.sh BUILD_DIR [SESSIONS] [SIZE]    (defaults 5, 1048576)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=$(realpath -- "${1:?BUILD_DIR}")
sessions=${2:-5}
size=${3:-1048576}
[ -x "$build/tools/ringmx" ] || { echo "no $build/tools/ringmx" >&2; exit 1; }
for t in qemu-system-x86_64 cpio openssl cc; do
  command -v "$t" >/dev/null || { echo "ktls_copy_vm: $t is missing" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "ktls_copy_vm: /bin/busybox is missing" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-ktls-copies-XXXXXX")
trap 'rm -rf -- "$work"' EXIT
(cd "$work" && apt-get download linux-image-amd64 >/dev/null 2>&1 &&
  pkg=$(dpkg-deb -f linux-image-amd64_*.deb Depends | sed 's/[ ,].*//') &&
  apt-get download "$pkg" >/dev/null 2>&1 && dpkg-deb -x "$pkg"_*.deb kernel) ||
  { echo "ktls_copy_vm: could not download Debian's kernel package" >&2; exit 1; }
vmlinuz=$(find "$work/kernel/boot" -name 'vmlinuz-*' | head -1)
moddir=$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -1)
kver=$(basename -- "$moddir")

root=$work/initramfs
opt=$root/opt/ringmx
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc} "$opt/bin" "$opt/msg"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
mkdir -p "$root/lib/modules/$kver/kernel/net"
cp -r "$moddir/kernel/crypto" "$moddir/kernel/arch" "$moddir/kernel/lib" \
  "$root/lib/modules/$kver/kernel/"
cp -r "$moddir/kernel/net/tls" "$root/lib/modules/$kver/kernel/net/"
cp "$moddir"/modules.builtin* "$moddir"/modules.order "$root/lib/modules/$kver/" 2>/dev/null || true
cp "$build/tools/ringmx" "$opt/bin/ringmx"
cp "$(command -v openssl)" "$opt/bin/openssl"
cc -O2 -shared -fPIC -o "$opt/bin/memcpy_count.so" "$repo/bench/queue/memcpy_count.c" -lpthread
for b in "$opt/bin/ringmx" "$opt/bin/openssl" "$opt/bin/memcpy_count.so"; do
  ldd "$b" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$root$(dirname -- "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.example.test \
  -keyout "$opt/mx.key" -out "$opt/mx.pem" >/dev/null 2>&1
cat >"$opt/ringmx.toml" <<'TOML'
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
path = "/tmp/run/spool"
[tls]
cert = "/opt/ringmx/mx.pem"
key = "/opt/ringmx/mx.key"
ktls = true
[log]
file = "/tmp/run/ringmx.log"
[control]
socket = "/tmp/run/control.sock"
TOML
# One session's input after STARTTLS (s_client does EHLO and STARTTLS itself): the same body
# lines as copy_count.py (76 octets + CRLF), sent pipelined, then QUIT.
python3 - "$opt/msg" "$size" <<'PY'
import sys
d, size = sys.argv[1], int(sys.argv[2])
line = b"x" + b"y" * 75 + b"\r\n"
body = line * (size // len(line))
body += b"z" * (size - len(body) - 2) + b"\r\n" if size > len(body) else b""
assert len(body) == size
for name, mail in (("off", b""), ("on", b" SIZE=%d" % size)):
    with open(f"{d}/{name}", "wb") as f:
        f.write(b"EHLO vm.example.test\r\nMAIL FROM:<bench@bench.test>" + mail +
                b"\r\nRCPT TO:<user@example.test>\r\nDATA\r\n" + body + b".\r\nQUIT\r\n")
PY
printf '%s\n' "$sessions" >"$opt/sessions"

cat >"$root/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
ip link set lo up
depmod
for m in tls gcm ghash_generic aesni_intel aes_generic; do modprobe "$m" 2>/dev/null; done
echo "== modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
export HOME=/tmp TMPDIR=/tmp
mkdir -p /tmp/run/spool
MEMCPY_COUNT_OUT=/tmp/run/counts LD_PRELOAD=/opt/ringmx/bin/memcpy_count.so \
  /opt/ringmx/bin/ringmx serve -c /opt/ringmx/ringmx.toml >/tmp/run/stderr 2>&1 &
server=$!
i=0
while ! grep -qs 'ringmx ready' /tmp/run/ringmx.log && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
sleep 2
# The held-input counters too (ctl stats: bytes that waited in their receive buffer or in a copy;
# builds before they existed print nothing there).
snap() {
  echo "== counts $1"
  sed "s/^/== c $1 /" /tmp/run/counts
  echo "== held after $1: $(/opt/ringmx/bin/ringmx ctl -c /opt/ringmx/ringmx.toml --json stats |
    grep -oE '"(input_held_[a-z_]+|recv_buffers_held)":[0-9]+' | head -3 | tr '\n' ' ')"
}
snap start
for mode in ktls-off ktls-on plain-off plain-on; do
  msg=/opt/ringmx/msg/${mode#*-}
  n=0
  while [ $n -lt "$(cat /opt/ringmx/sessions)" ]; do
    case $mode in
      ktls-*) timeout 300 /opt/ringmx/bin/openssl s_client -connect 127.0.0.1:2525 -starttls smtp \
        -tls1_2 -quiet -verify_quiet <$msg >/tmp/run/client 2>&1 ;;
      plain-*) { sleep 1; cat $msg; } | timeout 300 nc 127.0.0.1 2525 >/tmp/run/client 2>&1 ;;
    esac
    echo "== session $mode $n: $(grep -c '^250 2.0.0' /tmp/run/client) queued;" \
      "client's last line: $(grep -v '^ *$' /tmp/run/client | tail -n 1 | cut -c1-100)"
    n=$((n + 1))
  done
  sleep 2
  snap "$mode"
done
kill -TERM $server
wait $server
echo "== session ends: $(grep -oE 'result=[a-z-]+' /tmp/run/ringmx.log | sort | uniq -c | tr '\n' ' ')"
echo "== record layers: $(grep -o 'record_layer=[a-z]*' /tmp/run/ringmx.log | sort | uniq -c | tr '\n' ' ')"
echo "== vm done"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"
echo "== booting Debian's kernel $kver in qemu (TCG; at most 900 s), load $(cut -d' ' -f1 /proc/loadavg)"
timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 2 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 quiet panic=-1 rdinit=/init" -nic none </dev/null |
  tr -d '\r' | tee "$work/console.txt" | grep '^== ' | grep -v '^== c ' || true
python3 - "$work/console.txt" "$sessions" "$size" <<'PY'
import sys
text, sessions, size = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
snaps = {}
for line in text.splitlines():
    p = line.split()
    if len(p) == 7 and p[:2] == ["==", "c"]:
        snaps.setdefault(p[2], {})[(p[3], p[4])] = (int(p[5]), int(p[6]))
order = ["start", "ktls-off", "ktls-on", "plain-off", "plain-on"]
if not all(k in snaps for k in order):
    sys.exit("ktls_copy_vm: the VM did not report all counts")
for a, b in zip(order, order[1:]):
    delta = {k: snaps[b][k][1] - snaps[a].get(k, (0, 0))[1] for k in snaps[b]}
    total = sum(delta.values())
    large = sum(v for (kind, cls), v in delta.items() if cls in ("lt64k", "lt256k", "ge256k"))
    body = sessions * size
    print(f"{b}: {sessions} sessions x {size} B: {total} bytes copied for {body} "
          f"body bytes = {total / body:.4f} per body byte ({large / body:.4f} in copies >= 4 KiB); "
          + ", ".join(f"{k} {c}: {v}" for (k, c), v in sorted(delta.items()) if v))
PY

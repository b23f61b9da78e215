#!/usr/bin/env bash
# Installs the Debian package on a fresh Debian 12 root and proves it works there (issue 15,
# item 5): builds a clean bookworm root with debootstrap (minbase), installs the .deb with apt
# (which brings its Depends from the mirror), then, in a chroot:
#   - the ringmx system user exists and is in group ssl-cert, /var/spool/ringmx is its own (0750);
#   - `ringmx check -c /etc/ringmx/ringmx.toml` passes when run as that user (so the user can read
#     the snakeoil key the default config serves);
#   - the server starts as that user with the package's config moved to 127.0.0.1:2526 (port 25
#     is the unit's, with CAP_NET_BIND_SERVICE) and answers EHLO with STARTTLS; SIGTERM stops it;
#   - `apt-get purge` removes it and its user's files cleanly.
# Prints "deb-install-test: PASS" or "deb-install-test: FAIL (...)"; exit 0 only on PASS.
#
# usage: sudo bash tools/deb-install-test.sh [DEB]
#   DEB   the package; default: built with cpack from build/release (configured and built if
#         missing)
# Too slow for CI (debootstrap and apt need a few minutes and the network to the Debian mirror the
# host's apt uses). Runs in a private mount and PID namespace; the root is removed on exit.
set -euo pipefail
self=$(realpath -- "${BASH_SOURCE[0]}")
repo=$(cd "$(dirname "$self")/.." && pwd)
chroot_env=(/usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)

fail() { echo "deb-install-test: FAIL ($*)"; exit 1; }

# ---- inside: pid 1 of a private PID and mount namespace ----
if [ "${1:-}" = --inside ]; then
  work=$2 deb=$3 mirror=$4 security=$5
  root=$work/root
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    fail "debootstrap; see the log above"
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -n "$security" ] && echo "deb $security bookworm-security main"
  } >"$root/etc/apt/sources.list"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  mount --bind /dev "$root/dev"
  cp "$deb" "$root/tmp/"
  in_root() { chroot "$root" "${chroot_env[@]}" bash -c "$1"; }
  in_root "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends /tmp/$(basename "$deb")" || fail "apt-get install of the .deb"
  in_root 'id -nG ringmx' | tr ' ' '\n' | grep -qx ssl-cert || fail "ringmx is not in group ssl-cert"
  [ "$(in_root 'stat -c %U:%a /var/spool/ringmx')" = ringmx:750 ] ||
    fail "/var/spool/ringmx is $(in_root 'stat -c %U:%a /var/spool/ringmx'), not ringmx:750"
  in_root 'runuser -u ringmx -- ringmx check -c /etc/ringmx/ringmx.toml' ||
    fail "ringmx check of the package's config, as the ringmx user"
  # The package's config on a test port, with a control socket the user may create.
  in_root "sed -e 's/0.0.0.0:25\"/127.0.0.1:2526\"/' \
    -e 's|/run/ringmx/control.sock|/var/spool/ringmx/control.sock|' /etc/ringmx/ringmx.toml \
    >/tmp/test.toml && chown ringmx /tmp/test.toml"
  # setpriv execs the server itself (runuser would stay as its parent and answer SIGTERM itself).
  chroot "$root" "${chroot_env[@]}" setpriv --reuid=ringmx --regid=ringmx --init-groups \
    ringmx serve -c /tmp/test.toml 2>"$work/serve.log" &
  pid=$!
  answered=0
  for _ in $(seq 1 100); do
    if exec {fd}<>/dev/tcp/127.0.0.1/2526 2>/dev/null; then
      reply=''
      if IFS= read -r -t 10 line <&"$fd" && [[ $line == 220* ]]; then
        printf 'EHLO deb-install-test.example\r\n' >&"$fd"
        while IFS= read -r -t 10 line <&"$fd"; do
          reply+="$line"$'\n'
          [[ $line == "250 "* ]] && break
        done
        printf 'QUIT\r\n' >&"$fd"
      fi
      exec {fd}>&-
      if [[ $reply == *STARTTLS* ]]; then answered=1; break; fi
    fi
    sleep 0.2
  done
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" && rc=0 || rc=$?
  [ $answered = 1 ] || { cat "$work/serve.log"; fail "no EHLO with STARTTLS from the installed server"; }
  [ $rc = 0 ] || { cat "$work/serve.log"; fail "the installed server exited $rc on SIGTERM"; }
  in_root 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ringmx' || fail "apt-get purge"
  ! in_root 'test -e /usr/bin/ringmx || test -e /etc/ringmx/ringmx.toml' ||
    fail "files left after purge"
  echo "deb-install-test: PASS ($(basename "$deb") on a fresh bookworm root: installed with its \
Depends, check as ringmx, EHLO with STARTTLS, SIGTERM exit 0, purged)"
  exit 0
fi

# ---- outside: the host ----
[ "$(id -u)" = 0 ] || { echo "deb-install-test: run as root (debootstrap, chroot, mount)"; exit 1; }
deb=${1:-}
if [ -z "$deb" ]; then
  cmake -S "$repo" -B "$repo/build/release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$repo/build/release" -j "$(nproc)" --target ringmx
  out=$(mktemp -d)
  (cd "$repo/build/release" && cpack -G DEB -B "$out" >/dev/null)
  deb=$(ls "$out"/ringmx_*_amd64.deb)
fi
deb=$(realpath -- "$deb")
[ -f "$deb" ] || { echo "deb-install-test: no package at $deb"; exit 2; }
# shellcheck source=tools/lib/debian-mirror.sh
. "$(dirname "$self")/lib/debian-mirror.sh"
mirror=$(sources_uri bookworm)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(sources_uri bookworm-security)
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ringmx-deb-XXXXXX")
trap 'rm -rf --one-file-system -- "$work"' EXIT
echo "== $deb on a debootstrap bookworm root from $mirror"
timeout -s KILL 1800 unshare --pid --mount-proc --propagation private --kill-child \
  bash "$self" --inside "$work" "$deb" "$mirror" "$security"

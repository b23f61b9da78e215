#!/usr/bin/env bash
# Proves that the README's two commands work on a fresh Debian 12 machine from an awkward path:
# builds a clean bookworm root with debootstrap (minbase, then only git), clones this repository's
# HEAD into it under "/tmp/x y/ringmx", and runs there, as root in a chroot:
#   1. bash tools/run-example.sh   until the server answers EHLO on 127.0.0.1:2525; then SIGTERM
#                                  (by PID) and it must exit 0 within 60 s;
#   2. bash tools/test.sh          to completion; it must exit 0.
# Prints one line per command, "fresh-machine-test: <command>: PASS|FAIL (...)", at the end.
# Exit 0 only when both pass.
#
# usage: sudo bash tools/fresh-machine-test.sh
#   RINGMX_FRESH_RUN_TIMEOUT   seconds for command 1 to answer EHLO (default 2700)
#   RINGMX_FRESH_TEST_TIMEOUT  seconds for command 2 (default 9000)
#   RINGMX_FRESH_KEEP=1        keep the root on failure, for a look (it is removed otherwise)
#
# Too slow for CI (it installs the toolchain and builds everything twice). Everything runs in a
# private mount and PID namespace: the chroot's mounts never reach the host, and when the script
# ends every process started in the chroot ends with it. The root is removed on exit, also on
# failure or interruption. It needs the network (the Debian mirror the host's apt uses), about
# 6 GB in ${TMPDIR:-/var/tmp}, and port 2525 on 127.0.0.1 free.
set -euo pipefail

checkout_in_root="/tmp/x y/ringmx"
chroot_env=(/usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)

# ---- inside: pid 1 of a private PID and mount namespace (see the end of the file) ----
inside() {
  local work=$1 repo=$2 mirror=$3 security=$4
  local root="$work/root" results="$work/results"
  set +e
  result() { echo "$1" >>"$results"; echo "== $1"; }

  echo "== debootstrap --variant=minbase bookworm from $mirror"
  if ! debootstrap --variant=minbase bookworm "$root" "$mirror"; then
    result "setup: FAIL (debootstrap)"; return 1
  fi
  {
    echo "deb $mirror bookworm main"
    echo "deb $mirror bookworm-updates main"
    [ -n "$security" ] && echo "deb $security bookworm-security main"
  } >"$root/etc/apt/sources.list"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc" &&
    mount -t sysfs sys "$root/sys" &&
    mount --bind /dev "$root/dev" &&
    mount --bind /dev/pts "$root/dev/pts" &&
    mount -t tmpfs shm "$root/dev/shm" || { result "setup: FAIL (mounts)"; return 1; }

  echo "== installing git in the root"
  if ! chroot "$root" "${chroot_env[@]}" bash -c \
    'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git'; then
    result "setup: FAIL (apt-get install git)"; return 1
  fi
  echo "== cloning $repo (HEAD: $(git -C "$repo" rev-parse --short HEAD)) to $checkout_in_root"
  mkdir -p "$root$(dirname "$checkout_in_root")"
  if ! git clone --quiet --no-hardlinks "$repo" "$root$checkout_in_root"; then
    result "setup: FAIL (git clone)"; return 1
  fi
  echo "head: $(git -C "$root$checkout_in_root" log -1 --format='%h %s')" >>"$results"

  # 1. The run command, until it answers EHLO.
  if probe_ehlo; then
    result "run-example: FAIL (something already answers on 127.0.0.1:2525 on this machine)"
  else
    echo "== bash tools/run-example.sh"
    local started=$SECONDS deadline=$((SECONDS + ${RINGMX_FRESH_RUN_TIMEOUT:-2700})) pid answered=0
    # Its own session and process group, so that a timeout can stop the build it started too.
    setsid chroot "$root" "${chroot_env[@]}" bash -c 'cd "$1" && exec bash tools/run-example.sh' \
      run-example "$checkout_in_root" </dev/null &
    pid=$!
    while [ $SECONDS -lt $deadline ] && kill -0 "$pid" 2>/dev/null; do
      if probe_ehlo; then answered=1; break; fi
      sleep 5
    done
    if [ $answered = 1 ]; then
      local comm rc after=$((SECONDS - started))
      comm=$(cat "/proc/$pid/comm" 2>/dev/null)
      echo "== EHLO answered after $after s by pid $pid ($comm); SIGTERM"
      kill -TERM "$pid"
      local stop=$((SECONDS + 60))
      while kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
        [ $SECONDS -lt $stop ]; do sleep 1; done
      if kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        kill -KILL -- "-$pid"; wait "$pid"
        result "run-example: FAIL (answered EHLO, but did not exit within 60 s of SIGTERM)"
      else
        wait "$pid"; rc=$?
        if [ "$comm" != ringmx ]; then
          result "run-example: FAIL (EHLO was answered, but pid $pid is '$comm', not ringmx)"
        elif [ $rc = 0 ]; then
          result "run-example: PASS (EHLO answered after $after s; exit 0 on SIGTERM)"
        else
          result "run-example: FAIL (answered EHLO, but exited with $rc on SIGTERM)"
        fi
      fi
    elif kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid"; wait "$pid"
      result "run-example: FAIL (no EHLO answer within ${RINGMX_FRESH_RUN_TIMEOUT:-2700} s)"
    else
      wait "$pid"
      result "run-example: FAIL (exited with $? before answering EHLO)"
    fi
  fi

  # 2. The test command, to completion.
  echo "== bash tools/test.sh"
  local started=$SECONDS rc
  timeout --kill-after=60 "${RINGMX_FRESH_TEST_TIMEOUT:-9000}" \
    chroot "$root" "${chroot_env[@]}" bash -c 'cd "$1" && bash tools/test.sh' test "$checkout_in_root" \
    </dev/null 2>&1 | tee "$work/test.log"
  rc=${PIPESTATUS[0]}
  local skipped
  skipped=$(grep -a '^SKIPPED:' "$work/test.log" | tr '\n' ' ')
  if [ $rc = 0 ]; then
    result "test: PASS ($((SECONDS - started)) s)${skipped:+; but $skipped}"
  elif [ $rc = 124 ]; then
    result "test: FAIL (still running after ${RINGMX_FRESH_TEST_TIMEOUT:-9000} s)"
  else
    result "test: FAIL (exit $rc after $((SECONDS - started)) s)${skipped:+; $skipped}"
  fi
}

# Connects to 127.0.0.1:2525, waits for the 220 greeting, sends EHLO and wants a final 250 line.
probe_ehlo() {
  local fd line ok=1
  { exec {fd}<>/dev/tcp/127.0.0.1/2525; } 2>/dev/null || return 1
  if IFS= read -r -t 15 line <&"$fd" && [[ $line == 220* ]]; then
    printf 'EHLO fresh-machine-test.example\r\n' >&"$fd"
    while IFS= read -r -t 15 line <&"$fd"; do
      [[ $line == 250-* ]] && continue
      [[ $line == "250 "* ]] && ok=0
      break
    done
    printf 'QUIT\r\n' >&"$fd"
    IFS= read -r -t 5 line <&"$fd"
  fi
  exec {fd}>&-
  return $ok
}

if [ "${1:-}" = --inside ]; then
  shift
  inside "$@"
  exit 0
fi

# ---- outside: the host ----
[ "$(id -u)" = 0 ] || { echo "fresh-machine-test: run as root (debootstrap, chroot, mount)"; exit 1; }
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")/.." rev-parse --show-toplevel)
self=$(realpath -- "${BASH_SOURCE[0]}")

# shellcheck source=tools/lib/debian-mirror.sh
. "$(dirname "$self")/lib/debian-mirror.sh"
mirror=$(sources_uri bookworm)
mirror=${mirror:-http://deb.debian.org/debian}
security=$(sources_uri bookworm-security)
echo "== mirror $mirror, security ${security:-none}"

if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap
fi

work=$(mktemp -d "${TMPDIR:-/var/tmp}/ringmx-fresh-XXXXXX")
touch "$work/results"
child=
cleanup() {
  local rc=$? p
  set +e
  trap - EXIT INT TERM
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    # $child is `timeout`; its child is unshare, which blocks SIGTERM while it waits. SIGKILL it:
    # --kill-child then kills the namespace's pid 1, and with it every process in the namespace.
    for p in $(cat "/proc/$child/task/$child/children" 2>/dev/null); do kill -KILL "$p"; done
    wait "$child" 2>/dev/null
  fi
  echo
  local head
  head=$(sed -n 's/^head: //p' "$work/results")
  echo "== summary: checkout '$checkout_in_root' in a debootstrap bookworm root; commit ${head:-(none cloned)}"
  local verdict=PASS
  for stage in run-example test; do
    line=$(grep -a "^$stage: " "$work/results" | tail -1)
    if [ -z "$line" ]; then
      setup=$(grep -a '^setup: ' "$work/results" | tail -1)
      line="$stage: FAIL (${setup:-interrupted or out of time before it finished})"
    fi
    case "$line" in *": PASS"*) ;; *) verdict=FAIL ;; esac
    echo "fresh-machine-test: $line"
  done
  # The namespace's mounts vanished with it; this only guards against the unexpected.
  if findmnt -rn -o TARGET | grep -qF -- "$work/"; then
    echo "fresh-machine-test: mounts left under $work; unmounting"
    findmnt -rn -o TARGET | grep -F -- "$work/" | sort -r | while read -r m; do umount -l "$m"; done
  fi
  if [ "$verdict" = FAIL ] && [ "${RINGMX_FRESH_KEEP:-0}" = 1 ]; then
    echo "fresh-machine-test: kept $work"
  else
    rm -rf --one-file-system -- "$work"
  fi
  echo "fresh-machine-test: $verdict"
  [ "$verdict" = PASS ] && [ $rc = 0 ] && exit 0
  exit 1
}
trap cleanup EXIT
trap 'exit 130' INT TERM

total=$((1800 + ${RINGMX_FRESH_RUN_TIMEOUT:-2700} + ${RINGMX_FRESH_TEST_TIMEOUT:-9000}))
timeout -s KILL "$total" unshare --pid --mount-proc --propagation private --kill-child \
  bash "$self" --inside "$work" "$repo" "$mirror" "$security" &
child=$!
wait "$child" || true
child=

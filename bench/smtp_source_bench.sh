#!/usr/bin/env bash
# Measures ringmx (durable spool) with Postfix's smtp-source as the client, on loopback only:
# messages per second and server CPU per message at 1, 50 and 200 connections, one message per
# connection and many per connection. Every run is bounded in count and time. Prints a Markdown
# table; `stored` is what the server's queue grew by (`ringmx ctl stats` queue_messages). Postfix itself is never started: only its smtp-source test client is used.
#
# usage: bash bench/smtp_source_bench.sh [BUILD_DIR] [MESSAGE_BYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
size=${2:-1000}

if ! command -v smtp-source >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-source ]; then
  # Debian's postfix package ships smtp-source. "No configuration" keeps Postfix unconfigured and
  # stopped; we only want the client.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix
fi
PATH=$PATH:/usr/sbin
if [ ! -x "$build/tools/ringmx" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build" --target ringmx
fi

work=$(mktemp -d /tmp/ringmx-bench-XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"; wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/ringmx.toml" <<TOML
hostname = "mx.bench.test"
workers = 0
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[spool]
path = "$work/spool"
[control]
socket = "$work/control.sock"
[log]
file = "$work/ringmx.log"
TOML

"$build/tools/ringmx" serve -c "$work/ringmx.toml" 2>>"$work/stderr.log" &
server_pid=$!
for _ in $(seq 1 200); do
  grep -q "ringmx ready" "$work/ringmx.log" 2>/dev/null && break
  sleep 0.05
done
port=$(grep -o 'listening name=mx address=127.0.0.1:[0-9]*' "$work/ringmx.log" | head -1 | sed 's/.*://')
[ -n "$port" ] || { echo "ringmx did not start"; cat "$work/ringmx.log" "$work/stderr.log"; exit 1; }

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Messages in the server's queue (its index); nothing delivers them, so the queue only grows and a
# run's stored count is the difference. The queue is never cleared between runs.
committed() {
  timeout 5 "$build/tools/ringmx" ctl -s "$work/control.sock" --json stats | grep -o '"queue_messages":[0-9]*' \
    | cut -d: -f2
}

echo "| connections | messages/connection | messages | seconds | messages/s | server CPU ms/message | stored |"
echo "|---|---|---|---|---|---|---|"
run() {  # run CONNECTIONS MODE(one|many) MESSAGES
  local conc=$1 mode=$2 total=$3 flags=()
  [ "$mode" = many ] && flags+=(-d)
  local c0 t0 c1 t1 before
  before=$(committed)
  c0=$(cpu_ticks "$server_pid"); t0=$(date +%s.%N)
  timeout 300 smtp-source "${flags[@]}" -s "$conc" -m "$total" -l "$size" \
    -M bench.test -f sender@bench.test -t user@example.test "127.0.0.1:$port"
  t1=$(date +%s.%N); c1=$(cpu_ticks "$server_pid")
  local stored; stored=$(($(committed) - before))
  local per; [ "$mode" = many ] && per=$((total / conc)) || per=1
  awk -v c="$conc" -v p="$per" -v m="$total" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
      -v hz="$ticks" -v s="$stored" 'BEGIN {
        secs = t1 - t0; cpu_ms = (c1 - c0) * 1000 / hz;
        printf "| %d | %d | %d | %.2f | %.0f | %.3f | %d |\n", c, p, m, secs, m / secs, cpu_ms / m, s }'
}
run 1 one 2000
run 1 many 4000
run 50 one 10000
run 50 many 20000
run 200 one 10000
run 200 many 20000
echo
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), spool on $(findmnt -n -o FSTYPE -T "$work") ; commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); message payload $size bytes"

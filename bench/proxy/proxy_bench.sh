#!/usr/bin/env bash
# Issue 14's benchmark: the server's CPU per message with a PROXY protocol header on every
# connection against without. ringmx-bench sends the header as HAProxy's send-proxy(-v2) would
# (--proxy v1|v2, client 198.51.100.1-254); the server runs a listener with proxy_protocol = "any"
# trusting 127.0.0.0/8, or a plain one. The spool is "discard" so that the per-message cost the
# header could add is compared with the smallest per-message cost there is (no disk). Runs
# alternate (none, v1, v2) for --rounds rounds, each on a freshly started server, so drift shows.
#
# usage: bash bench/proxy/proxy_bench.sh [BUILD_DIR] [--total N] [--concurrency C] [--mpc M]
#            [--rounds R]
#   BUILD_DIR      a release build with tools/ringmx and bench/load/ringmx-bench (build/rel);
#                  configured and built if they are missing
#   --total        messages per run (default 50000); --concurrency connections (50);
#   --mpc          messages per connection (default 1: one header per message, the worst case)
#   --rounds       rounds of the three modes (3)
# Prints one line per run and a summary (median CPU per 1000 messages per mode). Loopback only;
# each run is bounded by ringmx-bench's --duration and a timeout; the servers are stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
build=build/rel
total=50000
conns=50
mpc=1
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --total) total=${2:?}; shift ;;
    --concurrency) conns=${2:?}; shift ;;
    --mpc) mpc=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    -h|--help) sed -n '9,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "proxy_bench.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
for v in "$total" "$conns" "$mpc" "$rounds"; do
  [[ $v =~ ^[1-9][0-9]{0,7}$ ]] || { echo "proxy_bench.sh: bad number $v" >&2; exit 2; }
done
if [ ! -x "$build/tools/ringmx" ] || [ ! -x "$build/bench/load/ringmx-bench" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGMX_BUILD_BENCH=ON >&2
  cmake --build "$build" -j2 --target ringmx ringmx-bench >&2
fi
ringmx=$repo/$build/tools/ringmx
bench=$repo/$build/bench/load/ringmx-bench
work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-proxy-bench-XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

run() {  # MODE (none | v1 | v2): starts a server, runs the generator, prints the JSON line
  local mode=$1 port
  port=$(/usr/bin/python3 "$repo/bench/compare_report.py" free-port)
  local listener_extra=''
  [ "$mode" = none ] || listener_extra=$'proxy_protocol = "any"\nproxy_trusted = ["127.0.0.0/8"]'
  cat >"$work/ringmx.toml" <<TOML
hostname = "mx.bench.test"
[[listener]]
name = "mx"
address = "127.0.0.1:$port"
tls = "none"
$listener_extra
[policy]
local_domains = ["example.test"]
[spool]
mode = "discard"
[limits]
max_sessions_per_client = 0
[timeouts]
greet_pause_ms = 0
TOML
  "$ringmx" serve -c "$work/ringmx.toml" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listener=mx" "$work/server.log" 2>/dev/null && break
    sleep 0.1
  done
  local proxy_args=()
  [ "$mode" = none ] || proxy_args=(--proxy "$mode")
  timeout 400 "$bench" --target "127.0.0.1:$port" --concurrency "$conns" \
    --messages-per-connection "$mpc" --total-messages "$total" --duration 360 \
    --server-pid "$server_pid" --json "${proxy_args[@]}"
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}

results=$work/results.tsv
: >"$results"
for round in $(seq 1 "$rounds"); do
  for mode in none v1 v2; do
    line=$(run "$mode")
    /usr/bin/python3 - "$mode" "$round" "$line" >>"$results" <<'PY'
import json, sys
mode, rnd, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ok, failed = r["messages"], r["messages_failed"] + r["sessions_failed"]
if failed or not ok:
    sys.exit(f"proxy_bench.sh: {mode} round {rnd}: {ok} messages, {failed} failed: {sys.argv[3]}")
cpu = r["server"]["cpu_s_per_1000_messages"]
print(f"{mode}\t{rnd}\t{ok}\t{cpu}\t{r['messages_per_s']}")
PY
    tail -1 "$results" | awk -F'\t' '{printf "round %s  %-4s  ok=%s  server CPU %s s per 1000 messages  %s msg/s\n", $2, $1, $3, $4, $5}'
  done
done
/usr/bin/python3 - "$results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {}
for mode, _, ok, cpu, _ in rows:
    by.setdefault(mode, []).append(float(cpu))
base = statistics.median(by["none"])
print("\n| header | runs | median server CPU per message | spread (min-max) | vs none |")
print("|---|---|---|---|---|")
for mode in ("none", "v1", "v2"):
    v = by[mode]
    m = statistics.median(v)
    print(f"| {mode} | {len(v)} | {m*1000:.2f} us | {min(v)*1000:.2f}-{max(v)*1000:.2f} us | {m/base:.3f} |")
PY

#!/usr/bin/env bash
# The server's CPU per message for variants of one setup, side by side: without anything
# (`none`), with a PROXY protocol header on every connection (`v1`, `v2`: issue 14) and with a
# milter that takes every message and changes nothing (`milter`: bench/milter/noop_milter.cc,
# negotiated as rspamd does; issue 13). ringmx-bench sends the header as HAProxy's
# send-proxy(-v2) would (--proxy v1|v2, clients 198.51.100.1-254) to a listener with
# proxy_protocol = "any" trusting 127.0.0.0/8. The spool is "discard" so that what a variant adds
# is compared with the smallest per-message cost there is (no disk). Runs alternate between the
# modes for --rounds rounds, each on a freshly started server, so drift shows.
#
# usage: bash bench/cpu_variants.sh [BUILD_DIR] [--modes none,v1,v2,milter] [--total N]
#            [--concurrency C] [--mpc M] [--rounds R]
#   BUILD_DIR      a release build with tools/ringmx, bench/load/ringmx-bench and
#                  bench/milter/ringmx-noop-milter (build/rel); configured and built if missing
#   --modes        which variants, in this order (none,v1,v2); the first is the baseline
#   --total        messages per run (default 50000); --concurrency connections (50);
#   --mpc          messages per connection (default 1: one header per message, the worst case
#                  for the PROXY header; the milter comparison uses 20, as MTAs send)
#   --rounds       rounds of the modes (3)
# Prints one line per run and a table (median CPU per message per mode, against the first).
# Loopback only; each run is bounded by ringmx-bench's --duration and a timeout; the servers and
# the milter are stopped by PID. Exits 1 if a run lost or failed messages.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=build/rel
total=50000
conns=50
mpc=1
rounds=3
modes=none,v1,v2
while [ $# -gt 0 ]; do
  case $1 in
    --total) total=${2:?}; shift ;;
    --concurrency) conns=${2:?}; shift ;;
    --mpc) mpc=${2:?}; shift ;;
    --rounds) rounds=${2:?}; shift ;;
    --modes) modes=${2:?}; shift ;;
    -h|--help) sed -n '11,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "cpu_variants.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
for v in "$total" "$conns" "$mpc" "$rounds"; do
  [[ $v =~ ^[1-9][0-9]{0,7}$ ]] || { echo "cpu_variants.sh: bad number $v" >&2; exit 2; }
done
IFS=, read -r -a mode_list <<<"$modes"
for m in "${mode_list[@]}"; do
  case $m in none|v1|v2|milter) ;; *) echo "cpu_variants.sh: unknown mode $m" >&2; exit 2 ;; esac
done
if [ ! -x "$build/tools/ringmx" ] || [ ! -x "$build/bench/load/ringmx-bench" ] ||
  [ ! -x "$build/bench/milter/ringmx-noop-milter" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGMX_BUILD_BENCH=ON >&2
  cmake --build "$build" -j2 --target ringmx ringmx-bench ringmx-noop-milter >&2
fi
ringmx=$repo/$build/tools/ringmx
bench=$repo/$build/bench/load/ringmx-bench
noop=$repo/$build/bench/milter/ringmx-noop-milter
work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-cpu-variants-XXXXXX")
server_pid=
milter_pid=
cleanup() {
  for p in $server_pid $milter_pid; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

milter_port=
if [[ ,$modes, == *,milter,* ]]; then
  milter_port=$(/usr/bin/python3 "$repo/bench/compare_report.py" free-port)
  "$noop" "$milter_port" 2>"$work/milter.log" &
  milter_pid=$!
  for _ in $(seq 1 50); do grep -q listening "$work/milter.log" && break; sleep 0.1; done
fi

run() {  # MODE: starts a server, runs the generator, prints the JSON line
  local mode=$1 port
  port=$(/usr/bin/python3 "$repo/bench/compare_report.py" free-port)
  local listener_extra='' tables=''
  case $mode in
    v1|v2) listener_extra=$'proxy_protocol = "any"\nproxy_trusted = ["127.0.0.0/8"]' ;;
    milter)
      listener_extra='milters = ["noop"]'
      tables=$'[[milter]]\nname = "noop"\naddress = "inet:127.0.0.1:'"$milter_port"'"' ;;
  esac
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
$tables
TOML
  "$ringmx" serve -c "$work/ringmx.toml" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 1 100); do
    grep -q "listener=mx" "$work/server.log" 2>/dev/null && break
    sleep 0.1
  done
  local proxy_args=()
  case $mode in v1|v2) proxy_args=(--proxy "$mode") ;; esac
  # The milter's own CPU, counted apart (its process tree, ns), around the run.
  local milter_before=0 milter_after=0
  [ -z "$milter_pid" ] || milter_before=$(/usr/bin/python3 "$repo/bench/compare_report.py" cpu-tree "$milter_pid")
  timeout 400 "$bench" --target "127.0.0.1:$port" --concurrency "$conns" \
    --messages-per-connection "$mpc" --total-messages "$total" --duration 360 \
    --server-pid "$server_pid" --json "${proxy_args[@]}" | tr -d '\n'
  [ -z "$milter_pid" ] || milter_after=$(/usr/bin/python3 "$repo/bench/compare_report.py" cpu-tree "$milter_pid")
  if [ "$mode" = milter ]; then echo " $((milter_after - milter_before))"; else echo " 0"; fi
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}

results=$work/results.tsv
: >"$results"
for round in $(seq 1 "$rounds"); do
  for mode in "${mode_list[@]}"; do
    line=$(run "$mode")
    /usr/bin/python3 - "$mode" "$round" "$line" >>"$results" <<'PY'
import json, sys
mode, rnd = sys.argv[1], sys.argv[2]
text, milter_ns = sys.argv[3].rsplit(" ", 1)
r = json.loads(text)
ok, failed = r["messages"], r["messages_failed"] + r["sessions_failed"]
if failed or not ok:
    sys.exit(f"cpu_variants.sh: {mode} round {rnd}: {ok} messages, {failed} failed: {sys.argv[3]}")
cpu = r["server"]["cpu_s_per_1000_messages"]
milter_cpu = int(milter_ns) / 1e9 * 1000 / ok  # s per 1000 messages
print(f"{mode}\t{rnd}\t{ok}\t{cpu}\t{r['messages_per_s']}\t{milter_cpu:.4f}")
PY
    tail -1 "$results" | awk -F'\t' '{printf "round %s  %-6s  ok=%s  server CPU %s s per 1000 messages  %s msg/s  milter CPU %s s per 1000\n", $2, $1, $3, $4, $5, $6}'
  done
done
/usr/bin/python3 - "$results" "$modes" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
modes = sys.argv[2].split(",")
by = {}
milter = {}
for mode, _, ok, cpu, _, mcpu in rows:
    by.setdefault(mode, []).append(float(cpu))
    milter.setdefault(mode, []).append(float(mcpu))
base = statistics.median(by[modes[0]])
print(f"\n| mode | runs | median server CPU per message | spread (min-max) | vs {modes[0]} | the milter's own CPU per message (median) |")
print("|---|---|---|---|---|---|")
for mode in modes:
    v = by[mode]
    m = statistics.median(v)
    mm = statistics.median(milter[mode])
    print(f"| {mode} | {len(v)} | {m*1000:.2f} us | {min(v)*1000:.2f}-{max(v)*1000:.2f} us | {m/base:.3f} | {f'{mm*1000:.2f} us' if mode == 'milter' else '-'} |")
PY

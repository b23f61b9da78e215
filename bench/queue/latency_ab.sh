#!/usr/bin/env bash
# One connection, one message per session, durable store: two ringmx binaries in turn (A B A B ...)
# under the same generator, so that a difference in the end-of-data-to-250 latency is not the
# machine's load moving between two separate runs. Loopback only; each run is bounded
# (--total-messages, --duration, timeout). Prints one line per run and the medians.
#
# usage: bash bench/queue/latency_ab.sh RINGMX_A RINGMX_B RINGMX_BENCH [ROUNDS] [MESSAGES]
#   e.g. A = a build of the commit before the queue log (b35d1f5, spool/new/ files),
#        B = the queue log; ROUNDS (3) runs of MESSAGES (2000) sessions each per binary.
set -euo pipefail
a=${1:?RINGMX_A}
b=${2:?RINGMX_B}
bench=${3:?RINGMX_BENCH}
rounds=${4:-3}
messages=${5:-2000}
work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-ab-XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

run() {  # LABEL BINARY ROUND
  local dir=$work/$1-$3
  mkdir -p "$dir/spool"
  cat >"$dir/ringmx.toml" <<TOML
hostname = "mx.bench.test"
workers = 0
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[spool]
path = "$dir/spool"
[log]
file = "$dir/ringmx.log"
TOML
  "$2" serve -c "$dir/ringmx.toml" 2>"$dir/stderr.log" &
  pid=$!
  local port=''
  for _ in $(seq 1 200); do
    port=$(grep -o 'listening name=mx address=127.0.0.1:[0-9]*' "$dir/ringmx.log" 2>/dev/null |
      head -1 | sed 's/.*://') || true
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "latency_ab: $1 did not start" >&2; cat "$dir/stderr.log" >&2; exit 1; }
  local out load
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$(timeout 60 "$bench" --target "127.0.0.1:$port" --threads 1 --concurrency 1 \
    --messages-per-connection 1 --total-messages "$messages" --duration 25 --size 1024 \
    --tls none --json | tail -n 1)
  kill -TERM "$pid"; wait "$pid" || true; pid=
  python3 - "$1" "$3" "$load" "$out" <<'PY'
import json, sys
label, rnd, load, out = sys.argv[1:5]
j = json.loads(out)
lat = j["latency_us"]["data_to_250"]
print(f"{label}\t{rnd}\t{j['messages']}\t{j['messages_failed']}\t{j['messages_per_s']:.0f}\t"
      f"{lat['p50'] / 1e3:.3f}\t{lat['p99'] / 1e3:.3f}\t{load}")
PY
}

echo -e "binary\tround\tmessages\tfailed\tmsg/s\tp50 ms\tp99 ms\tload1"
for r in $(seq 1 "$rounds"); do
  run A "$a" "$r"
  run B "$b" "$r"
done | tee "$work/results.tsv"
python3 - "$work/results.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
for label in ("A", "B"):
    mine = [r for r in rows if r[0] == label]
    print(f"median {label}: {statistics.median(float(r[4]) for r in mine):.0f} msg/s, "
          f"p50 {statistics.median(float(r[5]) for r in mine):.3f} ms, "
          f"p99 {statistics.median(float(r[6]) for r in mine):.3f} ms")
PY

#!/usr/bin/env bash
# Issue 12's delivery target, end to end on loopback: ringmx-bench -> SERVER -> smtp-sink, where
# SERVER is ringmx (durable queue log, one [[route]] "*" to the sink) or a private Postfix
# instance relaying everything to the same sink (relayhost = [127.0.0.1]:PORT, durable queue).
# For each server: the generator sends --total messages over --concurrency connections of
# --mpc messages each; the script waits until the server's queue is empty and the sink counted
# every message, sampling the queue meanwhile (does delivery keep up with intake?). It reports
# wall time, messages/s end to end, the server's CPU (every process and thread: a cgroup v1
# cpuacct group made for it before it starts, else /proc), CPU per message (intake + delivery)
# and the peak queue; bench/delivery/relay_report.py renders the table and ringmx / Postfix.
#
# usage: bash bench/delivery/relay_bench.sh [BUILD_DIR] [--total N] [--concurrency C] [--mpc M]
#            [--size BYTES] [--rate R] [--max-connections N] [--servers ringmx,postfix]
#            [--postfix-concurrency N] [--out FILE] [--drain-cap S] [--keep]
#   BUILD_DIR      a release build with tools/ringmx and bench/load/ringmx-bench (build/rel);
#                  configured (-DRINGMX_BUILD_BENCH=ON) and built (ninja -j2) if they are missing
#   --total        messages per server (default 20000: 200 connections x 20 messages, 5 rounds)
#   --concurrency  generator connections (200); --mpc messages per connection (20)
#   --size         generated message size (1024)
#   --rate         open loop instead: R new sessions per second (--concurrency caps the open ones)
#   --max-connections  ringmx's route max_connections, per shard (default: the default, 20)
#   --postfix-concurrency  Postfix's smtp_destination_concurrency_limit (default: its default, 20)
#   --servers      which servers, in this order (ringmx,postfix)
#   --out          where the Markdown report goes besides stdout (/tmp/ringmx-relay-latest.md)
#   --drain-cap    seconds to wait for the queue to drain after the generator (180)
#   --keep         keep the work directory (samples, logs, configs) and print its path
#   (relative paths are taken from the repository root)
#
# Loopback only; every wait is bounded. Needs root (cgroup, Postfix, smtp-sink -u nobody);
# installs Debian's postfix if missing. Exits 1 if a run failed or lost messages, 2 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
started_s=$(date +%s)

build=build/rel
out=/tmp/ringmx-relay-latest.md
total=20000
conns=200
mpc=20
size=1024
servers='ringmx,postfix'
drain_cap=180
rate=''
max_conns=''
pf_conc=''
keep=0
usage() { sed -n '12,27p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --total) total=${2:?}; shift ;;
    --concurrency) conns=${2:?}; shift ;;
    --mpc) mpc=${2:?}; shift ;;
    --size) size=${2:?}; shift ;;
    --rate) rate=${2:?}; shift ;;
    --max-connections) max_conns=${2:?}; shift ;;
    --postfix-concurrency) pf_conc=${2:?}; shift ;;
    --servers) servers=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    --drain-cap) drain_cap=${2:?}; shift ;;
    --keep) keep=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "relay_bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
case $out in /*) ;; *) out=$repo/$out ;; esac
for v in "$total" "$conns" "$mpc" "$size" "$drain_cap" $rate $max_conns $pf_conc; do
  [[ $v =~ ^[1-9][0-9]{0,7}$ ]] || { echo "relay_bench.sh: bad number $v" >&2; exit 2; }
done
IFS=, read -r -a server_list <<<"$servers"
for s in "${server_list[@]}"; do
  case $s in ringmx|postfix) ;; *) echo "relay_bench.sh: unknown server $s" >&2; exit 2 ;; esac
done
[ "$(id -u)" = 0 ] || { echo "relay_bench.sh: must run as root (Postfix, smtp-sink, cgroup)" >&2; exit 2; }
gen_cap=$((total / 200 + 60))  # generator --duration; the shell's timeout is 30 s more

# ---- tools --------------------------------------------------------------------------------------
PATH=$PATH:/usr/sbin:/usr/bin
if ! command -v postconf >/dev/null 2>&1 || ! command -v smtp-sink >/dev/null 2>&1; then
  # Debian's postfix package; "No configuration" leaves the system instance unconfigured and off.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix
fi
for tool in python3 timeout findmnt postfix postconf smtp-sink; do
  command -v "$tool" >/dev/null 2>&1 || { echo "relay_bench.sh: $tool not found" >&2; exit 2; }
done
if [ ! -x "$build/tools/ringmx" ] || [ ! -x "$build/bench/load/ringmx-bench" ]; then
  echo "relay_bench.sh: building ringmx and ringmx-bench in $build" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGMX_BUILD_BENCH=ON \
    -DRINGMX_BUILD_TESTS=OFF >&2
  ninja -C "$build" -j2 ringmx ringmx-bench >&2
fi
helper=$repo/bench/compare_report.py  # free-port, cpu-tree
report=$repo/bench/delivery/relay_report.py

# ---- work dir, cgroups, cleanup -----------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-relay-XXXXXX")
chmod 755 "$work"  # Postfix's unprivileged daemons reach their queue below it
mkdir -p "$work/bin" "$work/runs"
: >"$work/results.tsv"

cg_root=
cg_parent=/sys/fs/cgroup/cpuacct
if [ -d "$cg_parent" ] && mkdir "$cg_parent/ringmx-relay-$$" 2>/dev/null; then
  cg_root=$cg_parent/ringmx-relay-$$
  cpu_method="cgroup v1 cpuacct (cpuacct.usage of a cgroup made for the server before it starts:
  every process and thread it has or had; for Postfix master, smtpd, cleanup, qmgr, smtp,
  trivial-rewrite, scache, anvil, postlogd... all of them)"
else
  cpu_method="/proc: utime+stime+cutime+cstime summed over the server's process tree (a child
  that exited counts once its parent reaped it)"
fi

# A "unit" is a started program: NAME PID DIR CGROUP. The sink and the server are two units.
declare -A u_pid u_dir u_cg
spawn() {  # CGROUP CMD...: replaces this (sub)shell with CMD, first moving it into CGROUP
  local cg=$1; shift
  if [ -n "$cg" ]; then echo "$BASHPID" >"$cg/cgroup.procs"; fi
  exec "$@"
}
new_cg() {  # NAME -> prints the cgroup path ("" without cgroups)
  if [ -n "$cg_root" ]; then mkdir "$cg_root/$1" && echo "$cg_root/$1"; fi
}
cpu_ns() {  # NAME
  if [ -n "${u_cg[$1]:-}" ]; then cat "${u_cg[$1]}/cpuacct.usage"
  else python3 "$helper" cpu-tree "${u_pid[$1]}"; fi
}
stop_unit() {  # NAME
  local name=$1 pid=${u_pid[$1]:-}
  if [ "$name" = postfix ] && [ -n "${u_dir[$name]:-}" ]; then
    timeout 60 postfix -c "${u_dir[$name]}/etc" stop >>"${u_dir[$name]}/control.log" 2>&1 || true
  elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "relay_bench.sh: $name (pid $pid) did not stop in 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  fi
  local cg=${u_cg[$name]:-}
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    for _ in $(seq 1 100); do [ -s "$cg/cgroup.procs" ] || break; sleep 0.1; done
    rmdir "$cg" 2>/dev/null || echo "relay_bench.sh: cgroup $cg still has processes" >&2
  fi
  u_pid[$name]='' u_dir[$name]='' u_cg[$name]=''
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [ -n "${sampler_pid:-}" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
  for n in ringmx postfix sink; do stop_unit "$n"; done
  if [ -n "$cg_root" ]; then rmdir "$cg_root" 2>/dev/null || true; fi
  if [ "$keep" = 1 ]; then echo "relay_bench.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
provenance="repository HEAD $commit$([ "$dirty" != 0 ] && echo " ($dirty tracked files modified)"); binaries from $build, built $(date -u -r "$build/tools/ringmx" '+%Y-%m-%d %H:%M UTC')"
cp "$build/tools/ringmx" "$build/bench/load/ringmx-bench" "$work/bin/"
ringmx=$work/bin/ringmx
bench=$work/bin/ringmx-bench

smtp_ready() {  # PORT: answers 220
  # shellcheck disable=SC2016  # expanded by the inner bash
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r line <&3 &&
    printf "QUIT\r\n" >&3 && [ "${line:0:3}" = 220 ]' _ "$1" 2>/dev/null
}
wait_smtp() {  # PORT PID
  for _ in $(seq 1 100); do
    kill -0 "$2" 2>/dev/null || return 1
    smtp_ready "$1" && return 0
    sleep 0.1
  done
  return 1
}

# ---- the sink (the next hop of both servers) ----------------------------------------------------
# One smtp-sink for the whole script, in a cgroup of its own (its CPU is reported, not counted for
# either server). -c: running counters on stdout (sessions, QUITs, messages). PIPELINING and
# 8BITMIME are announced by default; no STARTTLS (both servers are told not to try it).
start_sink() {
  u_dir[sink]=$work/sink
  mkdir -p "${u_dir[sink]}"
  sink_port=$(python3 "$helper" free-port)
  u_cg[sink]=$(new_cg sink)
  spawn "${u_cg[sink]}" smtp-sink -c -u nobody "127.0.0.1:$sink_port" 1024 \
    >"${u_dir[sink]}/counters" 2>"${u_dir[sink]}/stderr.log" &
  u_pid[sink]=$!
  wait_smtp "$sink_port" "${u_pid[sink]}"
}
sink_messages() {
  local n
  n=$(tr '\r' '\n' <"${u_dir[sink]}/counters" | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2) || true
  echo "${n:-0}"
}

# ---- ringmx -------------------------------------------------------------------------------------
start_ringmx() {
  local d=$work/ringmx
  u_dir[ringmx]=$d
  mkdir -p "$d/spool"
  cat >"$d/ringmx.toml" <<TOML
hostname = "mx.bench.test"
workers = 0
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[spool]
path = "$d/spool"
mode = "durable"
[control]
socket = "$d/control.sock"
[log]
file = "$d/ringmx.log"
[[route]]
domains = ["*"]
next_hop = ["smtp:[127.0.0.1]:$sink_port"]
tls = "none"
$([ -n "$max_conns" ] && echo "max_connections = $max_conns")
[delivery]
bounce_next_hop = "smtp:[127.0.0.1]:$sink_port"
TOML
  u_cg[ringmx]=$(new_cg ringmx)
  spawn "${u_cg[ringmx]}" "$ringmx" serve -c "$d/ringmx.toml" 2>>"$d/stderr.log" &
  u_pid[ringmx]=$!
  for _ in $(seq 1 200); do
    grep -q "ringmx ready" "$d/ringmx.log" 2>/dev/null && break
    kill -0 "${u_pid[ringmx]}" 2>/dev/null || break
    sleep 0.05
  done
  srv_port=$(grep -o 'listening name=mx address=127.0.0.1:[0-9]*' "$d/ringmx.log" 2>/dev/null \
    | head -1 | sed 's/.*://') || true
  [ -n "$srv_port" ] && wait_smtp "$srv_port" "${u_pid[ringmx]}"
}
ringmx_stats() { timeout 5 "$ringmx" ctl -s "${u_dir[ringmx]}/control.sock" --json stats 2>/dev/null || true; }
json_key() {  # KEY < JSON
  local n
  n=$(grep -o "\"$1\":[0-9]*" | cut -d: -f2) || true
  echo "${n:-}"
}

# ---- Postfix ------------------------------------------------------------------------------------
start_postfix() {
  local d=$work/postfix q=$work/postfix/queue
  u_dir[postfix]=$d
  mkdir -p "$d/etc" "$q" "$d/data"
  chown postfix "$d/data"
  srv_port=$(python3 "$helper" free-port)
  # As bench/compare.sh's instance (private, durable queue, chroot off, no DNS, the limits a
  # benchmarking operator would lift), but relaying: example.test is a relay domain and all mail
  # goes through smtp(8) to the sink. Connection caching, destination concurrency (20) and the
  # rest of the smtp(8) client are Postfix's defaults.
  cat >"$d/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $q
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.bench.test
mydomain = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains = example.test
# every message is relayed to the sink, no MX lookup
relayhost = [127.0.0.1]:$sink_port
default_transport = smtp
relay_transport = smtp
local_recipient_maps =
alias_maps =
alias_database =
biff = no
# 200 concurrent smtpd processes plus the rest (default 100)
default_process_limit = 250
# no inbound flow control pause while qmgr catches up (default 1s)
in_flow_delay = 0
# no reverse DNS of the client, no DNS in the SMTP client
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_tls_security_level = none
# logging into a file of this instance (postlogd); counts the deliveries
maillog_file = $d/maillog
maillog_file_prefixes = $d
$([ -n "$pf_conc" ] && echo "smtp_destination_concurrency_limit = $pf_conc")
CF
  cat >"$d/etc/master.cf" <<CF
127.0.0.1:$srv_port inet n - n - - smtpd
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
smtp       unix  - - n - - smtp
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
CF
  : >"$d/maillog"
  u_cg[postfix]=$(new_cg postfix)
  local rc=0
  (spawn "${u_cg[postfix]}" postfix -c "$d/etc" start) >>"$d/control.log" 2>&1 || rc=$?
  u_pid[postfix]=$(tr -dc '0-9' <"$q/pid/master.pid" 2>/dev/null) || true
  [ "$rc" = 0 ] && [ -n "${u_pid[postfix]}" ] && wait_smtp "$srv_port" "${u_pid[postfix]}"
}
postfix_sent() { grep -c ' status=sent ' "${u_dir[postfix]}/maillog" || true; }
postfix_queued() {
  local q=${u_dir[postfix]}/queue
  find "$q/incoming" "$q/active" "$q/deferred" "$q/hold" "$q/maildrop" -type f 2>/dev/null | wc -l
}

# ---- one run ------------------------------------------------------------------------------------
queued_now() {  # SERVER
  case $1 in
    ringmx) ringmx_stats | json_key queue_messages ;;
    postfix) postfix_queued ;;
  esac
}
# Background: one line every 0.1 s, "ms_since_start queued sink_messages", until STOP_FILE
# appears or CAP_S passed.
sample() {  # SERVER FILE STOP_FILE CAP_S T0_NS
  local end=$((SECONDS + $4)) t
  while [ $SECONDS -lt "$end" ] && [ ! -e "$3" ]; do
    t=$(( ($(date +%s%N) - $5) / 1000000 ))
    echo "$t $(queued_now "$1") $(sink_messages)" >>"$2"
    sleep 0.1
  done
}

run_server() {  # SERVER
  local s=$1 rc=0 note=''
  srv_port=''
  echo "relay_bench.sh: starting $s" >&2
  local started=0
  case $s in
    ringmx) start_ringmx && started=1 ;;
    postfix) start_postfix && started=1 ;;
  esac
  if [ "$started" = 0 ]; then
    echo "relay_bench.sh: $s did not start" >&2
    tail -n 5 "${u_dir[$s]}"/*.log >&2 || true
    printf '%s\tskip\t\t\t\t\t\t\t\t\t%s\n' "$s" "did not start" >>"$work/results.tsv"
    stop_unit "$s"
    return
  fi
  local sink0 cpu0 sinkcpu0 t0 t_gen t_done got queued sent stats_json=''
  sink0=$(sink_messages)
  cpu0=$(cpu_ns "$s"); sinkcpu0=$(cpu_ns sink)
  local -a cmd=("$bench" --target "127.0.0.1:$srv_port" --threads 1 --concurrency "$conns"
    --messages-per-connection "$mpc" --total-messages "$total" --duration "$gen_cap"
    --size "$size" --json)
  if [ -n "$rate" ]; then cmd+=(--rate "$rate"); fi
  gen_cmd="ringmx-bench ${cmd[*]:1}"
  t0=$(date +%s%N)
  rm -f "$work/runs/$s.stop"
  sample "$s" "$work/runs/$s.samples" "$work/runs/$s.stop" $((gen_cap + 30 + drain_cap + 10)) "$t0" &
  sampler_pid=$!
  timeout $((gen_cap + 30)) "${cmd[@]}" >"$work/runs/$s.json" 2>"$work/runs/$s.err" || rc=$?
  t_gen=$(date +%s%N)
  got=$(grep -o '"messages":[0-9]*' "$work/runs/$s.json" | cut -d: -f2) || true
  got=${got:-0}
  # Drained: the server's queue is empty and the sink has every message the generator got a 250
  # for (ringmx's queue_messages counts messages not yet final; Postfix's, its queue files).
  local deadline=$((SECONDS + drain_cap)) drained=0
  while [ $SECONDS -lt $deadline ]; do
    queued=$(queued_now "$s")
    if [ "${queued:-x}" = 0 ] && [ $(($(sink_messages) - sink0)) -ge "$got" ]; then drained=1; break; fi
    sleep 0.05
  done
  t_done=$(date +%s%N)
  touch "$work/runs/$s.stop"
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=''
  sleep 0.3  # let the last replies and log lines settle (CPU read after)
  local cpu1 sinkcpu1 sink1
  cpu1=$(cpu_ns "$s"); sinkcpu1=$(cpu_ns sink); sink1=$(sink_messages)
  [ "$drained" = 1 ] || note="not drained after ${drain_cap} s: queue ${queued:-?}, sink $((sink1 - sink0)) of $got"
  # Where the CPU went, by thread or process name: every task still alive in the cgroup (or
  # ringmx's threads without one); processes that already exited are missing here.
  python3 "$report" breakdown "${u_cg[$s]:-}" "${u_pid[$s]}" >"$work/runs/$s.breakdown" || true
  case $s in
    ringmx)
      stats_json=$(ringmx_stats)
      echo "$stats_json" >"$work/runs/ringmx.stats.json"
      note="${note:+$note; }log status=sent: $(grep -c ' status=sent ' "${u_dir[ringmx]}/ringmx.log" || true)"
      ;;
    postfix)
      sent=$(postfix_sent)
      grep -oE 'postfix/[a-z-]+\[' "${u_dir[postfix]}/maillog" | sort | uniq -c \
        >"$work/runs/postfix.procs" || true
      note="${note:+$note; }maillog status=sent: $sent"
      local problems
      problems=$(grep -cE 'postfix/[a-z-]+\[[0-9]+\]: (warning|error|fatal|panic):' \
        "${u_dir[postfix]}/maillog" || true)
      [ "$problems" = 0 ] || note="${note:+$note; }$problems warning/error lines in the Postfix log"
      ;;
  esac
  if ! kill -0 "${u_pid[$s]}" 2>/dev/null; then note="${note:+$note; }server died during the run"; fi
  # server rc got t0 t_gen t_done cpu_ns sink_msgs sink_cpu_ns drained note samples json stats
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$rc" "$got" "$t0" \
    "$t_gen" "$t_done" "$((cpu1 - cpu0))" "$((sink1 - sink0))" "$((sinkcpu1 - sinkcpu0))" \
    "$drained" "$note" "$work/runs/$s.samples" "$work/runs/$s.json" \
    "$work/runs/$s.stats.json" >>"$work/results.tsv"
  printf 'relay_bench.sh: %-7s rc=%s accepted=%s sink=%s drained=%s cpu=%s ms\n' "$s" "$rc" "$got" \
    "$((sink1 - sink0))" "$drained" "$(((cpu1 - cpu0) / 1000000))" >&2
  case $s in
    ringmx) cp "$work/ringmx/ringmx.toml" "$work/runs/ringmx.toml" ;;
    postfix) postconf -c "${u_dir[postfix]}/etc" -n >"$work/runs/postfix.postconf" 2>&1 || true ;;
  esac
  stop_unit "$s"
}

start_sink || { echo "relay_bench.sh: smtp-sink did not start" >&2; exit 2; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for s in "${server_list[@]}"; do run_server "$s"; done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stop_unit sink

elapsed_s=$(($(date +%s) - started_s))
{
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'); whole script ${elapsed_s} s"
  echo "- $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
  # shellcheck disable=SC1091
  echo "- Linux $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- load average before / after (the machine is shared): $load_before / $load_after"
  echo "- spool and Postfix queue: $(findmnt -n -o FSTYPE,SOURCE -T "$work" | awk '{print $1 " on " $2}')"
  echo "- ringmx: $provenance; workers = 0 ($(nproc) shards), durable queue log, one route \"*\" to the sink, tls = \"none\", max_connections ${max_conns:-20} per shard"
  echo "- Postfix $(postconf -d mail_version 2>/dev/null | sed 's/.*= //') (Debian package) relaying with relayhost = [127.0.0.1]:SINK, smtp_destination_concurrency_limit ${pf_conc:-20}; smtp-sink from the same package as the next hop of both"
  echo "- generator: \`$gen_cmd\` (1 thread, $([ -n "$rate" ] && echo "open loop, $rate sessions/s" || echo "closed loop"), PIPELINING, 1 recipient)"
  echo "- server CPU: $cpu_method; read before the generator starts and after the queue drained"
} >"$work/machine.md"
mkdir -p "$(dirname "$out")"
status=0
python3 "$report" "$work" "$out" || status=$?
echo "relay_bench.sh: report in $out (${elapsed_s} s)" >&2
exit "$status"

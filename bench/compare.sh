#!/usr/bin/env bash
# Side by side on loopback, under the same generator (ringmx-bench) and the same settings (DESIGN.md
# section 9): ringmx with its durable queue log, a private Postfix instance (durable queue, discard
# transport), Postfix's smtp-sink (protocol only, nothing stored) and ringmx in spool discard mode.
# Each server runs 1, 50 and 200 connections, 1 and 20 messages per connection, plain and
# STARTTLS (or only the --points given); every run is bounded by --total-messages and --duration and wrapped in `timeout`.
# Reports messages/s and server CPU per message (all processes and threads of the server, from a
# cpuacct cgroup when one can be made, else from /proc), the ratios to Postfix, the machine and
# the exact generator commands, as a Markdown table on stdout and in --out.
#
# usage: bash bench/compare.sh [BUILD_DIR | --head] [--quick] [--out FILE] [--size BYTES]
#                              [--servers ringmx-durable,postfix,smtp-sink,ringmx-discard]
#                              [--points TLS/CONNECTIONS/MESSAGES_PER_CONNECTION,...] [--scale K]
#   BUILD_DIR  a release build with tools/ringmx and bench/load/ringmx-bench (build/release);
#              configured and built (ninja -j2) if the binaries are missing
#   --head     instead, build the committed HEAD (git archive, ninja -j2) in the temp dir
#   --quick    about a tenth of the messages and a 5 s cap per run (also RINGMX_COMPARE_QUICK=1)
#   --out      where the report goes besides stdout (/tmp/ringmx-compare-latest.md)
#   --points   only these points of the matrix, in this order, e.g. none/200/20,none/1/1
#              (TLS none|starttls; default: all 12, plain then starttls, 1/50/200 x 1/20)
#   --scale    K times the messages of every run (default 1: 2,000-20,000 plain); the 25 s cap stays
#   (relative paths are taken from the repository root)
#
# Exits 1 if any run failed (the table shows it as **ERR**), 2 on bad usage or setup.
# Needs root (cgroup, Postfix, smtp-sink -u nobody); installs Debian's postfix if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started_s=$(date +%s)

build=build/release
out=/tmp/ringmx-compare-latest.md
quick=${RINGMX_COMPARE_QUICK:-0}
head=0
size=1024
servers='ringmx-durable,postfix,smtp-sink,ringmx-discard'
points=''
scale=1
usage() { sed -n '11,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --head) head=1 ;;
    --out) out=${2:?--out needs a file}; shift ;;
    --size) size=${2:?--size needs a number}; shift ;;
    --servers) servers=${2:?--servers needs a list}; shift ;;
    --points) points=${2:?--points needs a list}; shift ;;
    --scale) scale=${2:?--scale needs a number}; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
case $out in /*) ;; *) out=$repo/$out ;; esac
[[ $scale =~ ^[1-9][0-9]{0,2}$ ]] || { echo "compare.sh: --scale wants 1-999" >&2; exit 2; }
IFS=, read -r -a server_list <<<"$servers"
for s in "${server_list[@]}"; do
  case $s in ringmx-durable|postfix|smtp-sink|ringmx-discard) ;;
    *) echo "compare.sh: unknown server $s" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "compare.sh: must run as root (Postfix, smtp-sink, cgroup)" >&2; exit 2; }

# ---- the matrix ---------------------------------------------------------------------------------
point_list=()
if [ -n "$points" ]; then
  IFS=, read -r -a point_list <<<"$points"
  for p in "${point_list[@]}"; do
    [[ $p =~ ^(none|starttls)/[1-9][0-9]*/[1-9][0-9]*$ ]] ||
      { echo "compare.sh: bad point $p (want TLS/CONNECTIONS/MESSAGES_PER_CONNECTION)" >&2; exit 2; }
  done
else
  for tls in none starttls; do
    for conns in 1 50 200; do
      for mpc in 1 20; do point_list+=("$tls/$conns/$mpc"); done
    done
  done
fi
if [ "$quick" = 1 ]; then duration=5 drain_cap=30; else duration=25 drain_cap=120; fi
total_for() {  # TLS CONNECTIONS MESSAGES_PER_CONNECTION -> --total-messages
  local n
  case "$1/$2/$3" in
    none/1/1) n=2000 ;;
    none/1/*) n=4000 ;;
    none/*/1) n=10000 ;;
    none/*) n=20000 ;;
    */1/1) n=500 ;;
    */1/*) n=2000 ;;
    */*/1) n=3000 ;;
    *) n=10000 ;;
  esac
  [ "$quick" = 1 ] && n=$((n / 10))
  n=$((n * scale))
  echo "$n"
}

# ---- tools --------------------------------------------------------------------------------------
PATH=$PATH:/usr/sbin:/usr/bin
if ! command -v postconf >/dev/null 2>&1 || ! command -v smtp-sink >/dev/null 2>&1; then
  # Debian's postfix package; "No configuration" leaves the system instance unconfigured and off.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix
fi
for tool in openssl python3 timeout findmnt postfix postconf postqueue smtp-sink; do
  command -v "$tool" >/dev/null 2>&1 || { echo "compare.sh: $tool not found" >&2; exit 2; }
done
if [ "$head" = 0 ] && { [ ! -x "$build/tools/ringmx" ] || [ ! -x "$build/bench/load/ringmx-bench" ]; }; then
  echo "compare.sh: building ringmx and ringmx-bench in $build" >&2
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRINGMX_BUILD_BENCH=ON \
    -DRINGMX_BUILD_TESTS=OFF >&2
  ninja -C "$build" -j2 ringmx ringmx-bench >&2
fi
helper=$repo/bench/compare_report.py

# ---- work dir, cleanup --------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/ringmx-compare-XXXXXX")
chmod 755 "$work"  # Postfix's unprivileged daemons reach their queue below it
mkdir -p "$work/runs" "$work/bin"
: >"$work/results.tsv"

cg_root=
cg_parent=/sys/fs/cgroup/cpuacct
if [ -d "$cg_parent" ] && mkdir "$cg_parent/ringmx-compare-$$" 2>/dev/null; then
  cg_root=$cg_parent/ringmx-compare-$$
  cpu_method="cgroup v1 cpuacct (cpuacct.usage of a cgroup made for the server before it starts:
  every process and thread it has or had, io_uring workers and Postfix's children included)"
else
  cpu_method="/proc: utime+stime+cutime+cstime summed over the server's process tree (a child
  that exited counts once its parent reaped it)"
fi

srv_name='' srv_pid='' srv_port='' srv_cg='' srv_dir=''
stop_server() {
  local pid=$srv_pid
  if [ "$srv_name" = postfix ] && [ -n "$srv_dir" ]; then
    timeout 60 postfix -c "$srv_dir/etc" stop >>"$srv_dir/control.log" 2>&1 || true
  elif [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "compare.sh: $srv_name (pid $pid) did not stop in 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true  # reaps ringmx and smtp-sink; Postfix's master is not ours
  fi
  if [ -n "$srv_cg" ] && [ -d "$srv_cg" ]; then
    for _ in $(seq 1 50); do [ -s "$srv_cg/cgroup.procs" ] || break; sleep 0.1; done
    rmdir "$srv_cg" 2>/dev/null || echo "compare.sh: cgroup $srv_cg still has processes" >&2
  fi
  srv_name='' srv_pid='' srv_port='' srv_cg='' srv_dir=''
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  stop_server
  if [ -n "$cg_root" ]; then rmdir "$cg_root" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The repository as it was when we started (others may commit while we run).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)
if [ "$head" = 1 ]; then
  echo "compare.sh: building commit $commit (git archive) in $work/build" >&2
  mkdir "$work/src"
  git archive "$commit" | tar -x -C "$work/src"
  if ! { cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DRINGMX_BUILD_BENCH=ON -DRINGMX_BUILD_TESTS=OFF &&
      ninja -C "$work/build" -j2 ringmx ringmx-bench; } >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    echo "compare.sh: build of $commit failed" >&2
    exit 2
  fi
  build=$work/build
  provenance="commit $commit, a clean \`git archive\` of HEAD built by this script (CMake Release)"
else
  build_src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" 2>/dev/null) || true
  provenance="repository HEAD $commit$([ "$dirty" != 0 ] && echo " ($dirty tracked files modified in the working tree)"); binaries from $build, built $(date -u -r "$build/tools/ringmx" '+%Y-%m-%d %H:%M UTC') from the sources in ${build_src:-unknown}"
fi
# Private copies: a rebuild of BUILD_DIR during the run does not mix two binaries in one report.
cp "$build/tools/ringmx" "$build/bench/load/ringmx-bench" "$work/bin/"
ringmx=$work/bin/ringmx
bench=$work/bin/ringmx-bench

# Replaces this (sub)shell with "$@", first moving it into the server's cgroup if there is one, so
# that every process and thread the server makes is accounted there.
spawn() {
  if [ -n "$srv_cg" ]; then echo "$BASHPID" >"$srv_cg/cgroup.procs"; fi
  exec "$@"
}

server_cpu_ns() {
  if [ -n "$srv_cg" ]; then cat "$srv_cg/cpuacct.usage"; else python3 "$helper" cpu-tree "$srv_pid"; fi
}

# SMTP greeting check: succeeds once PORT answers 220.
smtp_ready() {
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

# ---- certificates -------------------------------------------------------------------------------
mkdir -p "$work/certs"
openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
  -subj /CN=mx.bench.test -addext subjectAltName=DNS:mx.bench.test \
  -keyout "$work/certs/key.pem" -out "$work/certs/fullchain.pem" 2>/dev/null
chmod 644 "$work/certs/key.pem"  # only inside our 0755 temp dir; Postfix reads it as root anyway

tls_facts=()
note_tls() {  # what a STARTTLS handshake with the running server negotiates
  local facts
  facts=$(timeout 5 openssl s_client -brief -starttls smtp -connect "127.0.0.1:$srv_port" \
    </dev/null 2>&1 | grep -E '^(Protocol version|Ciphersuite|Server Temp Key|Peer signature type)' \
    | sed 's/^[^:]*: //' | paste -sd ' ' -) || true
  tls_facts+=("$srv_name: ${facts:-handshake check failed}")
}

# ---- servers ------------------------------------------------------------------------------------
start_ringmx() {  # durable|discard
  local mode=$1
  srv_dir=$work/ringmx-$mode
  mkdir -p "$srv_dir/spool"
  cat >"$srv_dir/ringmx.toml" <<TOML
hostname = "mx.bench.test"
workers = 0
[[listener]]
name = "mx"
address = "127.0.0.1:0"
tls = "starttls"
[tls]
cert = "$work/certs/fullchain.pem"
key = "$work/certs/key.pem"
[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[spool]
path = "$srv_dir/spool"
mode = "$mode"
[control]
socket = "$srv_dir/control.sock"
[log]
file = "$srv_dir/ringmx.log"
TOML
  spawn "$ringmx" serve -c "$srv_dir/ringmx.toml" 2>>"$srv_dir/stderr.log" &
  srv_pid=$!
  for _ in $(seq 1 200); do
    grep -q "ringmx ready" "$srv_dir/ringmx.log" 2>/dev/null && break
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.05
  done
  srv_port=$(grep -o 'listening name=mx address=127.0.0.1:[0-9]*' "$srv_dir/ringmx.log" 2>/dev/null \
    | head -1 | sed 's/.*://') || true
  [ -n "$srv_port" ] && wait_smtp "$srv_port" "$srv_pid"
}

start_postfix() {
  srv_dir=$work/postfix
  local q=$srv_dir/queue
  mkdir -p "$srv_dir/etc" "$q" "$srv_dir/data"
  chown postfix "$srv_dir/data"
  srv_port=$(python3 "$helper" free-port)
  # Only what differs from Postfix 3.7's defaults, and why: a private instance on 127.0.0.1 that
  # accepts user@example.test and throws it away after it was queued (durably: cleanup fsyncs
  # each queue file, the default), with the limits a benchmarking operator would lift.
  cat >"$srv_dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $q
data_directory = $srv_dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.bench.test
mydomain = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination = example.test
relay_domains =
# any local part of example.test is accepted (no passwd/alias lookups)
local_recipient_maps =
alias_maps =
alias_database =
biff = no
# every message is queued, then delivered to the discard(8) transport
default_transport = discard
local_transport = discard
relay_transport = discard
virtual_transport = discard
# 200 concurrent smtpd processes plus the rest (default 100)
default_process_limit = 250
# no inbound flow control pause while qmgr catches up (default 1s)
in_flow_delay = 0
# no reverse DNS of the client, no DNS in the (unused) SMTP client
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
# logging into a file of this instance (postlogd); counts the discards per run
maillog_file = $srv_dir/maillog
maillog_file_prefixes = $srv_dir
# STARTTLS offered, not required; the same certificate as ringmx
smtpd_tls_cert_file = $work/certs/fullchain.pem
smtpd_tls_key_file = $work/certs/key.pem
smtpd_tls_security_level = may
CF
  # No port 25, no pickup or local delivery; chroot off (no copy of system files needed).
  cat >"$srv_dir/etc/master.cf" <<CF
127.0.0.1:$srv_port inet n - n - - smtpd
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
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
discard    unix  - - n - - discard
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
CF
  : >"$srv_dir/maillog"
  local rc=0
  (spawn postfix -c "$srv_dir/etc" start) >>"$srv_dir/control.log" 2>&1 || rc=$?
  srv_pid=$(tr -dc '0-9' <"$q/pid/master.pid" 2>/dev/null) || true
  [ "$rc" = 0 ] && [ -n "$srv_pid" ] && wait_smtp "$srv_port" "$srv_pid"
}

start_sink() {
  srv_dir=$work/smtp-sink
  mkdir -p "$srv_dir"
  srv_port=$(python3 "$helper" free-port)
  # -c: running counters on stdout (sessions, QUITs, messages); PIPELINING and 8BITMIME are
  # announced by default. Up to 256 connections at once (-m), backlog 1024.
  spawn smtp-sink -c -u nobody "127.0.0.1:$srv_port" 1024 >"$srv_dir/counters" 2>"$srv_dir/stderr.log" &
  srv_pid=$!
  wait_smtp "$srv_port" "$srv_pid"
}

start_server() {  # NAME
  srv_name=$1
  if [ -n "$cg_root" ]; then srv_cg=$cg_root/$1; mkdir "$srv_cg"; fi
  case $1 in
    ringmx-durable) start_ringmx durable ;;
    ringmx-discard) start_ringmx discard ;;
    postfix) start_postfix ;;
    smtp-sink) start_sink ;;
  esac
}

server_alive() { [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; }

server_log_tail() {
  local f
  for f in "$srv_dir"/ringmx.log "$srv_dir"/stderr.log "$srv_dir"/control.log "$srv_dir"/maillog; do
    [ -s "$f" ] && { echo "--- $f"; tail -n 5 "$f"; }
  done
  return 0
}

# The server's own count of messages it took, so far.
ringmx_stat() {  # KEY: the whole server's value (the first; per_shard repeats the key per shard)
  timeout 5 "$ringmx" ctl -s "$srv_dir/control.sock" --json stats 2>/dev/null \
    | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2 || true
}
postfix_sent() { grep -c ' status=sent ' "$srv_dir/maillog" || true; }
postfix_queued() {
  find "$srv_dir/queue/incoming" "$srv_dir/queue/active" "$srv_dir/queue/deferred" \
    "$srv_dir/queue/hold" "$srv_dir/queue/maildrop" -type f 2>/dev/null | wc -l
}
postfix_problem_re='postfix/[a-z-]+\[[0-9]+\]: (warning|error|fatal|panic):'
postfix_problems() { grep -cE "$postfix_problem_re" "$srv_dir/maillog" || true; }
postfix_problem_text() {  # LINES_TO_SKIP: the most frequent problem logged after that many
  grep -E "$postfix_problem_re" "$srv_dir/maillog" | tail -n +"$(($1 + 1))" \
    | sed -E 's/^.*(postfix\/[a-z-]+)\[[0-9]+\]: /\1: /; s/[0-9]+/N/g' | sort | uniq -c | sort -rn \
    | head -n 1 | sed -E 's/^ *[0-9]+ //' | tr -d '\t\r' | cut -c1-160 || true
}
sink_messages() {
  tr '\r' '\n' <"$srv_dir/counters" | grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2 || true
}
server_count() {
  case $srv_name in
    ringmx-durable) ringmx_stat queue_messages ;;
    ringmx-discard) ringmx_stat messages_accepted ;;
    postfix) postfix_sent ;;
    smtp-sink) sink_messages ;;
  esac
}

# After the generator: let the server finish its share (Postfix delivers what it queued; ringmx
# closes its sessions) so that its CPU and count are complete.
settle() {  # MESSAGES_ACCEPTED COUNT_BEFORE
  local want=$(($2 + $1)) deadline=$((SECONDS + drain_cap))
  case $srv_name in
    postfix)
      while [ $SECONDS -lt $deadline ]; do
        [ "$(postfix_queued)" = 0 ] && [ "$(postfix_sent)" -ge "$want" ] && break
        sleep 0.2
      done ;;
    ringmx-*)
      deadline=$((SECONDS + 10))
      while [ $SECONDS -lt $deadline ]; do
        [ "$(ringmx_stat connections_open)" = 0 ] && break
        sleep 0.1
      done ;;
  esac
  sleep 0.3
}

record() {  # TLS CONNS MPC TOTAL RC CPU_NS STORED NOTE JSON ERR
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$srv_name" "$@" >>"$work/results.tsv"
}

commands=()
start_error=''
run_one() {  # TLS CONNS MPC
  local tls=$1 conns=$2 mpc=$3 total id
  total=$(total_for "$tls" "$conns" "$mpc")
  id=$srv_name-$tls-$conns-$mpc
  if [ "$srv_name" = smtp-sink ] && [ "$tls" != none ]; then
    record "$tls" "$conns" "$mpc" "$total" na "" "" "smtp-sink has no STARTTLS" "" ""
    return
  fi
  if ! server_alive; then
    record "$tls" "$conns" "$mpc" "$total" skip "" "" "${start_error:-server not running}" "" ""
    return
  fi
  local -a cmd=("$bench" --target "127.0.0.1:$srv_port" --threads 1 --concurrency "$conns"
    --messages-per-connection "$mpc" --total-messages "$total" --duration "$duration"
    --size "$size" --tls "$tls" --json)
  commands+=("timeout $((duration + 30)) ringmx-bench ${cmd[*]:1}")
  local before after cpu0 cpu1 rc=0 problems0=0 note='' got
  before=$(server_count); before=${before:-0}
  [ "$srv_name" = postfix ] && problems0=$(postfix_problems)
  cpu0=$(server_cpu_ns)
  timeout $((duration + 30)) "${cmd[@]}" >"$work/runs/$id.json" 2>"$work/runs/$id.err" || rc=$?
  got=$(grep -o '"messages":[0-9]*' "$work/runs/$id.json" | cut -d: -f2) || true
  settle "${got:-0}" "$before"
  cpu1=$(server_cpu_ns)
  after=$(server_count); after=${after:-0}
  if [ "$srv_name" = postfix ]; then
    local queued problems
    queued=$(postfix_queued)
    problems=$(($(postfix_problems) - problems0))
    [ "$queued" = 0 ] || note="$queued messages still in the Postfix queue after ${drain_cap} s"
    [ "$problems" = 0 ] ||
      note="${note:+$note; }$problems warning/error lines in the Postfix log, most often \"$(postfix_problem_text "$problems0")\""
  fi
  if ! server_alive; then
    note="${note:+$note; }server died during the run"
    echo "compare.sh: $srv_name died during $id" >&2
    server_log_tail >&2
  fi
  record "$tls" "$conns" "$mpc" "$total" "$rc" "$((cpu1 - cpu0))" "$((after - before))" "$note" \
    "$work/runs/$id.json" "$work/runs/$id.err"
  printf 'compare.sh: %-15s tls=%-8s conns=%-3s msg/conn=%-2s rc=%s %s\n' "$srv_name" "$tls" \
    "$conns" "$mpc" "$rc" "$(grep -o '"messages_per_s":[0-9.]*' "$work/runs/$id.json" || true)" >&2
  # ringmx keeps what it stored (no delivery route yet: the queue only grows, to ~95,000 messages
  # over the full matrix). It is not cleared between runs: clearing needs a restart (the shards
  # own their segments), which would reset the CPU accounting and replay the queue; the count is
  # a before/after delta of queue_messages instead. (Postfix delivers its messages to discard(8),
  # so its queue is empty after each run.)
}

server_configs=()
for s in "${server_list[@]}"; do
  echo "compare.sh: starting $s" >&2
  start_error=''
  if ! start_server "$s"; then
    echo "compare.sh: $s did not start" >&2
    server_log_tail >&2
    start_error="server did not start: $(server_log_tail | grep -v '^--- ' | tail -n 1 | tr -d '\t\r' | cut -c1-200)"
    if server_alive; then kill -TERM "$srv_pid" 2>/dev/null || true; fi
  fi
  case $s in
    ringmx-*)
      server_configs+=("$s: \`ringmx serve -c ringmx.toml\` with"$'\n\n```toml\n'"$(sed "s#$work#\$WORK#g" "$srv_dir/ringmx.toml")"$'\n```') ;;
    postfix)
      server_configs+=("postfix: \`postfix -c \$WORK/postfix/etc start\`; \`postconf -n\`:"$'\n\n```\n'"$(postconf -c "$srv_dir/etc" -n 2>&1 | sed "s#$work#\$WORK#g")"$'\n```\n\nmaster.cf:\n\n```\n'"$(sed "s#$work#\$WORK#g" "$srv_dir/etc/master.cf")"$'\n```') ;;
    smtp-sink)
      server_configs+=("smtp-sink: \`smtp-sink -c -u nobody 127.0.0.1:PORT 1024\` (one process)") ;;
  esac
  if server_alive && [ "$s" != smtp-sink ]; then note_tls; fi
  commands+=("# $s")
  for p in "${point_list[@]}"; do
    IFS=/ read -r tls conns mpc <<<"$p"
    run_one "$tls" "$conns" "$mpc"
  done
  stop_server
done

# ---- report -------------------------------------------------------------------------------------
elapsed_s=$(($(date +%s) - started_s))
{
  echo "## Machine and method"
  echo
  echo "- $(date -u '+%Y-%m-%d %H:%M UTC'); whole script: ${elapsed_s} s$([ "$quick" = 1 ] && echo ' (--quick)')"
  echo "- $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM"
  # shellcheck disable=SC1091
  echo "- Linux $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- load average at the end (other users of the machine): $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- spool and Postfix queue: $(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$work" | awk '{print $1 " on " $2 " (" $3 ")"}')"
  echo "- ringmx: $provenance; workers = 0 ($(nproc) shards)"
  echo "- Postfix $(postconf -d mail_version 2>/dev/null | sed 's/.*= //') (Debian package), smtp-sink from the same package"
  echo "- generator: ringmx-bench, 1 thread, closed loop, PIPELINING on, $size-byte messages, 1 recipient, full TLS handshake every session (no resumption, no verification)"
  echo "- TLS: one self-signed ECDSA P-256 certificate for ringmx and Postfix; negotiated:"
  for f in "${tls_facts[@]}"; do echo "  - $f"; done
  echo "- server CPU: $cpu_method"
  echo "- Postfix CPU includes delivering to discard(8) after the run: it is read once the queue is empty"
  echo "- each run: \`timeout $((duration + 30))\` around the generator, --duration $duration s cap"
  echo
} >"$work/machine.md"
{
  echo "## Server configurations"
  echo
  for c in "${server_configs[@]}"; do printf '%s\n\n' "$c"; done
} >"$work/configs.md"
{
  echo "## Generator commands (in order)"
  echo
  echo '```'
  for c in "${commands[@]}"; do echo "$c"; done
  echo '```'
} >"$work/commands.md"

mkdir -p "$(dirname "$out")"
status=0
python3 "$helper" render "$work" "$out" || status=$?
echo "compare.sh: report in $out (${elapsed_s} s)" >&2
exit "$status"

#!/usr/bin/env python3
"""Server memory with large messages (issue 10: "RSS with 200 sessions sending 10 MiB messages").

Starts `ringmx serve` (durable queue log, default max_message_size 25 MiB, `workers` shards) on a
fresh spool, samples its VmRSS from /proc/PID/status every --interval-ms while ringmx-bench sends
--sessions concurrent sessions of one --size message each, then reports idle RSS, peak RSS,
(peak - idle) / sessions, VmHWM, the stored count (ctl stats queue_messages), throughput and the
load average. Each binary given runs --rounds times, alternating (A B A B ...). Every run is bounded
(ringmx-bench --duration/--timeout, wrapped in `timeout`); the spool is deleted after each run.

usage: python3 bench/queue/large_rss.py RINGMX_BENCH LABEL=RINGMX [LABEL=RINGMX ...]
           [--sessions 200] [--size 10485760] [--rounds 1] [--workers 2] [--dir DIR] [--json]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import benchserver  # bench/queue/benchserver.py


def rss_kib(pid, key="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def ctl_stat(ringmx, sock, key):
    try:
        out = subprocess.run([ringmx, "ctl", "-s", sock, "--json", "stats"], capture_output=True, text=True,
                             timeout=10).stdout
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r'"%s":(\d+)' % key, out)
    return int(m.group(1)) if m else None


def run_one(label, ringmx, bench, args):
    work = tempfile.mkdtemp(prefix=f"ringmx-rss-{label}-", dir=args.dir)
    spool = os.path.join(work, "spool")
    os.makedirs(spool)
    sock = os.path.join(work, "control.sock")
    log = os.path.join(work, "ringmx.log")
    conf = os.path.join(work, "ringmx.toml")
    benchserver.write_config(conf, spool, log, args.workers, sock)
    result = {"label": label, "binary": ringmx}
    server, port = benchserver.start(ringmx, conf, log, os.path.join(work, "stderr.log"))
    try:
        time.sleep(0.5)
        idle = rss_kib(server.pid)
        before = ctl_stat(ringmx, sock, "queue_messages") or 0
        samples = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                v = rss_kib(server.pid)
                if v is not None:
                    samples.append((time.monotonic(), v))
                time.sleep(args.interval_ms / 1000.0)

        sampler = threading.Thread(target=sample, daemon=True)
        load_start = load1()
        sampler.start()
        t0 = time.monotonic()
        cmd = ["timeout", str(args.cap_s + 30), bench, "--target", f"127.0.0.1:{port}",
               "--threads", "1", "--concurrency", str(args.sessions),
               "--messages-per-connection", "1", "--total-messages", str(args.sessions),
               "--size", str(args.size), "--timeout", "120", "--duration", str(args.cap_s),
               "--server-pid", str(server.pid), "--json"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        elapsed = time.monotonic() - t0
        time.sleep(0.3)
        stop.set()
        sampler.join()
        load_end = load1()
        after = ctl_stat(ringmx, sock, "queue_messages") or 0
        j = {}
        for line in out.stdout.splitlines()[::-1]:
            if line.startswith("{"):
                j = json.loads(line)
                break
        peak = max(v for _, v in samples) if samples else None
        t_peak = max(samples, key=lambda s: s[1])[0] - t0 if samples else None
        result.update({
            "idle_rss_kib": idle,
            "peak_rss_kib": peak,
            "peak_at_s": round(t_peak, 2) if t_peak is not None else None,
            "hwm_kib": rss_kib(server.pid, "VmHWM"),
            "end_rss_kib": rss_kib(server.pid),
            "per_session_kib": round((peak - idle) / args.sessions, 1) if peak else None,
            "samples": len(samples),
            "stored": after - before,
            "messages": j.get("messages"),
            "failed": j.get("messages_failed"),
            "errors": j.get("errors"),
            "messages_per_s": j.get("messages_per_s"),
            "mib_per_s": round((j.get("messages") or 0) * args.size / 1048576 / elapsed, 1),
            "elapsed_s": round(elapsed, 2),
            "bench_rc": out.returncode,
            "load_start": load_start,
            "load_end": load_end,
            "spool_mib": round(sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in
                                   os.walk(spool) for n in ns) / 1048576, 1),
        })
        if out.returncode != 0:
            result["bench_stderr"] = out.stderr[-1000:]
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bench")
    p.add_argument("servers", nargs="+", help="LABEL=PATH_TO_RINGMX")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--size", type=int, default=10 * 1048576)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--interval-ms", type=float, default=20)
    p.add_argument("--cap-s", type=int, default=300, help="ringmx-bench --duration")
    p.add_argument("--dir", default=None, help="where the spools go (default: $TMPDIR or /tmp)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    servers = [s.split("=", 1) for s in args.servers]
    need = args.sessions * args.size * 1.1
    free = shutil.disk_usage(args.dir or tempfile.gettempdir()).free
    if free < need * 1.5:
        sys.exit(f"large_rss: {free / 2**30:.1f} GiB free, want {need * 1.5 / 2**30:.1f}")
    print("label\tidle MiB\tpeak MiB\tper session KiB\tHWM MiB\tstored\t250s\tfailed\tmsg/s\t"
          "MiB/s\ts\tload start/end", flush=True)
    for r in range(args.rounds):
        order = servers if r % 2 == 0 else servers[::-1]
        for label, path in order:
            res = run_one(label, path, args.bench, args)
            res["round"] = r + 1
            if args.json:
                print(json.dumps(res), flush=True)
            mib = lambda k: f"{res[k] / 1024:.1f}" if res.get(k) is not None else "-"
            print(f"{label}\t{mib('idle_rss_kib')}\t{mib('peak_rss_kib')}\t"
                  f"{res['per_session_kib']}\t{mib('hwm_kib')}\t{res['stored']}\t"
                  f"{res['messages']}\t{res['failed']}\t{res['messages_per_s']}\t"
                  f"{res['mib_per_s']}\t{res['elapsed_s']}\t"
                  f"{res['load_start']}/{res['load_end']}", flush=True)


if __name__ == "__main__":
    main()

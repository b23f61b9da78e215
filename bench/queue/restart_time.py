#!/usr/bin/env python3
"""Restart time with a full queue (issue 10, item 7): how long `ringmx serve` takes from exec to
"ringmx ready" when its spool holds N queued messages, and what the index costs in memory.

  python3 bench/queue/restart_time.py BUILD_DIR [--messages 1000000] [--size 1024]
      [--recipients 2] [--dir DIR] [--cold 1] [--warm 2] [--keep]

Writes DIR (default: a new directory under $TMPDIR or /tmp) with BUILD_DIR's
bench/queue/ringmx-queue-fill (as many shards as the server will run: workers = 0, one per CPU),
then starts BUILD_DIR's tools/ringmx on it: --cold times cold (after `sync` and
`echo 3 > /proc/sys/vm/drop_caches`, if this process may; the report says whether it could, and
the page cache left afterwards: the whole machine's, so other users' files count too), then
--warm times with the segments in the page cache. Each start is bounded (300 s to ready, 60 s to
stop); the server listens on 127.0.0.1:0 only and is stopped with SIGTERM after its stats were
read. The same server on an empty spool gives the baseline RSS. Times come from the log lines'
own microsecond timestamps, measured from just before the fork+exec. Prints a Markdown report.
The directory is deleted at the end unless --keep. Needs the free space (checked first).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

READY_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60
LINE_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6})Z (.*)$")
MESSAGES_RE = re.compile(r"messages=(\d+)")
SHARD_RE = re.compile(r"shard=(\d+)")


def stamp(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def drop_caches():
    """True if the page cache could be dropped (needs root and a writable /proc/sys)."""
    subprocess.run(["sync"], check=True, timeout=600)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError as e:
        print(f"restart_time: drop_caches failed: {e}", file=sys.stderr)
        return False


def cached_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Cached:"):
                return int(line.split()[1]) // 1024
    return -1


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])  # KiB
    return out


def ctl_stats(ringmx, sock):
    r = subprocess.run([ringmx, "ctl", "-s", sock, "--json", "stats"], capture_output=True, text=True,
                       timeout=10)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}


def serve_once(ringmx, workdir, spool, label):
    """Starts ringmx on `spool`, waits for ready, reads RSS and stats, stops it."""
    log = os.path.join(workdir, f"ringmx-{label}.log")
    sock = os.path.join(workdir, f"control-{label}.sock")
    conf = os.path.join(workdir, f"ringmx-{label}.toml")
    with open(conf, "w") as f:
        f.write(f"""hostname = "mx.bench.test"
workers = 0
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[policy]
local_domains = ["example.test"]
[spool]
path = "{spool}"
[control]
socket = "{sock}"
[log]
file = "{log}"
""")
    for p in (log, sock):
        if os.path.exists(p):
            os.unlink(p)
    stderr = open(os.path.join(workdir, f"stderr-{label}.log"), "w")
    t0 = time.time()
    proc = subprocess.Popen([ringmx, "serve", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=stderr)
    result = {"label": label, "ok": False}
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if os.path.exists(log):
                with open(log) as f:
                    text = f.read()
                if "ringmx ready" in text:
                    ready = text
                    break
            time.sleep(0.005)
        if ready is None:
            result["error"] = "exited" if proc.poll() is not None else f"not ready in {READY_TIMEOUT_S} s"
            return result
        replayed = []
        for line in ready.splitlines():
            m = LINE_RE.match(line)
            if not m:
                continue
            t = stamp(m.group(1)) - t0
            if " replayed: " in m.group(2):
                replayed.append((t, m.group(2)))
            elif "ringmx ready" in m.group(2):
                result["ready_s"] = t
        result["replayed"] = replayed
        time.sleep(0.2)  # the shards publish their counters after their first batch
        result.update(proc_status(proc.pid))
        result["load"] = " ".join(open("/proc/loadavg").read().split()[:3])
        result["stats"] = ctl_stats(ringmx, sock)
        result["ok"] = "ready_s" in result
        return result
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--recipients", type=int, default=2)
    ap.add_argument("--dir")
    ap.add_argument("--cold", type=int, default=1)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    ringmx = os.path.abspath(os.path.join(a.build, "tools/ringmx"))
    fill = os.path.abspath(os.path.join(a.build, "bench/queue/ringmx-queue-fill"))
    for b in (ringmx, fill):
        if not os.access(b, os.X_OK):
            sys.exit(f"restart_time: {b} missing (build ringmx and ringmx-queue-fill)")
    shards = os.cpu_count() or 1
    base = a.dir or tempfile.mkdtemp(prefix="ringmx-restart-", dir=os.environ.get("TMPDIR", "/tmp"))
    os.makedirs(base, exist_ok=True)
    spool = os.path.join(base, "spool")
    empty = os.path.join(base, "empty-spool")
    # Room for the segments (body, trace headers, envelope JSON, framing: ~size + 700 bytes each).
    need = a.messages * (a.size + 700 + 40 * a.recipients)
    free = shutil.disk_usage(base).free
    if free < need * 1.2 + (2 << 30):
        sys.exit(f"restart_time: {free >> 20} MiB free in {base}, want {int(need * 1.2) >> 20} MiB "
                 "plus 2 GiB to spare; use a smaller --messages")
    report = []
    try:
        load0 = open("/proc/loadavg").read().split()[:3]
        t = time.monotonic()
        r = subprocess.run([fill, spool, "--messages", str(a.messages), "--size", str(a.size),
                            "--recipients", str(a.recipients), "--shards", str(shards)],
                           capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            sys.exit(f"restart_time: fill failed: {r.stderr.strip()}")
        filled = json.loads(r.stdout)
        du = subprocess.run(["du", "-sb", spool], capture_output=True, text=True).stdout.split()[0]
        report.append(f"- filled: {filled['messages']} messages, {filled['shards']} shards, "
                      f"{filled['segments']} segments, {int(du) / 2**20:.0f} MiB on disk, "
                      f"{time.monotonic() - t:.1f} s (load average before: {' '.join(load0)})")
        runs = []
        os.makedirs(empty, exist_ok=True)
        runs.append(("empty", None, serve_once(ringmx, base, empty, "empty")))
        for i in range(a.cold):
            dropped = drop_caches()
            cached = cached_mib()
            name = f"cold {i + 1} (page cache {cached} MiB)" if dropped else \
                f"cold {i + 1} (drop_caches FAILED: page cache warm)"
            runs.append((name, dropped, serve_once(ringmx, base, spool, f"cold{i + 1}")))
        for i in range(a.warm):
            runs.append((f"warm {i + 1}", None, serve_once(ringmx, base, spool, f"warm{i + 1}")))
        base_rss = runs[0][2].get("VmRSS")
        report.append("")
        report.append("| start | spool | exec to ready s | replay per shard (s from exec) | "
                      "queue_messages | RSS MiB | peak RSS MiB | RSS - empty, bytes/message | "
                      "load average at ready |")
        report.append("|---|---|---:|---|---:|---:|---:|---:|---|")
        for name, _, res in runs:
            load = res.get("load", " ".join(open("/proc/loadavg").read().split()[:3]))
            if not res["ok"]:
                report.append(f"| {name} | - | **{res.get('error', 'failed')}** | | | | | | {load} |")
                continue
            parts = []
            for t, txt in res["replayed"]:
                m, sh = MESSAGES_RE.search(txt), SHARD_RE.search(txt)
                parts.append(f"{sh.group(1) if sh else '?'}: {t:.2f}"
                             + (f" ({m.group(1)} msgs)" if m else ""))
            shards_txt = "; ".join(parts)
            qm = res["stats"].get("queue_messages", "?")
            per = "-"
            if name != "empty" and base_rss and isinstance(qm, int) and qm:
                per = f"{(res['VmRSS'] - base_rss) * 1024 / qm:.0f}"
            report.append(
                f"| {name} | {'empty' if name == 'empty' else str(a.messages)} | {res['ready_s']:.2f} | "
                f"{shards_txt} | {qm} | {res['VmRSS'] / 1024:.1f} | {res['VmHWM'] / 1024:.1f} | "
                f"{per} | {load} |")
        report.append("")
        for name, _, res in runs:
            for _, txt in res.get("replayed", []):
                report.append(f"- {name}: `{txt}`")
        print("\n".join(report))
        return 0 if all(res["ok"] for _, _, res in runs) else 1
    finally:
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

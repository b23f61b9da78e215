#!/usr/bin/env python3
"""Helper for bench/compare.sh. Subcommands:

  free-port              print a free TCP port on 127.0.0.1 (bound, then released)
  cpu-tree PID           print the CPU time in ns of PID and all its descendants: utime + stime
                         (every thread) + cutime + cstime (children already reaped), from /proc
  render WORKDIR OUT     read WORKDIR/results.tsv, the per-run JSON lines of ringmx-bench and
                         WORKDIR/{machine,configs,commands}.md; print the Markdown report to
                         stdout and write it to OUT. Exit status 1 if any run failed.

results.tsv columns (tab-separated, one line per run):
  server tls connections messages_per_connection total rc cpu_ns stored note json_file err_file
where rc is the generator's exit status, "na" for a run that does not apply, or "skip" when the
server was not running; stored is the server-side count of messages the run added ("" if none):
ringmx durable: the change in `ringmx ctl stats` queue_messages (the queue is never cleared).
"""
import json
import os
import socket
import sys

SERVERS = ["ringmx-durable", "postfix", "smtp-sink", "ringmx-discard"]
LABELS = {
    "ringmx-durable": "ringmx durable",
    "postfix": "Postfix",
    "smtp-sink": "smtp-sink",
    "ringmx-discard": "ringmx discard",
}
REFERENCE = "postfix"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cpu_tree(root):
    hz = os.sysconf("SC_CLK_TCK")
    parent, ticks = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        pid = int(name)
        parent[pid] = int(fields[1])
        # utime stime cutime cstime (fields 14-17 of stat; 12-15 after "pid (comm)")
        ticks[pid] = sum(int(x) for x in fields[11:15])
    tree, frontier = set(), {root}
    while frontier:
        tree |= frontier
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in tree}
    print(sum(ticks.get(p, 0) for p in tree) * 1_000_000_000 // hz)


def load_runs(workdir):
    runs = []
    with open(os.path.join(workdir, "results.tsv")) as f:
        for line in f:
            if not line.strip():
                continue
            cols = line.rstrip("\n").split("\t")
            server, tls, conns, mpc, total, rc, cpu_ns, stored, note, jpath, epath = cols
            run = {
                "server": server, "tls": tls, "conns": int(conns), "mpc": int(mpc),
                "total": int(total), "rc": rc, "cpu_ns": int(cpu_ns) if cpu_ns else None,
                "stored": int(stored) if stored else None, "notes": [note] if note else [],
                "json": None, "stderr": "",
            }
            if jpath and os.path.exists(jpath):
                with open(jpath) as jf:
                    text = jf.read().strip()
                try:
                    run["json"] = json.loads(text.splitlines()[-1]) if text else None
                except (ValueError, IndexError):
                    run["notes"].append("generator output is not JSON")
            if epath and os.path.exists(epath):
                with open(epath, errors="replace") as ef:
                    run["stderr"] = " ".join(ef.read().split())[:300]
            judge(run)
            runs.append(run)
    return runs


def judge(run):
    """Sets run["status"] to ok, na or error, and completes the notes."""
    if run["rc"] == "na":
        run["status"] = "na"
        return
    j = run["json"]
    bad = False
    if run["rc"] == "skip":
        bad = True
    elif run["rc"] != "0":
        bad = True
        run["notes"].append(
            "generator killed by timeout" if run["rc"] == "124" else f"generator exit {run['rc']}")
    if run["rc"] != "skip" and j is None:
        bad = True
        run["notes"].append("no generator result" + (f": {run['stderr']}" if run["stderr"] else ""))
    if j is not None:
        if j.get("fatal"):
            bad = True
            run["notes"].append(f"fatal: {j['fatal']}")
        if j.get("messages_failed", 0) > 0:
            bad = True
            errs = ", ".join(f"{k}:{v}" for k, v in sorted(j.get("errors", {}).items()))
            run["notes"].append(f"{j['messages_failed']} messages failed ({errs})")
        if j.get("timed_out"):
            bad = True
            run["notes"].append("hit the hard stop (--duration + 10 s)")
        if j.get("messages", 0) == 0:
            bad = True
            run["notes"].append("no message accepted")
        elif j["messages"] < run["total"] and not bad:
            run["notes"].append(f"capped by --duration: {j['messages']} of {run['total']}")
        if run["stored"] is not None and run["stored"] != j.get("messages"):
            bad = True
            run["notes"].append(
                f"server counted {run['stored']}, generator {j.get('messages')} messages")
    run["status"] = "error" if bad else "ok"


def rate(run):
    return run["json"]["messages_per_s"] if run and run["status"] == "ok" else None


def cpu_ms(run):
    if not run or run["status"] != "ok" or run["cpu_ns"] is None:
        return None
    return run["cpu_ns"] / 1e6 / run["json"]["messages"]


def cell(run, value, fmt):
    if run is None:
        return "-"
    if run["status"] == "na":
        return "n/a"
    if run["status"] == "error":
        return "**ERR**"
    return fmt.format(value) if value is not None else "-"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def render(workdir, out_path):
    runs = load_runs(workdir)
    servers = [s for s in SERVERS if any(r["server"] == s for r in runs)]
    keys = []
    for r in runs:
        k = (r["tls"], r["conns"], r["mpc"])
        if k not in keys:
            keys.append(k)
    by = {(r["server"], r["tls"], r["conns"], r["mpc"]): r for r in runs}

    def read(name):
        path = os.path.join(workdir, name)
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read().rstrip("\n") + "\n"

    lines = ["# ringmx side by side: ringmx, Postfix, smtp-sink", ""]
    lines.append(read("machine.md"))
    lines.append("## Results")
    lines.append("")
    lines.append("messages/s as measured by ringmx-bench (250 replies after end of data, per "
                 "second of the run); CPU = server CPU (see the method above) per accepted "
                 "message, in ms. Ratios are this server / Postfix (messages/s: higher is "
                 "faster; CPU: lower is cheaper), and ringmx durable / ringmx discard "
                 "(messages/s) when both ran. **ERR**: the run failed (see the failures "
                 "below); n/a: the server cannot do this (smtp-sink has no STARTTLS).")
    lines.append("")
    head = ["tls", "connections", "messages/connection"]
    for s in servers:
        head += [f"{LABELS[s]} msg/s", f"{LABELS[s]} CPU ms/msg"]
    others = [s for s in servers if s != REFERENCE] if REFERENCE in servers else []
    for s in others:
        head += [f"{LABELS[s]} / Postfix msg/s", f"{LABELS[s]} / Postfix CPU"]
    # Issue 10's third target: the durable store against ringmx's own spool-off rate.
    own = "ringmx-durable" in servers and "ringmx-discard" in servers
    if own:
        head += ["ringmx durable / discard msg/s"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * 3 + "---:|" * (len(head) - 3))
    for k in keys:
        row = [k[0] if k[0] != "none" else "plain", str(k[1]), str(k[2])]
        for s in servers:
            r = by.get((s,) + k)
            row += [cell(r, rate(r), "{:.0f}"), cell(r, cpu_ms(r), "{:.3f}")]
        ref = by.get((REFERENCE,) + k)
        for s in others:
            r = by.get((s,) + k)
            if r is not None and r["status"] == "na":
                row += ["n/a", "n/a"]
            else:
                row += [ratio(rate(r), rate(ref)), ratio(cpu_ms(r), cpu_ms(ref))]
        if own:
            d, x = by.get(("ringmx-durable",) + k), by.get(("ringmx-discard",) + k)
            row += [ratio(rate(d), rate(x))]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")

    lines.append("## Every run")
    lines.append("")
    lines.append("messages: accepted (250) by the generator's count / attempted (--total-messages); "
                 "stored: the server's own count of what the run added (ringmx durable: the "
                 "change in `ringmx ctl stats` queue_messages, messages in its queue index, "
                 "which the runs never clear; ringmx discard: "
                 "`ringmx ctl stats` messages_accepted; Postfix: `status=sent` discards in its log, "
                 "queue empty afterwards; smtp-sink: its mesg counter); sessions: completed SMTP sessions "
                 "and the messages per session they actually carried (the generator shares "
                 "--total-messages between its connections, so the last sessions of a run carry "
                 "fewer than messages/connection); gen CPU: the generator's "
                 "CPU over the run's wall time (near 100%: the generator, not the server, is the "
                 "limit); latency: end of data to 250, p50 / p99 in ms.")
    lines.append("")
    lines.append("| server | tls | conns | msg/conn | messages | stored | sessions (msg/session) | "
                 "seconds | msg/s | server CPU s | CPU ms/msg | gen CPU | latency p50/p99 ms | "
                 "result |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    failures = []
    for r in runs:
        j = r["json"] or {}
        if r["status"] == "na":
            continue
        lat = j.get("latency_us", {}).get("data_to_250", {})
        elapsed = j.get("elapsed_s")
        gen = (f"{100 * j['client_cpu_s'] / elapsed:.0f}%"
               if elapsed and j.get("client_cpu_s") is not None else "-")
        cpu_s = f"{r['cpu_ns'] / 1e9:.2f}" if r["cpu_ns"] is not None else "-"
        per = cpu_ms(r)
        sessions = j.get("sessions")
        sess = (f"{sessions} ({j['messages'] / sessions:.1f})" if sessions else
                (str(sessions) if sessions is not None else "-"))
        result = "ok" if r["status"] == "ok" else "**ERROR**"
        if r["notes"]:
            result += ": " + "; ".join(r["notes"])
        lines.append("| " + " | ".join([
            LABELS[r["server"]], "plain" if r["tls"] == "none" else r["tls"], str(r["conns"]),
            str(r["mpc"]),
            f"{j['messages']}/{r['total']}" if "messages" in j else f"-/{r['total']}",
            str(r["stored"]) if r["stored"] is not None else "-", sess,
            f"{elapsed:.2f}" if elapsed is not None else "-",
            f"{j['messages_per_s']:.0f}" if "messages_per_s" in j else "-",
            cpu_s, f"{per:.3f}" if per is not None else "-", gen,
            f"{lat['p50'] / 1e3:.2f} / {lat['p99'] / 1e3:.2f}" if lat.get("count") else "-",
            result.replace("|", "\\|"),
        ]) + " |")
        if r["status"] == "error":
            tls = "plain" if r["tls"] == "none" else r["tls"]
            failures.append(f"- {LABELS[r['server']]}, {tls}, {r['conns']} connections, "
                            f"{r['mpc']} messages/connection: " + "; ".join(r["notes"]))
    lines.append("")
    lines.append("## Failures")
    lines.append("")
    lines.append("\n".join(failures) if failures else "None.")
    lines.append("")
    lines.append(read("configs.md"))
    lines.append(read("commands.md"))
    text = "\n".join(lines).rstrip("\n") + "\n"
    sys.stdout.write(text)
    with open(out_path, "w") as f:
        f.write(text)
    return 1 if failures else 0


def main(argv):
    if len(argv) == 2 and argv[1] == "free-port":
        free_port()
        return 0
    if len(argv) == 3 and argv[1] == "cpu-tree":
        cpu_tree(int(argv[2]))
        return 0
    if len(argv) == 4 and argv[1] == "render":
        return render(argv[2], argv[3])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

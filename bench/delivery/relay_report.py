#!/usr/bin/env python3
"""Helper for bench/delivery/relay_bench.sh. Subcommands:

  breakdown CGROUP PID   print CPU ms by thread/process name: every process in the cgroup v1
                         directory CGROUP (or PID alone when CGROUP is ""), each thread from
                         /proc/P/task/T/stat (utime+stime), plus each process's reaped children
                         (cutime+cstime) as "<name> children". Tab-separated: name tasks ms.
  WORKDIR OUT            read WORKDIR/results.tsv (one line per server, see below), the sample
                         files, the generator's JSON and WORKDIR/machine.md; print the Markdown
                         report to stdout and write it to OUT. Exit status 1 if a run failed or
                         lost messages.

results.tsv columns (tab-separated):
  server rc accepted t0_ns t_gen_ns t_done_ns cpu_ns sink_msgs sink_cpu_ns drained note
  samples_file json_file stats_file
where accepted is the generator's count of 250s, t0/t_gen/t_done the generator's start, its end
and the moment the queue was empty with every message at the sink, and each line of the samples
file is "ms_since_t0 queued sink_messages_total".
"""
import json
import os
import sys

LABELS = {"ringmx": "ringmx", "postfix": "Postfix"}
TARGET_RATIO = 0.1  # issue 12: ringmx's CPU per message <= 1/10 of Postfix's


def breakdown(cgroup, pid):
    hz = os.sysconf("SC_CLK_TCK")
    if cgroup:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = [p.strip() for p in f if p.strip()]
    else:
        pids = [pid]
    rows = {}

    def add(name, ticks):
        r = rows.setdefault(name, [0, 0])
        r[0] += 1
        r[1] += ticks

    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        pname = s[s.index("(") + 1:s.rindex(")")]
        fields = s.rsplit(")", 1)[1].split()
        children = int(fields[13]) + int(fields[14])  # cutime cstime
        if children:
            add(f"{pname} children", children)
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            fields = s.rsplit(")", 1)[1].split()
            add(s[s.index("(") + 1:s.rindex(")")], int(fields[11]) + int(fields[12]))
    for name, (n, ticks) in sorted(rows.items(), key=lambda x: -x[1][1]):
        print(f"{name}\t{n}\t{ticks * 1000 // hz}")


def load(workdir):
    runs = []
    with open(os.path.join(workdir, "results.tsv")) as f:
        for line in f:
            if not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            c += [""] * (14 - len(c))
            run = {"server": c[0], "rc": c[1], "note": c[10], "ok": False}
            runs.append(run)
            if c[1] == "skip":
                continue
            run.update(accepted=int(c[2] or 0), t0=int(c[3]), t_gen=int(c[4]), t_done=int(c[5]),
                       cpu_ns=int(c[6]), sink=int(c[7]), sink_cpu_ns=int(c[8]),
                       drained=c[9] == "1")
            samples = []
            if os.path.exists(c[11]):
                with open(c[11]) as sf:
                    for s in sf:
                        parts = s.split()
                        if len(parts) == 3 and all(p.isdigit() for p in parts):
                            samples.append(tuple(int(p) for p in parts))
            run["samples"] = samples
            run["json"] = None
            if os.path.exists(c[12]):
                text = open(c[12]).read().strip()
                try:
                    run["json"] = json.loads(text.splitlines()[-1]) if text else None
                except ValueError:
                    pass
            run["stats"] = None
            if c[13] and os.path.exists(c[13]):
                try:
                    run["stats"] = json.loads(open(c[13]).read())
                except ValueError:
                    pass
            bd = os.path.join(workdir, "runs", f"{c[0]}.breakdown")
            run["breakdown"] = open(bd).read().strip() if os.path.exists(bd) else ""
            judge(run)
    return runs


def judge(run):
    problems = []
    j = run["json"]
    if run["rc"] != "0":
        problems.append(f"generator exit {run['rc']}")
    if j is None:
        problems.append("no generator result")
    else:
        if j.get("messages_failed", 0):
            problems.append(f"{j['messages_failed']} messages failed at intake")
        if j.get("fatal"):
            problems.append(f"fatal: {j['fatal']}")
    if run["accepted"] == 0:
        problems.append("nothing accepted")
    if not run["drained"]:
        problems.append("queue did not drain")
    if run["sink"] != run["accepted"]:
        problems.append(f"sink got {run['sink']} of {run['accepted']}")
    st = run["stats"]
    if st is not None:
        for key in ("delivery_deferred", "delivery_bounced", "dsns_queued"):
            if st.get(key):
                problems.append(f"{key} {st[key]}")
        if st.get("delivery_sent") != run["accepted"]:
            problems.append(f"delivery_sent {st.get('delivery_sent')} != {run['accepted']}")
    run["problems"] = problems
    run["ok"] = not problems


def fmt(x, digits=3):
    return f"{x:.{digits}f}"


def render(workdir, out):
    runs = load(workdir)
    lines = []
    header = ("| server | accepted | at the sink | intake s | wall s (until drained) | "
              "msg/s end to end | intake msg/s | drain after intake s | peak queue | "
              "server CPU s | CPU ms/msg | sink CPU ms/msg | check |")
    lines += [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    per_msg = {}
    for r in runs:
        name = LABELS.get(r["server"], r["server"])
        if r["rc"] == "skip":
            lines.append(f"| {name} | | | | | | | | | | | | **did not start** {r['note']} |")
            continue
        n = max(r["accepted"], 1)
        wall = (r["t_done"] - r["t0"]) / 1e9
        intake = (r["t_gen"] - r["t0"]) / 1e9
        peak = max((s[1] for s in r["samples"]), default=0)
        cpu_ms = r["cpu_ns"] / 1e6 / n
        per_msg[r["server"]] = cpu_ms
        check = "ok" if r["ok"] else "**" + "; ".join(r["problems"]) + "**"
        if r["note"]:
            check += f" ({r['note']})"
        j = r["json"] or {}
        lines.append(
            f"| {name} | {r['accepted']} | {r['sink']} | {fmt(intake, 2)} | {fmt(wall, 2)} | "
            f"{r['accepted'] / wall:.0f} | {j.get('messages_per_s', 0):.0f} | "
            f"{fmt(wall - intake, 2)} | {peak} ({100 * peak / n:.0f}%) | "
            f"{fmt(r['cpu_ns'] / 1e9, 2)} | {fmt(cpu_ms)} | "
            f"{fmt(r['sink_cpu_ns'] / 1e6 / n)} | {check} |")
    lines.append("")
    if "ringmx" in per_msg and "postfix" in per_msg and per_msg["postfix"] > 0:
        ratio = per_msg["ringmx"] / per_msg["postfix"]
        verdict = "met" if ratio <= TARGET_RATIO else "not met"
        lines.append(f"CPU per message, ringmx / Postfix: **{ratio:.3f}** (1/{1 / ratio:.1f}); "
                     f"target <= {TARGET_RATIO}: **{verdict}**.")
        lines.append("")
    for r in runs:
        if r["rc"] == "skip" or not r["samples"]:
            continue
        s = r["samples"]
        step = max(1, len(s) // 12)
        sink0 = s[0][2]
        pts = ", ".join(f"{t / 1000:.1f}s:{q}/{k - sink0}" for t, q, k in s[::step])
        lines.append(f"- {LABELS.get(r['server'])} over time (seconds: queued / at the sink): "
                     f"{pts}")
    lines.append("")
    for r in runs:
        st = r.get("stats")
        if st and r.get("accepted"):
            lines.append(
                f"- {LABELS.get(r['server'])}: {st.get('queue_groups', 0)} queue log group commits "
                f"(one fdatasync each) for {st.get('queue_records', 0)} records, "
                f"{st.get('queue_groups', 0) / r['accepted']:.2f} per message; "
                f"{st.get('outbound_connections_total', 0)} outbound connections opened; "
                f"{st.get('connections_total', 0)} inbound sessions")
    lines.append("")
    for r in runs:
        if r.get("breakdown"):
            lines.append(f"{LABELS.get(r['server'])} CPU by thread/process name at the end "
                         "(name, tasks, ms; live tasks only):")
            lines.append("")
            lines.append("```")
            lines.append(r["breakdown"])
            lines.append("```")
            lines.append("")
    machine = os.path.join(workdir, "machine.md")
    if os.path.exists(machine):
        lines.append(open(machine).read().rstrip())
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    with open(out, "w") as f:
        f.write(text)
    return 0 if runs and all(r["ok"] for r in runs) else 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "breakdown":
        breakdown(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) == 3:
        return render(sys.argv[1], sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

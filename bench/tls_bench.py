#!/usr/bin/env python3
"""TLS cost on the server: STARTTLS mail sessions against ringmx, and bare handshakes against
`openssl s_server`, measured the same way (server CPU from /proc/PID/stat around a bounded run of
N sessions by a few client threads on loopback). RSA-2048 and ECDSA P-256 certificates are made
here with the openssl CLI. Prints a Markdown table.

usage: python3 bench/tls_bench.py [--ringmx build/release/tools/ringmx] [--sessions 2000]
"""
import argparse
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime, stime


def make_cert(d, kind):
    key, cert = os.path.join(d, f"{kind}.key"), os.path.join(d, f"{kind}.pem")
    algo = ["-newkey", "rsa:2048"] if kind == "rsa" else [
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "req", "-x509", "-nodes", *algo, "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=mx.bench.test"], check=True,
                   capture_output=True)
    return cert, key


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def read_reply(f):
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3])


def starttls_session(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        f = raw.makefile("rb")
        assert read_reply(f) == 220
        raw.sendall(b"EHLO bench.test\r\n"); assert read_reply(f) == 250
        raw.sendall(b"STARTTLS\r\n"); assert read_reply(f) == 220
        with ctx.wrap_socket(raw, server_hostname="mx.bench.test") as s:
            g = s.makefile("rb")
            s.sendall(b"EHLO bench.test\r\n"); assert read_reply(g) == 250
            s.sendall(b"MAIL FROM:<a@bench.test>\r\n"); assert read_reply(g) == 250
            s.sendall(b"RCPT TO:<u@example.test>\r\n"); assert read_reply(g) == 250
            s.sendall(b"DATA\r\n"); assert read_reply(g) == 354
            s.sendall(b"Subject: b\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10 + b".\r\n"); assert read_reply(g) == 250
            s.sendall(b"QUIT\r\n"); assert read_reply(g) == 221


def bare_handshake(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="mx.bench.test") as s:
            s.do_handshake()


def drive(fn, port, sessions, threads, deadline_s=120):
    ctx = client_ctx()
    count, errors, lock = [0], [0], threading.Lock()
    stop = time.time() + deadline_s

    def worker():
        while time.time() < stop:
            with lock:
                if count[0] >= sessions:
                    return
                count[0] += 1
            try:
                fn(port, ctx)
            except Exception:  # counted, not fatal: the table shows it
                with lock:
                    errors[0] += 1

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    t0 = time.time()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return count[0], errors[0], time.time() - t0


def measure(pid, fn, port, sessions, threads):
    c0 = cpu_seconds(pid)
    n, errors, secs = drive(fn, port, sessions, threads)
    c1 = cpu_seconds(pid)
    return n, errors, secs, (c1 - c0) * 1000 / max(n, 1)


def wait_for(path, pattern, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            m = re.search(pattern, open(path).read())
            if m:
                return m
        time.sleep(0.05)
    raise RuntimeError(f"{pattern!r} not in {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringmx", default="build/release/tools/ringmx")
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ringmx-tlsbench-") as d:
        for kind in ("rsa", "ecdsa"):
            cert, key = make_cert(d, kind)
            # openssl s_server: bare TLS 1.3 handshakes, one process, as a reference.
            port = 20000 + (os.getpid() % 20000)
            srv = subprocess.Popen(["openssl", "s_server", "-quiet", "-accept", f"127.0.0.1:{port}",
                                    "-cert", cert, "-key", key, "-naccept", str(a.sessions + 10)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                time.sleep(0.5)
                n, err, secs, ms = measure(srv.pid, bare_handshake, port, a.sessions, a.threads)
                rows.append((f"openssl s_server, bare handshake, {kind}", n, err, secs, ms))
            finally:
                srv.kill(); srv.wait()
            # ringmx: whole STARTTLS mail sessions (EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA, QUIT).
            conf = os.path.join(d, f"ringmx-{kind}.toml")
            log = os.path.join(d, f"ringmx-{kind}.log")
            with open(conf, "w") as f:
                f.write(f'hostname = "mx.bench.test"\nworkers = 1\n[[listener]]\nname = "mx"\n'
                        f'address = "127.0.0.1:0"\ntls = "starttls"\n[tls]\ncert = "{cert}"\n'
                        f'key = "{key}"\n[policy]\nlocal_domains = ["example.test"]\n'
                        f'[spool]\npath = "{d}/spool-{kind}"\nmode = "discard"\n[log]\nfile = "{log}"\n'
                        # --threads may exceed the per-client session limit: loopback is exempt.
                        f'[limits]\nexempt = ["127.0.0.0/8"]\n')
            rx = subprocess.Popen([a.ringmx, "serve", "-c", conf])
            try:
                port = int(wait_for(log, r"listening name=mx address=127\.0\.0\.1:(\d+)").group(1))
                wait_for(log, "ringmx ready")
                n, err, secs, ms = measure(rx.pid, starttls_session, port, a.sessions, a.threads)
                rows.append((f"ringmx (1 shard, spool off), STARTTLS mail session, {kind}", n, err, secs, ms))
            finally:
                rx.terminate(); rx.wait()
    print("| server and work | sessions | errors | seconds | sessions/s | server CPU ms/session |")
    print("|---|---|---|---|---|---|")
    for name, n, err, secs, ms in rows:
        print(f"| {name} | {n} | {err} | {secs:.2f} | {n / secs:.0f} | {ms:.3f} |")


if __name__ == "__main__":
    sys.exit(main())

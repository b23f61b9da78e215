#!/usr/bin/env python3
"""Shard throughput while sessions authenticate (issue 11): does a burst of yescrypt AUTHs slow
the shard's other sessions down?

One ringmx with ONE shard (workers = 1, so every session shares it) and two listeners: "mx"
(plain, the message load from ringmx-bench) and "sub" (STARTTLS, auth = true). Each round runs
ringmx-bench against "mx" for --seconds, first alone, then while --auth-sessions clients each
loop STARTTLS + EHLO + AUTH PLAIN (a yescrypt user) on "sub" for the same time. Prints messages/s
and p99 latency of both phases, their ratio, and the AUTH sessions/s achieved. --no-auth is the
control: the same sessions without AUTH (STARTTLS, EHLO, NOOP), so that the cost of the client
load and its handshakes on a small machine can be told apart from the cost of the hashes. Password hashes run on ringmx's check
workers, never on the shard; on a machine with few cores they still take CPU from it, so the ratio
shows that cost too. Loopback only; every loop is bounded in time.

usage: auth_load.py BUILD_DIR [--seconds 10] [--auth-sessions 50] [--rounds 3]
"""

import argparse
import base64
import ctypes
import json
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "queue"))
import benchserver  # noqa: E402

USER = "load@example.test"
PASSWORD = "load test password"


def yescrypt(password):
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = lib.crypt_gensalt(b"$y$", 0, None, 0)
    return lib.crypt(password.encode(), salt).decode()


def write_config(tmp, sock):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                    "/CN=mx.bench.test", "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(f"{tmp}/passwd", "w") as f:
        f.write(f"{USER}:{yescrypt(PASSWORD)}\n")
    conf = f"{tmp}/ringmx.toml"
    with open(conf, "w") as f:
        f.write(f'''hostname = "mx.bench.test"
workers = 1
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[[listener]]
name = "sub"
address = "127.0.0.1:0"
tls = "starttls"
auth = true
[tls]
cert = "{tmp}/cert.pem"
key = "{tmp}/key.pem"
[auth]
passwd = "{tmp}/passwd"
refuse_after = 1000000
slow_after = 1000000
[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[spool]
path = "{tmp}/spool"
[control]
socket = "{sock}"
[log]
file = "{tmp}/ringmx.log"
''')
    return conf


def sub_port(log):
    import re
    m = re.search(r"listening name=sub address=127\.0\.0\.1:(\d+)", open(log).read())
    return int(m.group(1))


def auth_loop(port, deadline, counts, errors, do_auth=True):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    plain = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()).decode()
    while time.monotonic() < deadline:
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=30)
            s.starttls(context=ctx)
            s.ehlo("auth.bench")
            code, _ = s.docmd("AUTH", "PLAIN " + plain) if do_auth else s.noop()
            if code == (235 if do_auth else 250):
                counts.append(1)
            else:
                errors.append(code)
            s.quit()
        except Exception as e:  # counted, the loop goes on until the deadline
            errors.append(str(e))


def bench(build, port, seconds):
    out = subprocess.run([f"{build}/bench/load/ringmx-bench", "--target", f"127.0.0.1:{port}",
                          "--concurrency", "20", "--duration", str(seconds), "--json"],
                         capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    report = json.loads(out.stdout)
    return report["messages_per_s"], report["latency_us"]["data_to_250"]["p99"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--auth-sessions", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-auth", action="store_true",
                    help="control: the same sessions do STARTTLS + EHLO + NOOP, no AUTH (the cost of "
                         "the client load and the handshakes alone)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ringmx-authbench-")
    try:
        conf = write_config(tmp, f"{tmp}/control.sock")
        log = f"{tmp}/ringmx.log"
        server, port = benchserver.start(f"{a.build}/tools/ringmx", conf, log, f"{tmp}/stderr")
        try:
            sport = sub_port(log)
            for r in range(a.rounds):
                alone = bench(a.build, port, a.seconds)
                counts, errors = [], []
                deadline = time.monotonic() + a.seconds + 1
                threads = [threading.Thread(target=auth_loop, args=(sport, deadline, counts, errors, not a.no_auth))
                           for _ in range(a.auth_sessions)]
                for t in threads:
                    t.start()
                busy = bench(a.build, port, a.seconds)
                for t in threads:
                    t.join(timeout=120)
                print(json.dumps({"round": r, "auth": not a.no_auth, "messages_per_s_alone": alone[0],
                                  "messages_per_s_with_auth": busy[0],
                                  "ratio": round(busy[0] / alone[0], 3) if alone[0] else None,
                                  "p99_us_alone": alone[1], "p99_us_with_auth": busy[1],
                                  "sessions_ok": len(counts),
                                  "sessions_per_s": round(len(counts) / (a.seconds + 1), 1),
                                  "errors": len(errors),
                                  "first_error": errors[0] if errors else None}), flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

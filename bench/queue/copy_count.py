#!/usr/bin/env python3
"""Counts the userspace copies of message bodies in ringmx (issue 10: "each body byte is copied at
most once in userspace between the receive buffer and the write to the log").

Builds bench/queue/memcpy_count.c into an LD_PRELOAD shim, starts `ringmx serve` under it (durable
queue log, one shard), and sends --messages messages of --size body bytes over one plain SMTP
connection, with or without MAIL FROM SIZE= (ringmx-bench sends none, so this script is its own
client). The shim's totals (bytes passed to memcpy/mempcpy/memmove through the PLT, per size
class) are read once the session is ready for MAIL and again after the last 250; the difference,
divided by the body bytes sent, is the copies per body byte. Only the server runs under the shim.

usage: python3 bench/queue/copy_count.py RINGMX [--messages 20] [--size 1048576]
           [--size-param on|off|both] [--dots] [--workers 1] [--json]
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import benchserver  # bench/queue/benchserver.py

HERE = os.path.dirname(os.path.abspath(__file__))


def read_counts(path):
    counts = {}
    with open(path) as f:
        for line in f:
            kind, cls, calls, nbytes = line.split()
            counts[(kind, cls)] = (int(calls), int(nbytes))
    return counts


def make_body(size, dots):
    """size octets of CRLF lines (76 + 2), every 10th starting with '.' if dots (so the client
    stuffs it: one more octet on the wire than in the body)."""
    lines = []
    total = 0
    i = 0
    while total < size:
        n = min(78, size - total)
        if n < 2:
            lines.append(b"x" * n)
            total += n
            break
        text = (b"." if dots and i % 10 == 0 else b"x") + b"y" * (n - 3)
        lines.append(text[: n - 2] + b"\r\n")
        total += n
        i += 1
    body = b"".join(lines)
    if not body.endswith(b"\r\n"):
        body = body[:-2] + b"\r\n"
    assert len(body) == size
    return body


def stuff(body):
    out = body.replace(b"\r\n.", b"\r\n..")
    if out.startswith(b"."):
        out = b"." + out
    return out


class Client:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def reply(self):
        while True:
            m = re.search(rb"(^|\r\n)(\d{3}) [^\r\n]*\r\n", self.buf)
            if m:
                end = m.end()
                text, self.buf = self.buf[:end], self.buf[end:]
                return int(m.group(2)), text
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data

    def cmd(self, line, want):
        self.sock.sendall(line)
        code, text = self.reply()
        if code != want:
            raise RuntimeError(f"{line!r}: {text!r}")
        return text


def run(ringmx, shim, args, size_param, tag):
    work = tempfile.mkdtemp(prefix="ringmx-copies-")
    spool = os.path.join(work, "spool")
    os.makedirs(spool)
    log = os.path.join(work, "ringmx.log")
    counts = os.path.join(work, "counts")
    conf = os.path.join(work, "ringmx.toml")
    benchserver.write_config(conf, spool, log, args.workers)
    env = dict(os.environ, LD_PRELOAD=shim, MEMCPY_COUNT_OUT=counts)
    server, port = benchserver.start(ringmx, conf, log, os.path.join(work, "stderr.log"), env)
    try:
        body = make_body(args.size, args.dots)
        wire = stuff(body) + b".\r\n"
        c = Client(port)
        c.reply()
        c.cmd(b"EHLO bench.test\r\n", 250)
        time.sleep(0.35)  # the shim writes its totals every 100 ms
        before = read_counts(counts)
        load = os.getloadavg()[0]
        t0 = time.monotonic()
        for _ in range(args.messages):
            mail = b"MAIL FROM:<bench@bench.test>"
            if size_param:
                mail += b" SIZE=%d" % len(body)
            c.cmd(mail + b"\r\n", 250)
            c.cmd(b"RCPT TO:<user@example.test>\r\n", 250)
            c.cmd(b"DATA\r\n", 354)
            c.sock.sendall(wire)
            code, text = c.reply()
            if code != 250:
                raise RuntimeError(f"end of data: {text!r}")
        elapsed = time.monotonic() - t0
        time.sleep(0.35)
        after = read_counts(counts)
        c.cmd(b"QUIT\r\n", 221)
        c.sock.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    body_bytes = args.messages * args.size
    delta = {k: (after[k][0] - before.get(k, (0, 0))[0], after[k][1] - before.get(k, (0, 0))[1])
             for k in after}
    total = sum(b for _, b in delta.values())
    large = sum(b for (kind, cls), (_, b) in delta.items() if cls in ("lt64k", "lt256k", "ge256k"))
    return {
        "case": tag, "size_param": size_param, "messages": args.messages, "size": args.size,
        "dots": args.dots, "body_bytes": body_bytes, "copied_bytes": total,
        "copies_per_body_byte": round(total / body_bytes, 4),
        "copies_per_body_byte_ge4k": round(large / body_bytes, 4),
        "by_class": {f"{k[0]} {k[1]}": {"calls": v[0], "bytes": v[1]}
                     for k, v in sorted(delta.items()) if v[0] or v[1]},
        "seconds": round(elapsed, 3), "load1": load,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("ringmx")
    p.add_argument("--messages", type=int, default=20)
    p.add_argument("--size", type=int, default=1048576)
    p.add_argument("--size-param", choices=["on", "off", "both"], default="both")
    p.add_argument("--dots", action="store_true", help="every 10th line starts with '.'")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    shim_dir = tempfile.mkdtemp(prefix="ringmx-shim-")
    shim = os.path.join(shim_dir, "memcpy_count.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim,
                    os.path.join(HERE, "memcpy_count.c"), "-lpthread"], check=True)
    try:
        modes = {"on": [True], "off": [False], "both": [False, True]}[args.size_param]
        for size_param in modes:
            tag = f"{args.messages} x {args.size} B, SIZE= {'on' if size_param else 'off'}"
            res = run(args.ringmx, shim, args, size_param, tag)
            if args.json:
                print(json.dumps(res), flush=True)
            else:
                print(f"{tag}: {res['copied_bytes']} bytes copied for {res['body_bytes']} body "
                      f"bytes = {res['copies_per_body_byte']} per body byte "
                      f"({res['copies_per_body_byte_ge4k']} in copies >= 4 KiB); "
                      f"load {res['load1']}")
                for k, v in res["by_class"].items():
                    print(f"    {k:16} {v['calls']:>9} calls {v['bytes']:>13} bytes")
    finally:
        shutil.rmtree(shim_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

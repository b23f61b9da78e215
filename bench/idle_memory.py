#!/usr/bin/env python3
"""Server memory per idle connection: ringmx with N idle SMTP connections (plaintext after EHLO,
after STARTTLS + TLS 1.3 (or 1.2) + EHLO, and on an implicit-TLS listener), optionally Postfix's
smtp-sink for reference. Loopback only, python3 stdlib only, bounded in time.

For each mode a fresh server is started, warmed up (connections opened, used and closed, so one-time
pools such as the receive-buffer ring and OpenSSL's caches count as baseline), measured (VmRSS from
/proc/PID/status, Pss from /proc/PID/smaps_rollup), then N connections are opened and brought to
the idle state, the server is measured again at N/2 and at N, and
    per connection = (after - before) / N.
The "second half" column is (after - at N/2) / (N - N/2): the marginal cost, free of one-time
growth that the warm-up missed. Kernel memory (socket buffers, io_uring requests) is not in RSS and
not counted. Prints a Markdown table, the command line and the machine.

The TLS modes use a self-signed ECDSA P-256 certificate and the client's default key exchange
(X25519) unless --cert rsa-chain (RSA-2048 leaf + intermediate, a handshake flight of ~3 KB, like a
public CA's chain) or --curve prime256v1 (the only group the client offers) say otherwise. Which
record layer each TLS connection got (kernel TLS or OpenSSL in userspace) is counted from the
server's log and printed under the table: the two cost very different amounts of RSS.

usage: python3 bench/idle_memory.py [RINGMX] [--connections 10000] [--modes plain,starttls,implicit]
           [--workers 0] [--cert ecdsa|rsa-chain] [--curve GROUP] [--tls-version 1.3|1.2]
           [--postfix-smtp-sink] [--timeout 300]
e.g.   python3 bench/idle_memory.py build/release/tools/ringmx --postfix-smtp-sink
"""
import argparse
import errno
import os
import platform
import resource
import selectors
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; lets connect() pick the port per 4-tuple
HZ = os.sysconf("SC_CLK_TCK")
TARGET_KIB = {"plain": 4, "starttls": 16, "implicit": 16}


class Deadline(Exception):
    pass


# ---- the server's memory -------------------------------------------------------------------

def memory(pid):
    """kB figures of a process: VmRSS, RssAnon (status) and Pss, Pss_Anon (smaps_rollup)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(rest.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Pss", "Pss_Anon"):
                out[key] = int(rest.split()[0])
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def socket_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def settle(pid, deadline, quiet_s=0.5, max_s=10.0):
    """Waits until the server used no CPU for `quiet_s` (it has finished with our traffic)."""
    end = min(time.time() + max_s, deadline)
    last = cpu_ticks(pid)
    quiet_since = time.time()
    while time.time() < end:
        time.sleep(0.1)
        now = cpu_ticks(pid)
        if now != last:
            last, quiet_since = now, time.time()
        elif time.time() - quiet_since >= quiet_s:
            return


def wait_sockets(pid, at_most, deadline):
    """Waits until the server holds at most `at_most` sockets (closed connections are gone)."""
    while time.time() < deadline:
        if socket_fds(pid) <= at_most:
            return True
        time.sleep(0.1)
    return False


# ---- the client: many connections driven by one selector -----------------------------------

class Conn:
    __slots__ = ("sock", "raw", "step", "buf", "tls", "noops", "mode")


def client_ctx(curve=None, version="1.3"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = ssl.TLSVersion.TLSv1_3 if version == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = ctx.maximum_version = v
    if curve:
        ctx.set_ecdh_curve(curve)  # OpenSSL 3: the only group offered (key share)
    return ctx


def reply_complete(buf):
    """The code of the last line if `buf` holds a whole (multi-line) reply, else None."""
    if not buf.endswith(b"\r\n"):
        return None
    last = buf[:-2].rsplit(b"\r\n", 1)[-1]
    if len(last) >= 4 and last[3:4] == b"-":
        return None
    return int(last[:3])


class Driver:
    """Opens connections and walks each to the idle state of its mode:
    plain:    connect, 220, EHLO, 250
    starttls: connect, 220, EHLO, 250, STARTTLS, 220, TLS handshake, EHLO, 250
    implicit: connect, TLS handshake, 220, EHLO, 250
    then `noops` NOOP round trips (warm-up only) and idle. At most `parallel` connections are
    between connect and idle at a time."""

    def __init__(self, port, sources, ctx, version="TLSv1.3"):
        self.version = version
        self.port = port
        self.sources = sources
        self.ctx = ctx
        self.sel = selectors.DefaultSelector()
        self.idle = []
        self.failed = 0
        self.errors = {}
        self.opened = 0

    def _open(self, mode, noops):
        src = self.sources[self.opened % len(self.sources)]
        self.opened += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if src != "127.0.0.1":
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
        rc = s.connect_ex(("127.0.0.1", self.port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self._fail(f"connect: {os.strerror(rc)}")
            return
        c = Conn()
        c.sock = c.raw = s
        c.step, c.buf, c.tls, c.noops, c.mode = "connect", b"", False, noops, mode
        self.sel.register(s, selectors.EVENT_WRITE, c)

    def _fail(self, why, c=None):
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1
        if c is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()

    def _want(self, c, events):
        self.sel.modify(c.sock, events, c)

    def _send(self, c, data):
        c.sock.sendall(data)  # a few bytes on a fresh socket: never blocks in practice
        c.buf = b""
        self._want(c, selectors.EVENT_READ)

    def _start_tls(self, c):
        self.sel.unregister(c.raw)
        c.sock = self.ctx.wrap_socket(c.raw, server_hostname="mx.bench.test",
                                      do_handshake_on_connect=False)
        c.tls = True
        c.step = "handshake"
        self.sel.register(c.sock, selectors.EVENT_WRITE, c)
        self._handshake(c)

    def _handshake(self, c):
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(c, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(c, selectors.EVENT_WRITE)
            return
        if c.sock.version() != self.version:
            raise ssl.SSLError(f"negotiated {c.sock.version()}")
        if c.mode == "implicit":
            c.step, c.buf = "banner", b""
            self._want(c, selectors.EVENT_READ)
        else:
            c.step = "ehlo2"
            self._send(c, b"EHLO client.bench.test\r\n")

    def _step(self, c, events):
        if c.step == "connect":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            if c.mode == "implicit":
                self._start_tls(c)
            else:
                c.step = "banner"
                self._want(c, selectors.EVENT_READ)
            return
        if c.step == "handshake":
            self._handshake(c)
            return
        try:
            data = c.sock.recv(4096)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        if not data:
            raise EOFError("server closed the connection")
        c.buf += data
        code = reply_complete(c.buf)
        if code is None:
            return
        expect = 220 if c.step in ("banner", "starttls") else 250
        if code != expect:
            raise RuntimeError(f"{c.step}: got {code}")
        if c.step == "banner":
            c.step = "ehlo"
            self._send(c, b"EHLO client.bench.test\r\n")
        elif c.step == "ehlo" and c.mode == "starttls":
            c.step = "starttls"
            self._send(c, b"STARTTLS\r\n")
        elif c.step == "starttls":
            self._start_tls(c)
        elif c.noops > 0:
            c.noops -= 1
            c.step = "noop"
            self._send(c, b"NOOP\r\n")
        else:
            self.sel.unregister(c.sock)
            self.idle.append(c)

    def run(self, mode, count, parallel, deadline, noops=0):
        """Brings `count` more connections to idle (or failed). Returns the seconds it took."""
        t0 = time.time()
        target_done = len(self.idle) + self.failed + count
        started = 0
        while len(self.idle) + self.failed < target_done:
            if time.time() > deadline:
                raise Deadline(f"{mode}: {len(self.idle)} idle after {time.time() - t0:.0f} s")
            in_flight = len(self.sel.get_map())
            while started < count and in_flight < parallel:
                self._open(mode, noops)
                started += 1
                in_flight += 1
            for key, events in self.sel.select(timeout=1.0):
                c = key.data
                try:
                    self._step(c, events)
                except (OSError, EOFError, RuntimeError, ssl.SSLError, ValueError) as e:
                    self._fail(f"{c.step}: {type(e).__name__}: {e}"[:120], c)
        return time.time() - t0

    def close_all(self):
        for c in self.idle:
            try:
                c.sock.close()
            except OSError:
                pass
        self.idle = []
        for key in list(self.sel.get_map().values()):
            key.data.sock.close()
        self.sel.close()


# ---- servers -------------------------------------------------------------------------------

def wait_log(path, needle, deadline, proc):
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                for line in f:
                    if needle in line:
                        return line
        time.sleep(0.05)
    raise RuntimeError(f"{needle!r} not in {path}")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_cert(d, kind):
    """ecdsa: one self-signed P-256 certificate (a small handshake). rsa-chain: RSA-2048 leaf +
    intermediate + root, served as leaf + intermediate, like a public CA's chain (a handshake flight
    of about 3 KB)."""
    key, cert = os.path.join(d, "mx.key"), os.path.join(d, "mx.pem")
    if kind == "ecdsa":
        openssl("req", "-x509", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=mx.bench.test")
        return cert, key
    p = lambda name: os.path.join(d, name)
    with open(p("ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(p("leaf.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=DNS:mx.bench.test\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", "-nodes", "-newkey", "rsa:2048", "-keyout", p("root.key"),
            "-out", p("root.pem"), "-days", "2", "-subj", "/O=Bench/CN=Bench Root CA",
            "-addext", "basicConstraints=critical,CA:TRUE")
    openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", p("int.key"),
            "-out", p("int.csr"), "-subj", "/O=Bench/CN=Bench Intermediate CA")
    openssl("x509", "-req", "-in", p("int.csr"), "-CA", p("root.pem"), "-CAkey", p("root.key"),
            "-CAcreateserial", "-days", "2", "-extfile", p("ca.ext"), "-out", p("int.pem"))
    openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", key, "-out", p("leaf.csr"),
            "-subj", "/CN=mx.bench.test")
    openssl("x509", "-req", "-in", p("leaf.csr"), "-CA", p("int.pem"), "-CAkey", p("int.key"),
            "-CAcreateserial", "-days", "2", "-extfile", p("leaf.ext"), "-out", p("leaf.pem"))
    with open(cert, "w") as out:
        for name in ("leaf.pem", "int.pem"):
            with open(p(name)) as f:
                out.write(f.read())
    return cert, key


def start_ringmx(binary, d, mode, workers, cert, key, deadline):
    tls = {"plain": "none", "starttls": "starttls", "implicit": "implicit"}[mode]
    conf, log = os.path.join(d, f"ringmx-{mode}.toml"), os.path.join(d, f"ringmx-{mode}.log")
    with open(conf, "w") as f:
        f.write(f'hostname = "mx.bench.test"\nworkers = {workers}\n'
                f'[[listener]]\nname = "mx"\naddress = "127.0.0.1:0"\ntls = "{tls}"\n')
        if tls != "none":
            f.write(f'[tls]\ncert = "{cert}"\nkey = "{key}"\n')
        f.write(f'[policy]\nlocal_domains = ["example.test"]\n'
                f'[spool]\npath = "{d}/spool-{mode}"\nmode = "discard"\n'
                f'[timeouts]\nidle_s = 3600\ngreet_pause_ms = 0\n[log]\nfile = "{log}"\n'
                # Thousands of sessions per loopback address: no per-client limits here.
                f'[limits]\nexempt = ["127.0.0.0/8"]\n')
    proc = subprocess.Popen([binary, "serve", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, f"ringmx-{mode}.stderr"), "w"))
    try:
        line = wait_log(log, "listening name=mx address=127.0.0.1:",
                        min(deadline, time.time() + 20), proc)
        port = int(line.split("address=127.0.0.1:")[1].split()[0])
        wait_log(log, "ringmx ready", min(deadline, time.time() + 20), proc)
    except Exception:
        stop(proc)
        raise
    return proc, port, log


def record_layers(log):
    """(kernel TLS availability line, {record_layer value: connections}) from a ringmx log."""
    probe, counts = "", {}
    with open(log, errors="replace") as f:
        for line in f:
            if " kernel TLS: " in line and not probe:
                probe = line.split(" kernel TLS: ", 1)[1].strip()
            i = line.find(" record_layer=")
            if i >= 0:
                layer = line[i + len(" record_layer="):].split()[0]
                counts[layer] = counts.get(layer, 0) + 1
    return probe, counts


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_smtp_sink(d, connections, deadline):
    port = free_port()
    cmd = ["/usr/sbin/smtp-sink"]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]  # smtp-sink refuses to keep root privileges
    # -m: it serves 256 connections at a time by default and leaves the rest in the listen queue.
    cmd += ["-m", str(connections + 1000), f"127.0.0.1:{port}", "4096"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "smtp-sink.stderr"), "w"))
    end = min(deadline, time.time() + 10)
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"smtp-sink exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError("smtp-sink did not start")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- one measurement -----------------------------------------------------------------------

RECV_BUFFERS_PER_SHARD = 512  # net/shard.cc kBufferCount: each shard's provided receive buffers


def warmup_noops(a):
    """NOOPs per warm-up connection: by default enough reads for every shard to have filled each
    of its receive buffers (whose pages stay resident once touched) before the baseline."""
    if a.warmup_noops is not None:
        return a.warmup_noops
    shards = a.workers or os.cpu_count() or 1
    reads = 2 * RECV_BUFFERS_PER_SHARD * shards
    return max(4, -(-reads // max(a.warmup, 1)) - 1)

def measure(server, proc, port, mode, a, deadline):
    pid = proc.pid
    ctx = client_ctx(a.curve, a.tls_version)
    version = "TLSv" + a.tls_version
    sources = [f"127.0.0.{2 + i}" for i in range(a.sources)] if a.sources > 0 else ["127.0.0.1"]
    base_sockets = socket_fds(pid)
    # Warm-up: one-time allocations (receive-buffer ring pages, allocator pages, OpenSSL caches)
    # belong to the baseline. The NOOPs make each shard take every receive buffer at least once.
    warm = Driver(port, sources, ctx, version)
    warm.run(mode, a.warmup, a.warmup_parallel, deadline, noops=warmup_noops(a))
    warm_failed = warm.failed
    warm.close_all()
    if not wait_sockets(pid, base_sockets, min(deadline, time.time() + 30)):
        print(f"warning: {server} {mode}: server still holds warm-up sockets", file=sys.stderr)
    settle(pid, deadline)
    before = memory(pid)

    d = Driver(port, sources, ctx, version)
    half = a.connections // 2
    secs = d.run(mode, half, a.parallel, deadline)
    settle(pid, deadline)
    mid = memory(pid)
    mid_idle = len(d.idle)
    secs += d.run(mode, a.connections - half, a.parallel, deadline)
    settle(pid, deadline)
    after = memory(pid)
    held = socket_fds(pid) - base_sockets
    n = len(d.idle)
    if d.failed or warm_failed:
        print(f"warning: {server} {mode}: {d.failed} failed, {warm_failed} failed in warm-up: "
              f"{d.errors or warm.errors}", file=sys.stderr)
    d.close_all()
    wait_sockets(pid, base_sockets, min(deadline, time.time() + 30))
    return {"server": server, "mode": mode, "n": n, "held": held, "failed": d.failed,
            "secs": secs, "before": before, "mid": mid, "after": after,
            "second": n - mid_idle}


def row(r):
    n = max(r["n"], 1)
    b, m, x = r["before"], r["mid"], r["after"]
    rss = (x["VmRSS"] - b["VmRSS"]) * 1024 / n
    pss = (x["Pss"] - b["Pss"]) * 1024 / n
    anon = (x["RssAnon"] - b["RssAnon"]) * 1024 / n
    marg = (x["VmRSS"] - m["VmRSS"]) * 1024 / max(r["second"], 1)
    target = TARGET_KIB.get(r["mode"]) if r["server"] == "ringmx" else None
    verdict = "-" if target is None else ("yes" if rss <= target * 1024 else "**no**")
    return (f"| {r['server']} | {r['mode']} | {r['n']} ({r['held']} held, {r['failed']} failed) | "
            f"{b['VmRSS'] / 1024:.1f} | {x['VmRSS'] / 1024:.1f} | {rss:.0f} | {rss / 1024:.2f} | "
            f"{pss / 1024:.2f} | {anon / 1024:.2f} | {marg / 1024:.2f} | "
            f"{'-' if target is None else f'{target} KiB'} {verdict} | {r['secs']:.1f} |")


def machine(binary):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    # The checkout the binary was built from (best effort: HEAD of the git tree it lies in).
    where = os.path.dirname(os.path.abspath(binary))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=where).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=where).stdout.strip()
        if dirty and commit != "unknown":
            commit += " + uncommitted changes"
    except OSError:
        commit = "unknown"
    return (f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1048576:.1f} GiB RAM, Linux "
            f"{platform.release()}, {ossl}, Python {platform.python_version()}; "
            f"ringmx checkout {commit}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ringmx", nargs="?", default="build/release/tools/ringmx")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--modes", default="plain,starttls,implicit",
                    help="comma-separated: plain, starttls, implicit (ringmx)")
    ap.add_argument("--workers", type=int, default=0, help="ringmx workers (0: one per core)")
    ap.add_argument("--warmup", type=int, default=400, help="connections before the baseline")
    ap.add_argument("--warmup-noops", type=int, default=None,
                    help="NOOP round trips per warm-up connection (default: enough for every "
                    "shard to cycle its receive buffers twice, at least 4)")
    ap.add_argument("--warmup-parallel", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=200,
                    help="connections between connect and idle at a time")
    ap.add_argument("--sources", type=int, default=4,
                    help="client addresses 127.0.0.2.. (0: 127.0.0.1 only)")
    ap.add_argument("--cert", choices=("ecdsa", "rsa-chain"), default="ecdsa",
                    help="server certificate: self-signed P-256, or RSA-2048 leaf + intermediate")
    ap.add_argument("--curve", default=None, help="the one key-exchange group the client offers "
                    "(e.g. prime256v1); default: Python's list (X25519 first)")
    ap.add_argument("--tls-version", choices=("1.2", "1.3"), default="1.3",
                    help="the TLS version the client insists on")
    ap.add_argument("--timeout", type=float, default=300, help="whole run, seconds")
    ap.add_argument("--postfix-smtp-sink", action="store_true",
                    help="also measure /usr/sbin/smtp-sink (plaintext) for reference")
    a = ap.parse_args()
    deadline = time.time() + a.timeout
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in TARGET_KIB:
            ap.error(f"unknown mode {m!r}")
    if not os.access(a.ringmx, os.X_OK):
        ap.error(f"{a.ringmx} is not executable")

    # Our sockets plus the server's: the server inherits this limit.
    need = a.connections + a.warmup_parallel + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
        except (ValueError, OSError):
            ap.error(f"RLIMIT_NOFILE hard limit {hard} < {need}; lower --connections")
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    results, notes, failures = [], [], 0
    with tempfile.TemporaryDirectory(prefix="ringmx-idlemem-") as d:
        cert, key = make_cert(d, a.cert)
        for mode in modes:
            proc, port, log = start_ringmx(a.ringmx, d, mode, a.workers, cert, key, deadline)
            try:
                results.append(measure("ringmx", proc, port, mode, a, deadline))
            except Deadline as e:
                print(f"time limit: {e}", file=sys.stderr)
                break
            except (OSError, RuntimeError) as e:  # e.g. the server died: /proc/PID is gone
                print(f"ringmx {mode}: measurement failed ({e}); server exit status "
                      f"{proc.poll()}", file=sys.stderr)
                failures += 1
            finally:
                stop(proc)
            if mode != "plain":
                probe, counts = record_layers(log)
                notes.append(f"ringmx {mode}: TLS connections by record layer (warm-up included): "
                             + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
                             + (f"; start-up probe: kernel TLS {probe}" if probe else ""))
        if a.postfix_smtp_sink and time.time() < deadline:
            proc, port = start_smtp_sink(d, a.connections, deadline)
            try:
                results.append(measure("smtp-sink", proc, port, "plain", a, deadline))
            except Deadline as e:
                print(f"time limit: {e}", file=sys.stderr)
            except (OSError, RuntimeError) as e:
                print(f"smtp-sink: measurement failed ({e})", file=sys.stderr)
                failures += 1
            finally:
                stop(proc)

    print("| server | mode | idle connections | RSS before MiB | RSS after MiB | RSS B/conn | "
          "RSS KiB/conn | PSS KiB/conn | RssAnon KiB/conn | RSS KiB/conn, 2nd half | "
          "target, met | seconds to open |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(row(r))
    print()
    cert = {"ecdsa": "self-signed ECDSA P-256 certificate",
            "rsa-chain": "RSA-2048 leaf + intermediate chain"}[a.cert]
    print(f"plain: 220, EHLO, 250, idle. starttls: ... STARTTLS, 220, TLS {a.tls_version} "
          f"handshake ({cert}, key exchange {a.curve or 'X25519 (client default)'}, "
          f"no resumption), EHLO, 250, idle. "
          f"implicit: TLS {a.tls_version} handshake, 220, EHLO, 250, idle.")
    print(f"ringmx workers = {a.workers}, spool mode discard, idle_s 3600; warm-up {a.warmup} "
          f"connections x {warmup_noops(a)} NOOPs before the baseline. RSS = VmRSS "
          f"(/proc/PID/status), PSS = Pss (/proc/PID/smaps_rollup); kernel socket memory not "
          f"included.")
    for note in notes:
        print(note)
    print(f"command: python3 bench/idle_memory.py {shlex.join(sys.argv[1:])}")
    print(f"machine: {machine(a.ringmx)}")
    return 0 if results and not failures and all(r["failed"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

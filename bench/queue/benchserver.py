"""Shared by the bench/queue scripts: a loopback config for `ringmx serve` and a start that waits
for the server to be ready. Benchmarks only; every wait is bounded."""

import os
import re
import subprocess
import time


def write_config(path, spool, log, workers, sock=None):
    """Writes a config: one plain listener "mx" on 127.0.0.1:0, relay from loopback, the queue in
    `spool`, the log in `log`, and a control socket when `sock` is given."""
    control = f'[control]\nsocket = "{sock}"\n' if sock else ""
    with open(path, "w") as f:
        f.write(f'''hostname = "mx.bench.test"
workers = {workers}
[[listener]]
name = "mx"
address = "127.0.0.1:0"
[policy]
local_domains = ["example.test"]
relay_networks = ["127.0.0.0/8"]
[spool]
path = "{spool}"
{control}[log]
file = "{log}"
''')


def start(ringmx, conf, log, stderr_path, env=None, tries=200):
    """Starts `ringmx serve -c conf` and waits (at most tries x 50 ms) until its log says ready.
    Returns (process, port); raises RuntimeError (with the end of stderr) if it does not start."""
    server = subprocess.Popen([ringmx, "serve", "-c", conf], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(stderr_path, "w"))
    for _ in range(tries):
        text = open(log).read() if os.path.exists(log) else ""
        m = re.search(r"listening name=mx address=127\.0\.0\.1:(\d+)", text)
        if m and "ringmx ready" in text:
            return server, int(m.group(1))
        if server.poll() is not None:
            break
        time.sleep(0.05)
    if server.poll() is None:
        server.kill()
        server.wait()
    raise RuntimeError("ringmx did not start: " + open(stderr_path).read()[-2000:])

#!/usr/bin/python3
"""A small SMTP server for tests that stores every message it accepts (the bounce hop of ringmx's
delivery tests: where DSNs are sent). Test-only; standard library only (asyncio streams).

usage: capture_smtp.py --dir DIR [--port N] [--extensions PIPELINING,8BITMIME]

Listens on 127.0.0.1:N (0: any free port) and writes the port it bound to DIR/port (complete once
the file exists: written to a temporary name, then renamed). Each accepted message becomes
DIR/<n>.eml (the data as received: dot-unstuffing undone, line ends kept, without the final
".\r\n") and DIR/<n>.env (the MAIL command line, then one line per accepted RCPT command, as sent,
each ending in LF), n = 1, 2, ... in the order the messages were accepted; the .env file is renamed
into place last, so a reader that sees <n>.env sees the whole message. DIR/sessions holds the number
of connections accepted so far (rewritten, by rename, at each new one), so that a test can see
whether its client reused a connection.

Canned replies: DIR/replies, read again at every RCPT (so a test may rewrite it at any time; write
it to another name and rename it), holds lines "address<TAB>reply", e.g.
"gone@example.test\t550 5.1.1 no such user"; a recipient listed there gets that reply (a 2xx reply
accepts it). Addresses are compared without regard to case.
"""

import argparse
import asyncio
import os
import signal

MAX_LINE = 1 << 20  # longest command or data line accepted


class Capture:
    def __init__(self, directory, extensions):
        self.directory = directory
        self.extensions = extensions
        self.count = 0
        self.sessions = 0

    def count_session(self):
        self.sessions += 1
        path = os.path.join(self.directory, "sessions")
        with open(path + ".tmp", "w", encoding="ascii") as f:
            f.write("%d\n" % self.sessions)
        os.rename(path + ".tmp", path)

    def canned_reply(self, address):
        try:
            with open(os.path.join(self.directory, "replies"), encoding="utf-8") as f:
                for line in f:
                    key, sep, reply = line.rstrip("\r\n").partition("\t")
                    if sep and key.lower() == address.lower():
                        return reply
        except FileNotFoundError:
            pass
        return None

    def store(self, mail_line, rcpt_lines, data):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(data)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".env.tmp", "wb") as f:
            f.write(mail_line + b"\n")
            for line in rcpt_lines:
                f.write(line + b"\n")
        os.rename(base + ".env.tmp", base + ".env")
        return self.count

    async def session(self, reader, writer):
        async def reply(text):
            writer.write(text.encode() + b"\r\n")
            await writer.drain()

        mail_line = None
        rcpt_lines = []
        self.count_session()
        try:
            await reply("220 capture.test ESMTP capture_smtp.py")
            while True:
                line = await reader.readline()
                if not line:
                    return
                command = line.rstrip(b"\r\n")
                verb = command[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    lines = ["capture.test"] + self.extensions
                    for i, text in enumerate(lines):
                        sep = " " if i == len(lines) - 1 else "-"
                        writer.write(("250" + sep + text + "\r\n").encode())
                    await writer.drain()
                    mail_line, rcpt_lines = None, []
                elif verb == b"HELO":
                    await reply("250 capture.test")
                    mail_line, rcpt_lines = None, []
                elif command.upper().startswith(b"MAIL FROM:"):
                    if mail_line is not None:
                        await reply("503 5.5.1 nested MAIL")
                        continue
                    mail_line, rcpt_lines = command, []
                    await reply("250 2.1.0 ok")
                elif command.upper().startswith(b"RCPT TO:"):
                    if mail_line is None:
                        await reply("503 5.5.1 MAIL first")
                        continue
                    path = command[8:].strip()
                    address = path[1:path.find(b">")] if path.startswith(b"<") else path
                    canned = self.canned_reply(address.decode("utf-8", "replace"))
                    if canned is not None and not canned.startswith("2"):
                        await reply(canned)
                        continue
                    rcpt_lines.append(command)
                    await reply(canned or "250 2.1.5 ok")
                elif verb == b"DATA":
                    if not rcpt_lines:
                        await reply("554 5.5.1 no valid recipients")
                        continue
                    await reply("354 go ahead")
                    data = bytearray()
                    while True:
                        data_line = await reader.readline()
                        if not data_line:
                            return
                        if data_line == b".\r\n":
                            break
                        if data_line.startswith(b"."):
                            data_line = data_line[1:]
                        data += data_line
                    n = self.store(mail_line, rcpt_lines, bytes(data))
                    mail_line, rcpt_lines = None, []
                    await reply("250 2.0.0 stored as %d" % n)
                elif verb == b"RSET":
                    mail_line, rcpt_lines = None, []
                    await reply("250 2.0.0 ok")
                elif verb == b"NOOP":
                    await reply("250 2.0.0 ok")
                elif verb == b"QUIT":
                    await reply("221 2.0.0 bye")
                    return
                else:
                    await reply("500 5.5.2 unknown command")
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            return
        finally:
            writer.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--extensions", default="PIPELINING,8BITMIME")
    args = parser.parse_args()
    extensions = [e for e in args.extensions.split(",") if e]
    capture = Capture(args.dir, extensions)
    server = await asyncio.start_server(capture.session, "127.0.0.1", args.port, limit=MAX_LINE)
    port = server.sockets[0].getsockname()[1]
    port_file = os.path.join(args.dir, "port")
    with open(port_file + ".tmp", "w", encoding="ascii") as f:
        f.write("%d\n" % port)
    os.rename(port_file + ".tmp", port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signo in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signo, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())

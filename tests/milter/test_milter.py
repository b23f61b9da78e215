#!/usr/bin/python3
"""A test milter for ringmx's milter tests, written with Debian's python3-milter (libmilter).

Run with Debian's interpreter (the module is Debian's python3-milter, not on PyPI's path):

    /usr/bin/python3 test_milter.py PORT LOG [--symlist] [--slow-seconds N]
                                             [--session-markers "TOKEN TOKEN ..."]

It listens on inet:PORT@127.0.0.1 and appends one JSON object per line to LOG for every callback
(and for the negotiation): {"conn": N, "stage": ..., "args": [...], "macros": {...},
"result": ..., "mods": [...]}. `conn` numbers the milter connections from 1; `macros` holds every
macro of MACROS that libmilter can give at that callback (libmilter keeps a stage's macros
visible at later stages of the same message: {client_addr} from CONNECT is still there at MAIL);
`result` is what the callback answered; `mods` the changes it asked for (end of message). A line
is written and flushed before the callback returns, so once the MTA side has the reply, the line
is in the log (the "close" line comes after the MTA closed or sent QUIT).

PROTOCOL NEGOTIATION. The milter wants every stage (no SMFIP_NO*), answers every stage (no
SMFIP_NR*: its replies are what the tests check), asks for rejected recipients (SMFIP_RCPT_REJ)
and keeps header values without their leading space (no SMFIP_HDR_LEADSPC, as most milters); it
accepts every action the MTA offers (SMFIF_*), and SMFIR_SKIP when offered. With --symlist it
also sends its own macro lists (SMFIR_SETSYMLIST in the OPTNEG reply), which replace the MTA's:
    CONNECT: "{client_addr}"   MAIL: "{mail_addr} i"   end of message: "{rcpt_addr}"
and no list for HELO, RCPT, DATA and end of headers (so the MTA sends no macros there).

MARKERS: ONE process serves every test; the behaviour of each session and message is chosen by
marker tokens written into what the MTA sends:
  - the CONNECT host name, split at '.'          (hold for the whole connection)
  - the HELO name, split at '.'                  (hold for the rest of the connection)
  - the MAIL address's local part, split at '+'  (hold for the message)
  - each RCPT address's local part, split at '+' (its rcpt-stage tokens hold for that RCPT only;
                                                  all of them hold for the rest of the message)
  - the Subject header's value, split at white space (hold for the message)
  - --session-markers: tokens every connection starts with (for tests that cannot choose the
    CONNECT host name, e.g. through the server, which sends the client's verified name or
    "[address]": --session-markers "reject-connect")
e.g. CONNECT host "reject-connect.example", sender "<user+tempfail-mail@example.org>",
"Subject: addheader reject".

A verdict token is ACTION or ACTION-STAGE (no stage: end of message):
  ACTION: accept | reject | tempfail | discard
          custom      setreply("554", "5.7.1", "Custom rejection by test milter"), then REJECT
          customtemp  setreply("451", "4.7.1", "Custom tempfail by test milter"), then TEMPFAIL
          multiline   setreply("550", "5.7.1", "First line", "Second line"), then REJECT
          progress    sends SMFIR_PROGRESS twice (0.2 s apart), then CONTINUE
          slow        sleeps --slow-seconds (default 3, at most 30), then CONTINUE
          skip        (body only) answers SMFIR_SKIP to the first BODY chunk
  STAGE: connect | helo | mail | rcpt | data | header | eoh | body | eom
The first verdict token for the current stage decides; none: CONTINUE.

Change tokens (applied at end of message, in the order written, before the final answer):
  addheader    addheader("X-Test-Added", "added by test milter")            ('h')
  insheader    addheader("X-Test-Inserted", "inserted by test milter", 0)   ('i', index 0)
  chgheader    chgheader("X-Test-Change", 1, "changed by test milter")      ('m')
  delheader    chgheader("X-Test-Delete", 1, "")                            ('m', empty value)
  chgfrom      chgfrom("<changed-sender@example.org>")                      ('e')
  chgfromargs  chgfrom("<changed-sender@example.org>", "RET=HDRS")           ('e' with args)
  addrcpt      addrcpt("<added-rcpt@example.org>")                          ('+')
  addrcptpar   addrcpt("<added-par@example.org>", "NOTIFY=NEVER")            ('2')
  delrcpt      delrcpt(the message's last recipient, as received)           ('-')
  replbody     replacebody("Replaced body line 1.\r\n"), then ("Replaced body line 2.\r\n")
               (libmilter sends both in one 'b' packet)
  quarantine   quarantine("held by test milter")                            ('q')
"""

import argparse
import json
import socket
import sys
import threading
import time

import Milter

MACROS = [
    "j", "_", "v", "i", "{daemon_name}", "{daemon_addr}", "{client_addr}", "{client_name}",
    "{client_port}", "{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}",
    "{cert_issuer}", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}",
    "{mail_host}", "{mail_mailer}", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}",
]

VERDICTS = {"accept", "reject", "tempfail", "discard", "custom", "customtemp", "multiline",
            "progress", "slow", "skip"}
STAGES = {"connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom"}

ARGS = None
LOG_LOCK = threading.Lock()
LOG_FILE = None
CONN_LOCK = threading.Lock()
CONN_SEQ = 0


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogateescape").decode(
            "utf-8", errors="backslashreplace")
    return str(value)


def local_part_tokens(address):
    addr = text(address).strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1]
    local = addr.rsplit("@", 1)[0] if "@" in addr else addr
    return [t for t in local.split("+") if t]


def parse_verdict(token):
    if "-" in token:
        action, stage = token.rsplit("-", 1)
    else:
        action, stage = token, "eom"
    if action in VERDICTS and stage in STAGES:
        return action, stage
    return None


class TestMilter(Milter.Base):
    def __init__(self):
        global CONN_SEQ
        with CONN_LOCK:
            CONN_SEQ += 1
            self.conn = CONN_SEQ
        self.session_tokens = ARGS.session_markers.split()  # then CONNECT host, HELO name
        self.mail_tokens = []     # MAIL's local part
        self.rcpt_tokens = []     # the current RCPT's local part
        self.rcpts_tokens = []    # every RCPT's local part so far
        self.subject_tokens = []
        self.recipients = []
        self.pending_mods = None

    # ---- logging ---------------------------------------------------------------------------

    def macros(self):
        seen = {}
        for name in MACROS:
            try:
                value = self.getsymval(name)
            except Exception:  # no context (negotiation)
                value = None
            if value is not None:
                seen[name] = text(value)
        return seen

    def log_event(self, stage, args, result, mods=None, macros=True):
        entry = {"conn": self.conn, "stage": stage, "args": [text(a) for a in args],
                 "macros": self.macros() if macros else {}, "result": result,
                 "mods": mods or []}
        line = json.dumps(entry, sort_keys=True) + "\n"
        with LOG_LOCK:
            LOG_FILE.write(line)
            LOG_FILE.flush()

    # ---- markers ---------------------------------------------------------------------------

    def tokens(self, stage):
        if stage == "rcpt":
            return self.session_tokens + self.mail_tokens + self.rcpt_tokens
        return self.session_tokens + self.mail_tokens + self.rcpts_tokens + self.subject_tokens

    def reset_message(self):
        self.mail_tokens = []
        self.rcpt_tokens = []
        self.rcpts_tokens = []
        self.subject_tokens = []
        self.recipients = []

    def decide(self, stage, args):
        """Runs the first verdict token for `stage`; logs and returns the libmilter code."""
        for token in self.tokens(stage):
            verdict = parse_verdict(token)
            if verdict is None or verdict[1] != stage:
                continue
            action = verdict[0]
            if action == "accept":
                return self.answer(stage, args, "accept", Milter.ACCEPT)
            if action == "reject":
                return self.answer(stage, args, "reject", Milter.REJECT)
            if action == "tempfail":
                return self.answer(stage, args, "tempfail", Milter.TEMPFAIL)
            if action == "discard":
                return self.answer(stage, args, "discard", Milter.DISCARD)
            if action == "custom":
                self.setreply("554", "5.7.1", "Custom rejection by test milter")
                return self.answer(stage, args, "custom", Milter.REJECT)
            if action == "customtemp":
                self.setreply("451", "4.7.1", "Custom tempfail by test milter")
                return self.answer(stage, args, "customtemp", Milter.TEMPFAIL)
            if action == "multiline":
                self.setreply("550", "5.7.1", "First line", "Second line")
                return self.answer(stage, args, "multiline", Milter.REJECT)
            if action == "progress":
                self.progress()
                time.sleep(0.2)
                self.progress()
                return self.answer(stage, args, "progress", Milter.CONTINUE)
            if action == "slow":
                seconds = min(max(ARGS.slow_seconds, 0.0), 30.0)
                self.log_event(stage + "-sleeping", args, "slow")
                time.sleep(seconds)
                return self.answer(stage, args, "slow", Milter.CONTINUE)
            if action == "skip" and stage == "body" and self._protocol & Milter.P_SKIP:
                return self.answer(stage, args, "skip", Milter.SKIP)
        return self.answer(stage, args, "continue", Milter.CONTINUE)

    def answer(self, stage, args, result, code):
        # End of message: its log line carries the changes asked for before the answer.
        self.log_event(stage, args, result, self.pending_mods if stage == "eom" else None)
        return code

    # ---- negotiation -----------------------------------------------------------------------

    def negotiate(self, opts):
        offered = list(opts)
        actions, protocol = opts[0], opts[1]
        self._actions = actions
        # Every stage and every reply: clear all SMFIP_NO* and SMFIP_NR* bits; keep SKIP when
        # offered; ask for rejected recipients; no leading space.
        wanted = protocol & (Milter.P_SKIP | Milter.P_RCPT_REJ)
        self._protocol = wanted
        opts[1] = wanted
        opts[2] = 0
        opts[3] = 0
        if ARGS.symlist:
            # Milter.Base.setsymlist hands the C module bytes, which wants str (python3-milter
            # 1.0.5): call the context directly.
            self._ctx.setsymlist(Milter.M_CONNECT, "{client_addr}")
            self._ctx.setsymlist(Milter.M_ENVFROM, "{mail_addr} i")
            self._ctx.setsymlist(Milter.M_EOM, "{rcpt_addr}")
        self.log_event("negotiate", [hex(v) for v in offered] + [hex(wanted)], "continue",
                       macros=False)
        return Milter.CONTINUE

    # ---- callbacks -------------------------------------------------------------------------

    def connect(self, hostname, family, hostaddr):
        self.session_tokens += [t for t in text(hostname).split(".") if t]
        fam = {socket.AF_INET: "inet", socket.AF_INET6: "inet6"}.get(
            family, "unix" if family == socket.AF_UNIX else str(family))
        args = [hostname, fam]
        if isinstance(hostaddr, tuple):
            args += [str(x) for x in hostaddr[:2]]
        elif hostaddr is not None:
            args.append(text(hostaddr))
        return self.decide("connect", args)

    def hello(self, hostname):
        self.session_tokens += [t for t in text(hostname).split(".") if t]
        return self.decide("helo", [hostname])

    def envfrom(self, mailfrom, *params):
        self.reset_message()
        self.mail_tokens = local_part_tokens(mailfrom)
        return self.decide("mail", [mailfrom] + list(params))

    def envrcpt(self, to, *params):
        self.rcpt_tokens = local_part_tokens(to)
        code = self.decide("rcpt", [to] + list(params))
        self.recipients.append(text(to))
        self.rcpts_tokens += self.rcpt_tokens
        self.rcpt_tokens = []
        return code

    def data(self):
        return self.decide("data", [])

    def header(self, name, value):
        if text(name).lower() == "subject":
            self.subject_tokens += text(value).split()
        return self.decide("header", [name, value])

    def eoh(self):
        return self.decide("eoh", [])

    def body(self, chunk):
        return self.decide("body", [chunk])

    def unknown(self, command):
        return self.answer("unknown", [command], "continue", Milter.CONTINUE)

    def eom(self):
        mods = []
        for token in self.tokens("eom"):
            if token == "addheader":
                self.addheader("X-Test-Added", "added by test milter")
                mods.append(["addheader", "X-Test-Added", "added by test milter"])
            elif token == "insheader":
                self.addheader("X-Test-Inserted", "inserted by test milter", 0)
                mods.append(["insheader", "0", "X-Test-Inserted", "inserted by test milter"])
            elif token == "chgheader":
                self.chgheader("X-Test-Change", 1, "changed by test milter")
                mods.append(["chgheader", "X-Test-Change", "1", "changed by test milter"])
            elif token == "delheader":
                self.chgheader("X-Test-Delete", 1, "")
                mods.append(["delheader", "X-Test-Delete", "1"])
            elif token == "chgfrom":
                self.chgfrom("<changed-sender@example.org>")
                mods.append(["chgfrom", "<changed-sender@example.org>"])
            elif token == "chgfromargs":
                self.chgfrom("<changed-sender@example.org>", "RET=HDRS")
                mods.append(["chgfrom", "<changed-sender@example.org>", "RET=HDRS"])
            elif token == "addrcpt":
                self.addrcpt("<added-rcpt@example.org>")
                mods.append(["addrcpt", "<added-rcpt@example.org>"])
            elif token == "addrcptpar":
                self.addrcpt("<added-par@example.org>", "NOTIFY=NEVER")
                mods.append(["addrcpt", "<added-par@example.org>", "NOTIFY=NEVER"])
            elif token == "delrcpt" and self.recipients:
                self.delrcpt(self.recipients[-1])
                mods.append(["delrcpt", self.recipients[-1]])
            elif token == "replbody":
                self.replacebody(b"Replaced body line 1.\r\n")
                self.replacebody(b"Replaced body line 2.\r\n")
                mods.append(["replbody"])
            elif token == "quarantine":
                self.quarantine("held by test milter")
                mods.append(["quarantine", "held by test milter"])
        code = self.decide_eom(mods)
        self.reset_message()
        return code

    def decide_eom(self, mods):
        self.pending_mods = mods
        try:
            return self.decide("eom", [])
        finally:
            self.pending_mods = None

    def abort(self):
        self.reset_message()
        self.log_event("abort", [], "continue")
        return Milter.CONTINUE

    def close(self):
        self.log_event("close", [], "continue", macros=False)
        return Milter.CONTINUE


def main():
    global ARGS, LOG_FILE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("log")
    parser.add_argument("--symlist", action="store_true",
                        help="send our own macro lists in the OPTNEG reply")
    parser.add_argument("--slow-seconds", type=float, default=3.0,
                        help="how long the 'slow' marker sleeps (at most 30)")
    parser.add_argument("--session-markers", default="",
                        help="marker tokens every connection starts with (space-separated)")
    ARGS = parser.parse_args()
    LOG_FILE = open(ARGS.log, "a", encoding="utf-8")
    Milter.factory = TestMilter
    print("test_milter: listening on 127.0.0.1:%d" % ARGS.port, flush=True)
    Milter.runmilter("ringmx-test-milter", "inet:%d@127.0.0.1" % ARGS.port, timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

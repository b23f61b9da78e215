#!/usr/bin/env python3
"""Writes the hand-made seeds of tests/fuzz/corpus/<target>/ (the files named seed-*).

Each target's input format is described at the top of its fuzz_<target>.cc. Crash reproducers
(files named crash-*) and configuration files copied from the repository live beside the seeds
and are not touched. Run it after changing a format: python3 tests/fuzz/make_seeds.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


def crlf(*lines):
    return "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")


# --- session: [config][n][n events][client bytes] -----------------------------------------------
# Config bits: 0-1 listener (0 plain, 1 STARTTLS, 2 implicit, 3 STARTTLS + tls_required),
# 2 small limits, 3 greet pause, 4 client certs, 5 no_tls_hosts, 6 implicit fails, 7 relay.
FEED_SMALL, FEED_MEDIUM, FEED_LARGE, FEED_REST = 0, 1, 2, 3
OK, ERROR, TLS_UP, TLS_FAILED, TIME, TIMEOUT, SHUTDOWN, GREET, BYTEWISE = 4, 5, 6, 7, 8, 9, 10, 11, 12
CHECK_ANSWER = 13  # arg & 3: accept, reject, temporary failure, refuse


def ev(event, arg=0):
    return bytes([(arg << 4) | event])


def feed(n):
    """Events that feed exactly n bytes."""
    out = b""
    while n >= 256:
        out += ev(FEED_MEDIUM, 15)
        n -= 256
    while n >= 16:
        out += ev(FEED_MEDIUM, min(n // 16, 16) - 1)
        n -= (min(n // 16, 16)) * 16
    if n:
        out += ev(FEED_SMALL, n - 1)
    return out


def session(name, config, text, events=b""):
    assert len(events) < 256
    write("session", name, bytes([config, len(events)]) + events + text)


MESSAGE = crlf(
    "EHLO client.example.org",
    "MAIL FROM:<alice@example.org> SIZE=120 BODY=8BITMIME",
    "RCPT TO:<bob@example.test>",
    "RCPT TO:<Postmaster>",
    "DATA",
    "Subject: hello",
    "",
    "..a dot-stuffed line",
    "last line",
    ".",
    "QUIT",
)
session("plain-message", 0, MESSAGE)
session("plain-message-bytewise", 0, MESSAGE, ev(BYTEWISE, 15) * 12 + ev(FEED_REST))
session("dsn-message", 0, crlf(
    "EHLO client.example.org",
    "MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ314159+2Bx",
    "RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bsales@example.test",
    "RCPT TO:<carol@example.test> NOTIFY=NEVER,DELAY",
    "RCPT TO:<carol@example.test> NOTIFY=NEVER",
    "RCPT TO:<dan@example.test> ORCPT=utf-8;d+5Cx{E9}@example.test ORCPT=rfc822;x",
    "DATA", "Subject: dsn", "", "body", ".", "QUIT"))
session("pipelined-two-messages", 0, crlf(
    "EHLO c.example.org",
    "MAIL FROM:<> ",
    "RCPT TO:<a@example.test>",
    "DATA",
    "one",
    ".",
    "RSET",
    "MAIL FROM:<b@example.org>",
    "RCPT TO:<c@example.test>",
    "RCPT TO:<relay@elsewhere.example>",
    "DATA",
    "two",
    ".",
    "NOOP",
    "QUIT",
))
BDAT = (crlf("EHLO c.example.org", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>",
             "BDAT 12") + b"Subject: x\r\n" + crlf("BDAT 6 LAST") + b"body\r\n" +
        crlf("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>", "BDAT 0 LAST", "QUIT"))
session("bdat", 0, BDAT)
session("bdat-bare-cr-at-end", 0, crlf("EHLO c.example.org", "MAIL FROM:<a@example.org>",
                                       "RCPT TO:<b@example.test>", "BDAT 3 LAST") + b"x\r\r" +
        crlf("BDAT 1000000 LAST", "QUIT"))
session("bdat-split", 0, BDAT, feed(90) + ev(FEED_SMALL, 2) + ev(BYTEWISE, 5) + ev(FEED_REST))
STARTTLS = crlf("EHLO c.example.org", "STARTTLS")
AFTER_TLS = crlf("EHLO c.example.org", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>",
                 "DATA", "over TLS", ".", "QUIT")
session("starttls", 1, STARTTLS + AFTER_TLS, feed(len(STARTTLS)) + ev(TLS_UP, 5) + ev(FEED_REST))
session("starttls-client-cert", 17, STARTTLS + AFTER_TLS,
        feed(len(STARTTLS)) + ev(TLS_UP, 12) + ev(FEED_REST))
# CVE-2011-0411: commands pipelined after STARTTLS in the same read must not survive.
session("starttls-injection", 1, crlf("EHLO c.example.org", "STARTTLS", "MAIL FROM:<evil@x.example>")
        + AFTER_TLS, feed(len(STARTTLS) + 28) + ev(TLS_UP, 1) + ev(FEED_REST))
session("starttls-failed", 1, STARTTLS + AFTER_TLS, feed(len(STARTTLS)) + ev(TLS_FAILED))
session("starttls-twice", 1, STARTTLS + crlf("EHLO c.example.org", "STARTTLS", "QUIT"),
        feed(len(STARTTLS)) + ev(TLS_UP, 0) + ev(TLS_UP, 3) + ev(FEED_REST))
session("tls-required", 3, crlf("EHLO c.example.org", "MAIL FROM:<a@example.org>", "STARTTLS")
        + AFTER_TLS)
session("no-tls-host", 33, crlf("EHLO c.example.org", "STARTTLS", "QUIT"))
session("implicit-tls", 2, MESSAGE)
session("implicit-tls-fails", 66, MESSAGE)
session("delivery-error-then-more", 0, MESSAGE.replace(b"QUIT\r\n", b"") + crlf(
    "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>", "DATA", "again", ".", "QUIT"),
    ev(FEED_REST) + ev(ERROR, 0) + ev(OK))
session("pipelined-during-delivery", 0, MESSAGE, feed(len(MESSAGE) - 20) + ev(FEED_REST) +
        ev(TIME, 3) + ev(OK))
session("timeout-in-data", 0, MESSAGE, feed(120) + ev(TIME, 15) + ev(TIMEOUT, 1) + ev(TIMEOUT))
session("shutdown-mid-transaction", 0, MESSAGE, feed(100) + ev(SHUTDOWN) + ev(FEED_REST))
session("shutdown-during-starttls", 1, STARTTLS + AFTER_TLS,
        feed(len(STARTTLS)) + ev(SHUTDOWN) + ev(TLS_UP, 2) + ev(FEED_REST))
session("early-talk", 8, MESSAGE, ev(FEED_SMALL, 5) + ev(GREET) + ev(FEED_REST))
session("greet-pause", 8, MESSAGE, ev(TIME, 0) + ev(GREET) + ev(FEED_REST))
session("small-limits", 4, crlf(
    "EHLO c.example.org", "MAIL FROM:<a@example.org> SIZE=100000", "MAIL FROM:<a@example.org>",
    "RCPT TO:<b@example.test>", "RCPT TO:<c@example.test>", "RCPT TO:<d@example.test>", "DATA")
    + (b"x" * 70 + b"\r\n") * 6 + crlf(".", "QUIT"))
session("smuggling-bare-lf", 0, crlf("EHLO c.example.org", "MAIL FROM:<a@example.org>",
                                     "RCPT TO:<b@example.test>", "DATA", "text") +
        b"\n.\nMAIL FROM:<evil@x.example>\r\n" + crlf(".", "QUIT"))
session("long-lines", 0, b"EHLO " + b"a" * 600 + b"\r\n" + crlf("EHLO c.example.org", "MAIL FROM:<a@example.org>",
        "RCPT TO:<b@example.test>", "DATA") + b"y" * 1200 + b"\r\n" + crlf(".", "QUIT"))
session("smtputf8", 0, crlf(
    "EHLO c.example.org", "MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8 BODY=8BITMIME",
    "RCPT TO:<üser@example.test>", "DATA", "Sübject: ünïcode", "", "bödy", ".",
    "MAIL FROM:<a@example.org>", "RCPT TO:<\xe9@example.test>", "QUIT"))
session("errors-until-421", 0, crlf("EHLO c.example.org") + b"BOGUS\r\n" * 25)
session("nul-and-bare-cr", 0, b"EHLO a\x00b\r\nHELO a\rb\r\nHELO ok.example\r\nQUIT\r\n")
session("relay", 128, crlf("HELO c.example.org", "MAIL FROM:<a@example.org>",
                           "RCPT TO:<x@elsewhere.example>", "DATA", "relayed", ".", "QUIT"))
session("vrfy-help-rset", 0, crlf("EHLO c.example.org", "VRFY bob", "HELP", "RSET", "EXPN list",
                                  "AUTH PLAIN", "DATA", "BDAT x", "QUIT now", "QUIT"))


# AUTH (TLS listeners have auth = true): PLAIN with and without an initial response, LOGIN, a
# cancel, bad base64, and the parked command answered at chosen points.
AUTH = crlf("EHLO c.example.org", "AUTH PLAIN AGFsaWNlAHB3", "MAIL FROM:<alice@example.org>",
            "RCPT TO:<someone@remote.example>", "AUTH LOGIN", "*", "AUTH PLAIN", "!!", "AUTH LOGIN",
            "YWxpY2U=", "cHc=", "QUIT")
session("auth-implicit", 2, AUTH)
session("auth-answers", 2, AUTH, feed(44) + ev(CHECK_ANSWER, 1) + feed(30) + ev(CHECK_ANSWER, 0)
        + ev(FEED_REST))
session("auth-refused", 2, AUTH, feed(44) + ev(CHECK_ANSWER, 3) + ev(FEED_REST))
session("auth-timeout-parked", 2, AUTH, feed(50) + ev(TIMEOUT) + ev(CHECK_ANSWER, 0) + ev(FEED_REST))
session("auth-starttls", 1, STARTTLS + crlf("EHLO c.example.org", "AUTH PLAIN AGEAYg==", "QUIT"),
        feed(len(STARTTLS)) + ev(TLS_UP, 1) + ev(FEED_REST))

# --- command: [reserved][line] --------------------------------------------------------------------
for i, line in enumerate([
        "MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME",
        "MAIL FROM:<>",
        "mail from: <a.b..c.@example.org>",
        "RCPT TO:<Postmaster>",
        "RCPT TO:<@a.example,@b.example:u@d.example> NOTIFY=NEVER",
        "RCPT TO:<\"quoted \\\" local\"@example.test>",
        "RCPT TO:<u@[192.0.2.1]>",
        "RCPT TO:<u@[IPv6:2001:db8::1]>",
        "RCPT TO:<u@[IPv6:::ffff:192.0.2.1]>",
        "MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8",
        "EHLO mx.example.org",
        "STARTTLS",
        "BDAT 100 LAST",
        "\tNOOP\t  spaced  \t",
        "[2001:db8::1]:25",
        "192.0.2.1:25",
        "10.0.0.0/8",
        "2001:db8::/32",
        "<" + "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ">",
]):
    write("command", "%02d" % i, b"\x00" + line.encode())
write("command", "invalid-utf8", b"\x00MAIL FROM:<\xc0\xaf@example.org> SMTPUTF8")
write("command", "surrogate", b"\x00RCPT TO:<\xed\xa0\x80@example.org>")


# --- data_decoder: [flags][cut count][cuts (u16 each)][content] -----------------------------------
def decoder(name, flags, content, cuts=()):
    write("data_decoder", name,
          bytes([flags, len(cuts)]) + b"".join(struct.pack(">H", c) for c in cuts) + content)


decoder("data", 0, b"Subject: x\r\n\r\n..dot\r\nline\r\n.\r\nQUIT\r\n", (5, 13, 14, 15))
decoder("data-empty", 0, b".\r\n")
decoder("data-two-messages", 0, b"a\r\n.\r\nb\r\n..\r\n.\r\n", (4, 5))
decoder("data-bare-lf", 0, b"a\n.\nb\r\n.\n\r\n.\r\n", (2,))
decoder("data-bare-cr", 0, b"a\rb\r\n.\r.\r\n\r\n.\r\n", (1, 2))
decoder("data-long-line", 0, b"x" * 998 + b"\r\n" + b"y" * 999 + b"\r\n.\r\n", (500, 999, 1000))
decoder("data-too-big", 2, b"z" * 80 + b"\r\n.\r\n")
decoder("bdat", 1, b"Subject: x\r\n\r\nbody\r", (11, 12))
decoder("bdat-crlf-straddles", 1, b"line\r\nline\r\n", (5,))
decoder("bdat-dot", 1, b".\r\n..\r\n")


# --- config: TOML text as is ----------------------------------------------------------------------
for src, name in [("config/ringmx.example.toml", "ringmx.example.toml"),
                  ("tests/core/testdata/full.toml", "full.toml")]:
    folder = os.path.join(CORPUS, "config")
    os.makedirs(folder, exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, src), os.path.join(folder, "seed-" + name))
write("config", "minimal.toml", 'hostname = "mx.example.test"\n[[listener]]\nname = "mx"\n'
      'address = "127.0.0.1:25"\n')
write("config", "implicit-sni.toml", 'hostname = "mx.example.test"\n'
      '[[listener]]\nname = "smtps"\naddress = "[::]:465"\ntls = "implicit"\n'
      'client_certs = "required"\n[tls]\ncert = ["a.pem", "b.pem"]\nkey = ["a.key", "b.key"]\n'
      'client_ca = "ca.pem"\n[[tls.sni]]\nnames = ["*.Example.ORG."]\ncert = "o.pem"\nkey = "o.key"\n'
      '[timeouts]\nidle_s = 1\ndata_s = 2\ngreet_pause_ms = 0\nshutdown_grace_s = 0\n')
write("config", "errors.toml", 'hostname = "localhost"\nworkers = 2000\nlistner = []\n'
      '[[listener]]\naddress = "localhost"\ntls_required = true\n[policy]\nmax_recipients = 0\n')
write("config", "routes.toml", 'hostname = "mx.example.test"\n[[listener]]\nname = "mx"\n'
      'address = "127.0.0.1:25"\n[policy]\nlocal_domains = ["a.example.test"]\n'
      '[[route]]\ndomains = ["*.example.test", "b.test"]\n'
      'next_hop = ["lmtp:[::1]:24", "smtp:[192.0.2.5]", "lmtp:unix:lmtp"]\ntls = "verify"\n'
      'tls_ca = "ca.pem"\ntls_name = "relay.example.test"\nverify_recipients = true\n'
      '[[route]]\ndomains = ["*"]\nnext_hop = ["lmtp:127.0.0.1:24"]\n'
      '[delivery]\nbounce_next_hop = "smtp:[2001:db8::6]:2525"\nretry_first_s = 60\n'
      'retry_max_s = 60\nmax_lifetime_s = 0\nhop_down_s = 0\n')
write("config", "route-errors.toml", 'hostname = "mx.example.test"\n[[listener]]\nname = "mx"\n'
      'address = "127.0.0.1:25"\n[[route]]\ndomains = ["*", "*."]\n'
      'next_hop = ["smtp:relay.example.test", "lmtp:127.0.0.1"]\ntls = "verify"\n'
      '[[route]]\ndomains = ["*"]\nnext_hop = []\n[delivery]\nretry_first_s = 5000\n')
write("config", "milters.toml", 'hostname = "mx.example.test"\n[[listener]]\nname = "mx"\n'
      'address = "127.0.0.1:25"\nmilters = ["rspamd", "dkim", "rspamd", "nope"]\n'
      'milters_skip = "both"\n[[milter]]\nname = "rspamd"\naddress = "inet:127.0.0.1:11332"\n'
      'default_action = "accept"\n[[milter]]\nname = "dkim"\naddress = "unix:run/dkim.sock"\n'
      'content_timeout_s = 60\n[[milter]]\nname = "v6"\naddress = "inet:[::1]:0"\n')
write("config", "syntax.toml", 'hostname = "mx.example.test\n[[listener]\na = [1, "x", {b = 2}]\n'
      'c = 1979-05-27T07:32:00Z\nd = 0x7FFFFFFFFFFFFFFF\ne = inf\n')


# --- envelope_json: see fuzz_envelope_json.cc -----------------------------------------------------
def short(b):
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    assert len(b) < 256
    return bytes([len(b)]) + b


def u16(v):
    return struct.pack(">H", v)


def envelope(name, flags, tls=None, auth=b"", params=(), helo=b"client.example.org",
             rcpts=(b"bob@example.test",), mail_from=b"alice@example.org", v6=False,
             balancer=b""):
    out = bytes([flags]) + short(b"mx") + bytes([1])
    for _ in range(2):  # client, local
        if v6:
            out += b"\x01" + bytes(range(16)) + u16(25)
        else:
            out += b"\x00" + bytes([192, 0, 2, 7]) + u16(40000)
    if flags & 2:
        out += tls
    out += short(auth)
    if flags & 64:  # proxied_by: the balancer's endpoint
        out += balancer
    out += short(mail_from)
    out += bytes([len(params)])
    for key, value in params:
        out += short(key) + (b"\x01" + short(value) if value is not None else b"\x00")
    out += short(b"0123456789ABCDEFGHIJ")
    out += u16(len(helo)) + helo
    out += u16(0x0006) + u16(0x0A6A) + u16(0x1234)  # micros
    out += u16(0) + u16(0) + u16(0) + u16(1234)  # size
    out += b"\x00".join(rcpts)
    write("envelope_json", name, out)


TLS13 = (bytes([0x01 | 0x04 | (1 << 3)]) + short("TLSv1.3") + short("TLS_AES_256_GCM_SHA384") +
         u16(256) + u16(256) + short("mx.example.test") + short("CN=client,O=Example") +
         short("CN=Test CA") + short("client") + short("Test CA") + short("ab" * 32) + short(""))
TLS12_BAD = (bytes([0x02 | (2 << 3)]) + short("TLSv1.2") + short("ECDHE-RSA-AES128-GCM-SHA256") +
             u16(128) + u16(128) + short(b"\xff\xfe sni") + short(b"CN=\"q\\\"\x01\xc3") +
             short(b"CN=\xe9") + short(b"a\"b\r\nc") + short(b"\x00") + short("cd" * 32) +
             short("certificate has expired"))
envelope("plain", 0x11)
envelope("esmtps-verified", 0x13 | 0x08, tls=TLS13, v6=True,
         params=((b"SIZE", b"1234"), (b"BODY", b"8BITMIME")))
envelope("not-verified-odd-bytes", 0x17, tls=TLS12_BAD, auth=b"user@example.org",
         params=((b"SMTPUTF8", None), (b"X\xff", b"\x00\x1f\x7f\"\\"), (b"X\xfe", b"dup")),
         helo=b"h\xc3\xa9lo (x) \\ ; \x01\xff", rcpts=(b"\xce\xb4@example.test", b"b\xed\xa0\x80@x",
                                                     b"", b"\"q u\"@[192.0.2.1]"),
         mail_from=b"\xf4\x90\x80\x80@x.example")
envelope("null-sender-helo", 0x00, mail_from=b"", helo=b"", rcpts=(b"Postmaster",))
# A client that came through a PROXY header: proxied_by is the balancer (IPv6 here).
envelope("proxied-by", 0x51, balancer=b"\x01" + bytes(range(16, 32)) + u16(51000))


def dsn_tail(ret, envid, rcpts):
    """Flag 32's DSN block: ret byte, envid, then (notify byte, addr_type, address) per rcpt."""
    out = bytes([ret]) + short(envid) + bytes([len(rcpts)])
    for notify, addr_type, address in rcpts:
        out += bytes([notify]) + short(addr_type) + short(address)
    return out


def envelope_dsn(name, flags, dsn, rcpts):
    out = bytes([flags | 32]) + short(b"mx") + bytes([1])
    for _ in range(2):
        out += b"\x00" + bytes([192, 0, 2, 7]) + u16(40000)
    out += short(b"") + short(b"alice@example.org") + bytes([1]) + short(b"RET") + b"\x01"
    out += short(b"HDRS") + short(b"0123456789ABCDEFGHIJ") + u16(6) + b"client"
    out += u16(0x0006) + u16(0x0A6A) + u16(0x1234) + u16(0) + u16(0) + u16(0) + u16(99)
    out += dsn + b"\x00".join(rcpts)
    write("envelope_json", name, out)


# notify byte: bit 0 given, bit 1 NEVER, bits 2-4 SUCCESS/FAILURE/DELAY.
envelope_dsn("dsn-all", 0x11,
             dsn_tail(2, b"QQ 314159=", [(1 | 4 | 8, b"rfc822", b"bob+sales@example.test"),
                                         (0, b"", b""), (1 | 2, b"RFC822", b"c;d@example.test")]),
             (b"bob@example.test", b"x@example.test", b"c@example.test"))
envelope_dsn("dsn-bad-values-dropped", 0x00,
             dsn_tail(1, b"\x01" + b"e" * 120, [(1 | 16, b"rfc 822", b"a@b"),
                                              (1, b"utf-8", b"\xc3\xa9@b")]),
             (b"a@example.test",))


# --- stored_envelope: the JSON text itself --------------------------------------------------------
STORED_HEAD = ('{"id":"Q1","received_at":"2023-11-14T22:13:20.000005Z","mail_from":"a@example.org",'
               '"mail_params":{"RET":"HDRS"},"rcpt_to":["b@example.test","c@example.test"],'
               '"client":{"address":"192.0.2.7","port":2525},'
               '"local":{"address":"2001:db8::25","port":25},"listener":"mx","helo":"h\\u0001",'
               '"protocol":"ESMTPS","smtputf8":false,"body_type":"8BITMIME","size":18446744073709551615,'
               '"tls":{"version":"TLSv1.3","cipher":"X","cipher_bits":256,"sni":null,'
               '"sni_fallback":false,"ktls":true,"implicit":false,"client_cert":{"result":"none",'
               '"subject":null,"issuer":null,"sha256":null,"verify_error":null}},"auth":null')
write("stored_envelope", "old", STORED_HEAD + "}")
write("stored_envelope", "dsn",
      STORED_HEAD + ',"dsn":{"ret":"HDRS","envid":"QQ 314159+x"},"rcpt_dsn":['
      '{"notify":["SUCCESS","FAILURE","DELAY"],"orcpt":{"addr_type":"rfc822","address":"b@x"}},'
      '{"notify":["NEVER"],"orcpt":null}]}')
write("stored_envelope", "dsn-bad",
      STORED_HEAD + ',"dsn":{"ret":"ALL","envid":""},"rcpt_dsn":[{"notify":["NEVER","DELAY"]},'
      '{"orcpt":{"addr_type":"rfc 822","address":"\\u00e9"}}]}')
write("stored_envelope", "json-corners",
      ' [1, -0.5e-7, 1E+2, "\\ud83d\\ude00\\u0000\\/", {"a":{"a":[[],{}]},"a":null}, true] ')
write("stored_envelope", "deep", "[" * 70 + "]" * 70)


# --- ktls_records: [version selector] then [type][length][payload]... -----------------------------
def records(name, selector, *recs):
    out = bytes([selector])
    for rtype, payload in recs:
        out += bytes([rtype]) + short(payload)
    write("ktls_records", name, out)


records("tls13-data-keyupdate-close", 1, (23, b"EHLO x\r\n"), (22, b"\x18\x00\x00\x01\x01"),
        (23, b"QUIT\r\n"), (22, b"\x18\x00\x00\x01\x00"), (21, b"\x01\x00"))
records("tls13-sha384-keyupdates", 5, *([(22, b"\x18\x00\x00\x01\x00")] * 3))
records("tls12-renegotiation", 0, (23, b"MAIL"), (22, b"\x01\x00\x00\x04\x03\x03\x00\x00"),
        (23, b"x"), (21, b"\x02\x28"))
records("tls13-bad-keyupdate", 1, (22, b"\x18\x00\x00\x01\x02"))
records("ccs-after-handshake", 1, (20, b"\x01"))
records("short-alert", 0, (21, b"\x01"))
records("odd-version", 3, (22, b"\x18\x00\x00\x01\x00"))


# --- queue_record and queue_scan: core/queue/log_format.h records ---------------------------------
# An encoder written from the format comment of log_format.h (not from log_format.cc), with its
# own CRC32C, so the seeds also check that the two agree.
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
SEGMENT_MAGIC = b"RMXQLOG2"
# The seeds' segment key: the record magic as it lies on disk, then the CRC mask (little-endian).
KEY_MAGIC, KEY_MASK = b"K3y!", 0x9E3779B9
SEGMENT_KEY = KEY_MAGIC + struct.pack("<I", KEY_MASK)
MESSAGE, FRAGMENT, ABORT, RCPT_STATE, MESSAGE_OP = 1, 2, 3, 4, 5


def qstr(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack("<I", len(b)) + b


def qframe(rtype, payload, magic=KEY_MAGIC, mask=KEY_MASK):
    body = struct.pack("<IB", len(payload), rtype) + payload
    return magic + struct.pack("<I", crc32c(body) ^ mask) + body


def qstate_fields(state, attempts, next_us, at_us, reply):
    return struct.pack("<BIqq", state, attempts, next_us, at_us) + qstr(reply)


def qmessage(mid, rcpts, tail, fragments=0, frag_bytes=0, states=None, held=False):
    p = struct.pack("<B", 1 if states is not None else 0) + qstr(mid)
    p += struct.pack("<q", 1700000000000000) + qstr("sender@example.org")
    p += struct.pack("<I", len(rcpts)) + b"".join(qstr(r) for r in rcpts)
    p += qstr('{"mail_from":"sender@example.org"}') + qstr("Received: from x by y\r\n")
    p += struct.pack("<IQ", fragments, frag_bytes + len(tail))
    if states is not None:
        p += struct.pack("<B", 1 if held else 0) + b"".join(qstate_fields(*s) for s in states)
    return qframe(MESSAGE, p + tail)


def qfragment(mid, index, data):
    return qframe(FRAGMENT, qstr(mid) + struct.pack("<I", index) + data)


def qabort(mid):
    return qframe(ABORT, qstr(mid))


def qrcpt_state(mid, rcpt, *fields):
    return qframe(RCPT_STATE, qstr(mid) + struct.pack("<I", rcpt) + qstate_fields(*fields))


def qop(mid, op, at_us=5, **key):
    return qframe(MESSAGE_OP, qstr(mid) + struct.pack("<Bq", op, at_us), **key)


QUEUE_RECORDS = {
    "message": qmessage("ID0", ["a@x", "b@x"], b"Subject: s\r\n\r\nbody\r\n"),
    "message-fragments": qmessage("ID1", ["a@x"], b"end\r\n", fragments=2, frag_bytes=10),
    "message-relocated": qmessage("ID2", ["a@x", "b@x"], b"x\r\n", held=True,
                                  states=[(2, 3, 99, 50, "451 later"), (1, 1, 0, 60, "250 ok")]),
    "fragment": qfragment("ID1", 0, b"0123456789"),
    "abort": qabort("ID3"),
    "rcpt-state": qrcpt_state("ID0", 1, 3, 1, 0, 70, "550 5.1.1 unknown"),
    "op-hold": qop("ID0", 1),
    "op-delete": qop("ID0", 3),
}
# queue_record: [mode][segment key] then a record (mode 0) or [type][payload] to be framed (mode 1).
for name, rec in QUEUE_RECORDS.items():
    write("queue_record", name, b"\x00" + SEGMENT_KEY + rec)
    write("queue_record", "framed-" + name, b"\x01" + SEGMENT_KEY + rec[12:])
write("queue_record", "torn", b"\x00" + SEGMENT_KEY + QUEUE_RECORDS["message"][:-3])
write("queue_record", "bad-crc", b"\x00" + SEGMENT_KEY + QUEUE_RECORDS["abort"][:5] + b"\xff" +
      QUEUE_RECORDS["abort"][6:])
write("queue_record", "other-key", b"\x00" + b"OTHR" + SEGMENT_KEY[4:] + QUEUE_RECORDS["op-delete"])

# queue_scan, mode 0: the segment after kSegmentMagic (prepended by the target): key, records.
stream = (qfragment("ID1", 0, b"01234") + qfragment("ID1", 1, b"56789") + QUEUE_RECORDS["message"]
          + QUEUE_RECORDS["message-fragments"] + qrcpt_state("ID0", 0, 1, 1, 0, 1, "250")
          + qop("ID1", 1) + QUEUE_RECORDS["message-relocated"] + qfragment("ID4", 0, b"zz")
          + qabort("ID4"))
write("queue_scan", "records", b"\x00" + SEGMENT_KEY + stream)
write("queue_scan", "torn-tail", b"\x00" + SEGMENT_KEY + stream[:-7])
write("queue_scan", "zeros-tail", b"\x00" + SEGMENT_KEY + stream + bytes(64))
write("queue_scan", "header-cut", b"\x00" + SEGMENT_KEY[:5])
damaged = bytearray(stream)
damaged[len(qfragment("ID1", 0, b"01234")) + 20] ^= 1
write("queue_scan", "damage-in-middle", b"\x00" + SEGMENT_KEY + bytes(damaged))
write("queue_scan", "garbage-between",
      b"\x00" + SEGMENT_KEY + stream[:40] + b"garbage K3y" + stream[40:])
# A body embedding a delete framed the old way ("RMXQ", plain CRC) and one under the segment's
# own key, each in a message torn after it: only the second may be found by resynchronisation.
for name, forged in (("forged-old-framing", qop("ID0", 3, magic=b"RMXQ", mask=0)),
                     ("forged-same-key", qop("ID0", 3))):
    holder = qmessage("ID9", ["a@x"], b"Subject: x\r\n\r\n" + forged + b"after\r\n")
    write("queue_scan", name, b"\x00" + SEGMENT_KEY + QUEUE_RECORDS["message"] + holder[:-4])
# queue_scan, mode 1: a script of chunks (see Build() in fuzz_queue_scan.cc):
# 0 message [id][shape][u16 received][tail len][tail][states...], 1 fragment [id][index][len][bytes],
# 2 abort [id], 3 state [id][rcpt][state][attempts][u16][u16][reply len][reply], 4 op [id][op][u16],
# 5 raw [len][bytes], 6 flip [u16 at][bit], 7 zeros [n x 16], 8 cut [u16 keep], 9 record magic,
# 10 a delete framed for another key [which][id][u16 at]. The script follows the segment key.
write("queue_scan", "script-life",
      b"\x01" + SEGMENT_KEY
      + bytes([1, 1, 0, 3]) + b"abc" + bytes([1, 1, 1, 2, 3]) + b"def"
      + bytes([0, 1, 0x05, 0, 7, 4]) + b"tail"
      + bytes([3, 1, 0, 2, 1, 0, 9, 0, 1, 3]) + b"451"
      + bytes([4, 1, 0, 0, 3]) + bytes([3, 1, 0, 1, 1, 0, 0, 0, 0, 0]))
write("queue_scan", "script-relocated",
      b"\x01" + SEGMENT_KEY + bytes([0, 2, 0x21, 0, 1, 2]) + b"hi" + bytes([1, 1, 0, 0, 0, 0, 0, 0])
      + bytes([0, 2, 0x61, 0, 2, 2]) + b"hi" + bytes([2, 2, 0, 0, 0, 0, 0, 0]))
write("queue_scan", "script-damage",
      b"\x01" + SEGMENT_KEY + bytes([0, 0, 0, 0, 9, 4]) + b"body" + bytes([6, 0, 30, 3]) + bytes([2, 0])
      + bytes([9]) + bytes([5, 3]) + b"xyz" + bytes([1, 3, 0, 2]) + b"zz" + bytes([7, 4]))
write("queue_scan", "script-cut",
      b"\x01" + SEGMENT_KEY
      + bytes([3, 0, 5]) + b"aaaaa" + bytes([0, 3, 4, 0, 0, 1]) + b"t" + bytes([8, 0, 40]))
write("queue_scan", "script-forged",
      b"\x01" + SEGMENT_KEY + bytes([0, 0, 0, 0, 9, 4]) + b"body" + bytes([10, 0, 0, 0, 5])
      + bytes([10, 1, 1, 0, 5]) + bytes([4, 0, 3, 0, 5]))

# --- sasl: LF-separated lines, the first the AUTH arguments, then the client's answers -----------
SASL_SEEDS = {
    "plain-initial": ["PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm"],
    "plain-challenge": ["PLAIN", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"],
    "plain-authzid": ["PLAIN VXJzZWwAS3VydAB4aXBqM3BsbXE="],
    "plain-empty": ["PLAIN =", "plain", ""],
    "login": ["LOGIN", "dGlt", "dGFuc3RhYWY="],
    "login-initial": ["login dGlt", "dGFuc3RhYWY="],
    "cancel": ["LOGIN", "dGlt", "*", "PLAIN", "*"],
    "bad-base64": ["PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm=", "LOGIN", "dGl=", "PLAIN", "YR=="],
    "unknown": ["CRAM-MD5", "", "PLAIN a b", "XOAUTH2 dXNlcj0="],
    "crlf": ["LOGIN\r", "dGlt\r", "dGFuc3RhYWY=\r"],
}
for name, lines in SASL_SEEDS.items():
    write("sasl", name, "\n".join(lines))

# --- passwd_file: the file's text as is ------------------------------------------------------------
PASSWD_SEEDS = {
    "good": "# users\n\n"
            "alice:$y$j75$nc4JApU0.RPzyse9ofawS1$clCrPspjr/o/zK4HiNIgoHPwkz5gCrV3SvpRpBsa7LB\n"
            "bob@example.test:{SHA512-CRYPT}$6$dK7caCKCKGzYbOWt$sdFDo/9Yg4p2BVfWIU/0raFvIkEUFNERDvF"
            "NP6LjqvQ9dSbTgqtGVn7mdkw0vP6.JeAcKn1Omq2qIZDBgMrLi.:1000:1000::/home/bob::\r\n"
            "carol:{BLF-CRYPT}$2y$04$bqPYGQJSCDxsGiorR9ZZB.btjUe6k0S4LxLaG3a8nt4LOugdu4Cku:::::x=y\n"
            "dave:{CRYPT}$5$ui1KyykzDPOauVQQ$EtZqGsje0emkvuJFGGRuCF7MbSGg8SvxWLystWkSNC9\n"
            "erin:{MD5-CRYPT}$1$OshZQzUA$TlUaBoFQHKE.jTDeuW5g3/\n"
            "frank:$7$CU..../....JdcAIqRPRg0i4/R4uQYVW.$LTHROZf9hoZC2uQILDB4D9MbjiB8NBKTHQ4AuWrQfk7\n"
            "gina:$6$rounds=1000$hbMAKv/s8RM97bY9$nwhnZ4kBx5yMFZbUPOquQu8hldQj9sFu/4LHOnpptYGVuWRQh"
            "C55bJL8GrEIurcXjLKLF4t9jcYKgmvo7TcKi/",
    "plain-scheme": "alice:{PLAIN}hunter2\n",
    "mismatch": "alice:{SHA512-CRYPT}$2b$04$zxpsVc1IUByDLQJLx1LlQuxqtn2wUPAUVpNRnqG8LGMf/r3CcAvdC\n",
    "duplicate": "a:$1$OshZQzUA$TlUaBoFQHKE.jTDeuW5g3/\na:$1$OshZQzUA$TlUaBoFQHKE.jTDeuW5g3/\n",
    "truncated": "a:$6$dK7caCKCKGzYbOWt$sdFDo\n",
    "no-colon": "just a line\n",
}
for name, text in PASSWD_SEEDS.items():
    write("passwd_file", name, text)

# --- reply: [flags][stride][the next hop's bytes] (see fuzz_reply.cc) -----------------------------
REPLY_GREETING = crlf("220 hop.example.test ESMTP")
REPLY_EHLO = crlf("250-hop.example.test", "250-PIPELINING", "250-CHUNKING", "250-8BITMIME",
                  "250-SMTPUTF8", "250-SIZE 10240000", "250-DSN", "250 STARTTLS")
REPLY_SEEDS = {
    # SMTP, pipelined DATA: MAIL, 3 RCPT (one refused), 354, the result, then QUIT.
    "smtp-pipelined": (6, 7, REPLY_GREETING + crlf(
        "250-hop.example.test", "250-PIPELINING", "250 8BITMIME",
        "250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 unknown", "250 2.1.5 Ok", "354 go",
        "250 2.0.0 queued", "221 2.0.0 bye")),
    "smtp-chunking": (0, 63, REPLY_GREETING + REPLY_EHLO + crlf(
        "250 ok", "250 ok", "250 ok", "250 ok", "250 2.0.0 ok", "221 bye")),
    "lmtp-mixed": (1, 3, REPLY_GREETING + crlf(
        "250-dovecot", "250 8BITMIME", "250 ok", "250 ok", "450 4.2.0 busy", "250 ok", "354 go",
        "250 2.0.0 saved", "552 5.2.2 full")),
    "helo-fallback": (2, 0, REPLY_GREETING + crlf("502 5.5.2 what", "250 hop", "250 ok", "250 ok")),
    "starttls": (8, 5, REPLY_GREETING + REPLY_EHLO + crlf("220 2.0.0 go") + REPLY_EHLO),
    "malformed": (0, 1, REPLY_GREETING + b"250-a\r\n550 b\r\n2x0\r\n\n250 \r\n25"),
    "bare-lf": (0, 9, b"220 hop\n250-hop\n250 PIPELINING\n421 4.3.2 closing\n"),
    "probe": (129, 11, REPLY_GREETING + crlf("250 dovecot", "250 ok", "250 ok", "550 5.1.1 no",
                                              "250 ok", "250 reset")),
}
for name, (flags, stride, data) in REPLY_SEEDS.items():
    write("reply", name, bytes([flags, stride]) + data)

# --- dsn_params: [mode][data]; mode 0 xtext, 1 MAIL/RCPT parameter lines, 2 a DSN request -------
DSN_XTEXT_SEEDS = {
    "xtext-plain": b"QQ314159",
    "xtext-hex": b"a+2Bb+3Dc+20d+00+FF",
    "xtext-bad": b"a=b +2b +G0 +2",
}
for name, data in DSN_XTEXT_SEEDS.items():
    write("dsn_params", name, b"\x00" + data)

DSN_PARAM_SEEDS = {
    "mail": ["MAIL", "RET=HDRS", "ENVID=QQ314159+2Bx", "RET=FULL", "ENVID"],
    "mail-bad": ["MAIL", "RET=ALL", "ENVID=a=b", "ENVID=" + "x" * 101, "SIZE=100"],
    "rcpt": ["RCPT", "NOTIFY=SUCCESS,FAILURE,DELAY", "ORCPT=rfc822;bob+2Bsales@example.test",
             "NOTIFY=NEVER"],
    "rcpt-bad": ["RCPT", "NOTIFY=NEVER,FAILURE", "NOTIFY=", "NOTIFY=FAILURE,", "ORCPT=rfc822",
                 "ORCPT=rfc 822;a@b", "ORCPT=rfc822;a+0D+0Ab", "ORCPT=rfc822;" + "a" * 494],
    "both": ["MAIL", "ret=full", "RCPT", "notify=never", "orcpt=utf-8;j\\x{FC}rgen@example.test"],
}
for name, lines in DSN_PARAM_SEEDS.items():
    write("dsn_params", name, b"\x01" + "\n".join(lines).encode())


def dsn_recipient(action, notify, address, status=b"", remote=b"", diagnostic=b""):
    return (bytes([action, notify]) + short(address) + short(status) + short(remote)
            + u16(len(diagnostic)) + diagnostic)


DSN_MESSAGE = crlf("Received: from client.example.org (192.0.2.1)",
                   "\tby mx.example.test (ringmx) with ESMTP id Q1; Wed, 4 Mar 2026 05:06:07 +0000",
                   "From: alice@example.org", "Subject: Hello", "", "Body.")
write("dsn_params", "dsn-failure",
      bytes([2, 0, 0, 2]) + short(b"alice@example.org") + short(b"QQ314159")
      + dsn_recipient(0, 0x40, b"bob@example.test", b"", b"mailbox.example.test",
                      b"550 5.1.1 <bob@example.test>: Recipient address rejected")
      + dsn_recipient(0, 0x10 | 2, b"carol@example.test", b"4.4.1", b"",
                      b"connection refused") + DSN_MESSAGE)
write("dsn_params", "dsn-delay-8bit",
      bytes([2, 1, 2, 1]) + short("ren\u00e9@example.org".encode()) + short(b"")
      + dsn_recipient(1, 0x50 | 4, "j\u00fcrgen@example.test".encode(), b"", b"hop",
                      b"451 4.3.0 later\r\n451 again" + b" word" * 200)
      + crlf("Subject: caf\u00e9", "", "cr\u00e8me"))
write("dsn_params", "dsn-success-collision",
      bytes([2, 2, 1, 2]) + short(b"a@example.org") + short(b"")
      + dsn_recipient(2, 0x11, b"b@example.test") + dsn_recipient(3, 0x11, b"c@example.test")
      + crlf("Subject: x", "", "--=_ringmx_D1_", "--=_ringmx_D1_0", "--=_ringmx_D1_--"))
write("dsn_params", "dsn-null-sender",
      bytes([2, 0, 0, 1]) + short(b"") + short(b"") + dsn_recipient(0, 0, b"b@example.test")
      + DSN_MESSAGE)


# --- proxy_header: [versions mod 3: v1, v2, any][piece size, 0 whole][connection bytes] ---------
PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def pp2(ver_cmd, family, payload):
    return PP2_SIG + bytes([ver_cmd, family]) + struct.pack(">H", len(payload)) + payload


def pp2_tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


PP2_INET4 = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack(">HH", 56324, 25)
PP2_INET6 = (bytes.fromhex("20010db8000000000000000000000001")
             + bytes.fromhex("20010db8000000000000000000000025") + struct.pack(">HH", 1234, 25))
SMTP_AFTER = b"EHLO client.example.org\r\n"
PROXY_SEEDS = {
    "v1-tcp4": (0, 0, b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + SMTP_AFTER),
    "v1-tcp4-bytewise": (2, 1, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 65535\r\n"),
    "v1-tcp6": (0, 7, b"PROXY TCP6 2001:db8::1 ::1 1234 25\r\n" + SMTP_AFTER),
    "v1-unknown": (0, 0, b"PROXY UNKNOWN\r\n"),
    "v1-unknown-longest": (2, 13, b"PROXY UNKNOWN " + b":".join([b"ffff"] * 8) + b" "
                           + b":".join([b"ffff"] * 8) + b" 65535 65535\r\n"),
    "v1-bad-port": (0, 0, b"PROXY TCP4 192.0.2.1 192.0.2.2 025 2\r\n"),
    "v1-bare-lf": (2, 0, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"),
    "v2-tcp4": (1, 0, pp2(0x21, 0x11, PP2_INET4) + SMTP_AFTER),
    "v2-tcp4-split": (2, 5, pp2(0x21, 0x11, PP2_INET4) + b"\x16\x03\x01\x00\x05hello"),
    "v2-tcp6": (1, 3, pp2(0x21, 0x21, PP2_INET6)),
    "v2-local": (1, 0, pp2(0x20, 0x00, b"") + SMTP_AFTER),
    "v2-local-addresses": (2, 0, pp2(0x20, 0x11, PP2_INET4)),
    "v2-unspec": (1, 0, pp2(0x21, 0x00, b"ignored")),
    "v2-unix": (1, 0, pp2(0x21, 0x31, b"/run/a".ljust(108, b"\x00") + b"/run/b".ljust(108, b"\x00"))),
    "v2-udp6": (1, 0, pp2(0x21, 0x22, PP2_INET6)),
    "v2-tlvs": (2, 2, pp2(0x21, 0x11, PP2_INET4 + pp2_tlv(0x03, b"\x12\x34\x56\x78")
                          + pp2_tlv(0x20, b"\x05\x00\x00\x00\x00" + pp2_tlv(0x21, b"TLSv1.3"))
                          + pp2_tlv(0x04, b"") + pp2_tlv(0x05, b"conn-42"))),
    "v2-tlv-cut": (1, 0, pp2(0x21, 0x11, PP2_INET4 + b"\x05\x00\x09xy")),
    "v2-truncated": (1, 0, pp2(0x21, 0x21, PP2_INET4)),
    "v2-bad-family": (1, 0, pp2(0x21, 0x41, PP2_INET4)),
    "v2-bad-command": (1, 0, pp2(0x23, 0x11, PP2_INET4)),
    "v2-too-long": (1, 0, PP2_SIG + b"\x21\x11\xff\xff" + PP2_INET4),
    "plain-smtp": (2, 0, SMTP_AFTER),
}
for name, (versions, piece, data) in PROXY_SEEDS.items():
    write("proxy_header", name, bytes([versions, piece]) + data)
# --- milter: [flags][stride][the milter's bytes] (see fuzz_milter.cc) ------------------------------
# flags bits 0-1: default_action (0 tempfail, 1 accept, 2 reject); bit 2: a large body.
def mpkt(command, data=b""):
    return struct.pack(">I", len(data) + 1) + command + data


def moptneg(actions, protocol, tail=b""):
    return mpkt(b"O", struct.pack(">III", 6, actions, protocol) + tail)


RSPAMD_PROTOCOL = 0x400 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x80 | 0x40000 \
    | 0x80000
ALL_ACTIONS = 0x1FF
CONTINUE = mpkt(b"c")
EOB_CHANGES = (mpkt(b"h", b"X-Spam\0yes\0") + mpkt(b"i", struct.pack(">I", 0) + b"X-First\0v\0")
               + mpkt(b"m", struct.pack(">I", 1) + b"Subject\0new\n\tfold\0")
               + mpkt(b"m", struct.pack(">I", 1) + b"From\0\0") + mpkt(b"e", b"<s@example.org>\0")
               + mpkt(b"2", b"<d@example.test>\0NOTIFY=NEVER\0") + mpkt(b"-", b"<b@example.test>\0")
               + mpkt(b"b", b"new body\n") + mpkt(b"q", b"held\0") + mpkt(b"p"))
write("milter", "rspamd-gtube", bytes([0, 63]) + moptneg(0x37, RSPAMD_PROTOCOL)
      + mpkt(b"h", b"X-Spam\0Yes\0") + mpkt(b"y", b"554 5.7.1 Gtube pattern\0"))
write("milter", "rspamd-bytewise", bytes([0, 0]) + moptneg(0x37, RSPAMD_PROTOCOL)
      + mpkt(b"a"))
# connect, helo, mail, rcpt, data, 2 headers, eoh, body, then the changes and accept at EOB;
# unknown, mail, mail.
write("milter", "every-stage", bytes([1, 7]) + moptneg(ALL_ACTIONS, 0x800) + CONTINUE * 4
      + CONTINUE * 5 + EOB_CHANGES + mpkt(b"a") + CONTINUE * 3)
write("milter", "symlists", bytes([2, 13]) + moptneg(ALL_ACTIONS, 0x1000, struct.pack(">I", 2)
      + b"{mail_addr} i\0" + struct.pack(">I", 5) + b"i\0") + mpkt(b"c") + mpkt(b"y", b"451-4.7.1 a\r\n451 4.7.1 100%% b\0"))
write("milter", "skip-large-body", bytes([4, 31]) + moptneg(ALL_ACTIONS, 0x400 | 0x1000 | 0x20 | 0x40)
      + CONTINUE * 3 + mpkt(b"s") + mpkt(b"b", b"x" * 100) + mpkt(b"d"))
write("milter", "reject-at-connect", bytes([0, 5]) + moptneg(0, 0) + mpkt(b"r"))
write("milter", "shutdown", bytes([0, 5]) + moptneg(0, 0) + CONTINUE + mpkt(b"4"))
write("milter", "change-too-early", bytes([2, 9]) + moptneg(ALL_ACTIONS, 0) + mpkt(b"h", b"X\0y\0"))
write("milter", "oversized", bytes([1, 64]) + moptneg(0, 0x1000) + struct.pack(">I", 131071) + b"b")
write("milter", "zero-length", bytes([0, 1]) + struct.pack(">I", 0))
write("milter", "bad-reply-code", bytes([0, 3]) + moptneg(0, 0) + mpkt(b"y", b"250 ok\0"))

# --- metrics_request: the request head a client of the [metrics] endpoint sends -------------------
write("metrics_request", "get-metrics", b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9325\r\n"
      b"Accept: text/plain\r\n\r\n")
write("metrics_request", "get-query", b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n")
write("metrics_request", "get-root", b"GET / HTTP/1.1\r\n\r\n")
write("metrics_request", "post", b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
write("metrics_request", "bare-lf", b"GET /metrics HTTP/1.1\n\n")
write("metrics_request", "no-version", b"GET /metrics\r\n")
write("metrics_request", "smtp", b"EHLO client.example\r\n")
write("metrics_request", "nul-in-target", b"GET /met\0rics HTTP/1.1\r\n\r\n")


# --- session_milter: [flags][n][n answers][client bytes] (see fuzz_session_milter.cc) ----------
# flags: 1 two milters, 2 NR flags, 4 answers byte by byte, 8 default accept, 16 slices of 7,
# 32 RCPT_REJ. Answers: 0 continue, 1 accept, 2 reject, 3 tempfail, 4 discard, 5 custom 554,
# 6 shutdown, 7 progress, 8 skip, 9 add header, 10 failure, 11 garbage, 12 quarantine,
# 13 replace body, 14 envelope changes, 15 header changes, 16 delete recipients, 17 malformed.
MILTER_SESSION = crlf("EHLO client.example.org", "MAIL FROM:<a@example.org> SIZE=100",
                      "RCPT TO:<b@example.test>", "RCPT TO:<x@elsewhere.example>",
                      "RCPT TO:<c@example.test>", "DATA", "From: a@example.org",
                      "Subject: hi", " folded", "", "body", ".", "XFOO", "RSET",
                      "MAIL FROM:<>", "RCPT TO:<b@example.test>", "BDAT 12 LAST") + \
    b"X: y\r\n\r\nbody\r\n" + crlf("QUIT")
write("session_milter", "continue", bytes([0, 0]) + MILTER_SESSION)
write("session_milter", "rspamd-reject", bytes([2 | 4, 1, 5]) + MILTER_SESSION)
write("session_milter", "changes", bytes([1 | 16, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 15])
      + MILTER_SESSION)
write("session_milter", "quarantine-replace", bytes([32, 14] + [0] * 12 + [12, 13])
      + MILTER_SESSION)
write("session_milter", "failures", bytes([8 | 1, 6, 10, 11, 17, 3, 2, 4]) + MILTER_SESSION)
write("session_milter", "big-header", bytes([0, 0]) + crlf(
    "EHLO c", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>", "DATA")
      + b"".join(b"X-H: " + b"h" * 900 + b"\r\n" for _ in range(300)) + crlf("", "b", ".", "QUIT"))
write("session_milter", "big-body", bytes([2, 0]) + crlf(
    "EHLO c", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>", "DATA", "S: x", "")
      + b"".join(b"line of body text\r\n" for _ in range(15000)) + crlf(".", "QUIT"))

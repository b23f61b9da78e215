// Real milters for the milter tests (issue 13), each a private process on 127.0.0.1 started by
// the test in a directory of its own and stopped by the PID it was started with:
//   - PythonMilter: tests/milter/test_milter.py, a milter written with Debian's python3-milter
//     (libmilter) whose behaviour per session and message is chosen by markers in what the MTA
//     sends, and which logs every callback with its arguments and macros as JSON lines.
//   - Rspamd: Debian's rspamd 3.4, its proxy worker in milter mode scanning by itself
//     (self_scan), no redis, no controller, offline.
// Both answer the milter protocol on address() = "inet:127.0.0.1:PORT". Every wait is bounded.
// Test-only. Not thread-safe; start them from a thread that outlives them (the test's main
// thread): they get SIGTERM when the thread that started them exits (PR_SET_PDEATHSIG).
//
// PythonMilter's markers (the full list is at the top of tests/milter/test_milter.py):
// tokens taken from Options::session_markers, the CONNECT host name (split at '.'), the HELO
// name (split at '.'), the local parts of MAIL and RCPT (split at '+') and the Subject header's
// words.
//   - Verdicts: ACTION or ACTION-STAGE, STAGE one of connect helo mail rcpt data header eoh body
//     eom (default eom); ACTION one of accept reject tempfail discard, custom (554 5.7.1 "Custom
//     rejection by test milter"), customtemp (451 4.7.1 "Custom tempfail by test milter"),
//     multiline (550 5.7.1 "First line" / "Second line"), progress (two SMFIR_PROGRESS, then
//     continue), slow (sleeps Options::slow_seconds, then continue), skip (body: SMFIR_SKIP).
//     "reject-rcpt" in a recipient's local part refuses that recipient only.
//   - Changes at end of message, in the order written: addheader (X-Test-Added), insheader
//     (X-Test-Inserted at index 0), chgheader (X-Test-Change #1), delheader (X-Test-Delete #1),
//     chgfrom / chgfromargs (<changed-sender@example.org>, "RET=HDRS"), addrcpt
//     (<added-rcpt@example.org>), addrcptpar (<added-par@example.org> "NOTIFY=NEVER"), delrcpt
//     (the last recipient, as received), replbody ("Replaced body line 1.\r\nReplaced body line
//     2.\r\n", one 'b' packet), quarantine ("held by test milter").
// It negotiates every stage and every reply (no SMFIP_NO*/NR*), SMFIP_RCPT_REJ, SKIP when
// offered, no HDR_LEADSPC, every action offered; with Options::symlist it sends its own macro
// lists: CONNECT "{client_addr}", MAIL "{mail_addr} i", end of message "{rcpt_addr}".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ringmx::testing {

// One callback of PythonMilter, as its log line says.
struct MilterEvent {
  int connection = 0;  // the milter connection, numbered from 1 per PythonMilter process
  // "negotiate", "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "body", "eom",
  // "unknown", "abort", "close"; "<stage>-sleeping" when a slow marker starts sleeping.
  std::string stage;
  std::vector<std::string> args;  // the callback's arguments (connect: host, family, addr, port)
  // The macros libmilter had at that callback (name as written: "j", "{client_addr}").
  // Includes those of earlier stages of the same message and session (libmilter's lookup).
  std::map<std::string, std::string> macros;
  // What it answered: "continue", "accept", "reject", "tempfail", "discard", "custom",
  // "customtemp", "multiline", "progress", "slow", "skip".
  std::string result;
  // eom: the changes it asked for, e.g. {"addheader", "X-Test-Added", "added by test milter"}.
  std::vector<std::vector<std::string>> mods;
};

struct PythonMilterOptions {
  bool symlist = false;       // send our own macro lists (see above)
  double slow_seconds = 3.0;  // how long "slow" sleeps (the script caps it at 30)
  // Marker tokens every connection starts with, space-separated: for tests that cannot choose the
  // CONNECT host name (through the server it is the client's verified name or "[127.0.0.1]"),
  // e.g. "reject-connect" or "custom-helo".
  std::string session_markers;
};

class PythonMilter {
 public:
  using Options = PythonMilterOptions;

  // Creates `dir` (its parent must exist) and starts the script there (/usr/bin/python3, our
  // child) on a free port; ready once the port accepts connections (bounded by `timeout`).
  // nullptr and the reason (with the script's output) in `error` on failure.
  static std::unique_ptr<PythonMilter> Start(const std::string& dir, std::string* error = nullptr,
                                             const Options& options = {},
                                             absl::Duration timeout = absl::Seconds(30));
  ~PythonMilter();  // Stop()

  uint16_t port() const { return port_; }
  std::string address() const;  // "inet:127.0.0.1:PORT", as a [[milter]] address
  pid_t pid() const { return pid_; }

  // Every event logged so far, in log order (a line that does not parse is skipped).
  std::vector<MilterEvent> Events() const;
  // The events of one connection.
  std::vector<MilterEvent> EventsOf(int connection) const;
  // The highest connection number logged so far; 0 if none.
  int LastConnection() const;
  // Waits until an event satisfies `match`; that event, or nullopt after `timeout`.
  std::optional<MilterEvent> WaitForEvent(const std::function<bool(const MilterEvent&)>& match,
                                          absl::Duration timeout = absl::Seconds(30)) const;
  // What the script printed (libmilter's and Python's errors).
  std::string Log() const;
  const std::string& events_path() const { return events_path_; }

  // SIGKILL (libmilter would take up to 5 s to act on SIGTERM; the log is flushed line by line)
  // and reaps it. True if it was gone within `timeout`.
  bool Stop(absl::Duration timeout = absl::Seconds(10));

 private:
  PythonMilter() = default;

  std::string dir_;
  std::string events_path_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Debian's rspamd as a milter on 127.0.0.1:port(): the rspamd_proxy worker with `milter = yes`
// and `self_scan = yes` (it scans itself, no normal worker), Debian's stock rules
// (/etc/rspamd/common.conf), and a local.d in the directory that keeps it offline and fast:
// every module that needs the network or redis is disabled (rbl, fuzzy_check, dkim, spf, dmarc,
// asn, phishing, multimap, whitelist, mime_types, mid, ...), DNS goes to 127.0.0.1:1 with a
// 0.1 s timeout, the URL suffix list is a handful of TLDs (Debian's full list costs 9 s of
// startup), no local networks (local_addrs = []). milter_headers adds its headers to every
// message (extended_spam_headers, skip_local and skip_authenticated off): X-Spamd-Result,
// X-Rspamd-Server, X-Rspamd-Queue-Id, X-Rspamd-Action, ... GTUBE is refused at end of message
// with "554 5.7.1 Gtube pattern" (SMFIR_REPLYCODE); a message above the reject score would get
// "554 5.7.1 Spam message rejected". rspamd sets every
// SMFIP_NR* flag: it answers only end of message (and OPTNEG).
// Runs as `_rspamd` (nobody when that user does not exist): rspamd refuses root, so the
// directory is handed to that user and its parents get o+x. Needs root (the test's user).
class Rspamd {
 public:
  // Creates `dir` (its parent must exist), writes the config and starts `rspamd -f` (our
  // child); ready when the proxy worker answers an OPTNEG on the port (bounded by `timeout`).
  // nullptr and the reason (with rspamd's log) in `error` on failure.
  static std::unique_ptr<Rspamd> Start(const std::string& dir, std::string* error = nullptr,
                                       absl::Duration timeout = absl::Seconds(90));
  ~Rspamd();  // Stop()

  uint16_t port() const { return port_; }
  std::string address() const;        // "inet:127.0.0.1:PORT"
  pid_t pid() const { return pid_; }  // rspamd's main process; -1 while stopped
  // How long the last Start()/Restart() took until ready.
  absl::Duration startup_time() const { return startup_time_; }

  // SIGTERM to the main process (which ends its workers); after 3 s (or `timeout` if shorter)
  // SIGKILL to rspamd's process group (the main process and its workers, run in a group of their
  // own). Afterwards the port refuses connections. True if the main process was reaped within
  // `timeout` of the SIGKILL.
  bool Stop(absl::Duration timeout = absl::Seconds(30));
  // Starts it again with the same configuration and port.
  bool Restart(std::string* error = nullptr, absl::Duration timeout = absl::Seconds(90));

  // rspamd's log file and what it printed.
  std::string Log() const;

 private:
  Rspamd() = default;
  bool Launch(std::string* error, absl::Duration timeout);

  std::string dir_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
  absl::Duration startup_time_;
};

// True once 127.0.0.1:`port` answers a milter OPTNEG (version 6) with an OPTNEG packet within
// `timeout` (tried again every 50 ms until then). The connection is closed right after.
bool WaitForMilter(uint16_t port, absl::Duration timeout);

}  // namespace ringmx::testing

// Real next hops for end-to-end delivery tests, each a private instance in a directory of the test,
// listening on 127.0.0.1 only and stopped by the PID it was started with:
//   - DovecotLmtp: Debian's Dovecot (dovecot-core + dovecot-lmtpd) serving LMTP on a TCP port and
//     a unix socket, users from a passwd-file, maildir storage in the directory.
//   - PostfixHop: Debian's Postfix (`postfix -c DIR start`) as an SMTP next hop for one domain,
//     delivering into maildirs in the directory (virtual(8)), never off the machine, with
//     per-recipient replies the test can set (450 then 250, 550).
//   - CaptureSmtp: tests/testing/capture_smtp.py, stores every message with its envelope (the
//     bounce hop: where DSNs go).
// Dovecot and Postfix need root (as the test command runs); mail they store belongs to uid/gid
// 65534 (nobody/nogroup: Dovecot refuses to deliver as root). Start() gives the directory's parent
// directories o+x so that those users can reach it. Every wait is bounded. Test-only.
//
// Thread affinity: none of these classes is thread-safe; use each from one thread, and start
// Dovecot and the capture server from a thread that outlives them (the test's main thread): they
// get SIGTERM when the thread that started them exits (PR_SET_PDEATHSIG, so that a test that dies
// leaves no server behind; Postfix daemonizes and is only stopped by Stop() or the destructor).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace ringmx::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed); 0 on
// failure. Another process may take it before the caller binds it; rare enough for tests.
uint16_t FreeLoopbackPort();

// A TCP socket listening on 127.0.0.1 on a port the kernel chose (in `port`), which never accepts
// unless the caller does: connections to it complete in the kernel (up to `backlog`) and then
// hear nothing. The caller closes it. -1 on failure.
int ListenOnLoopback(uint16_t& port, int backlog);

// True once 127.0.0.1:`port` accepts a connection and sends a line starting with "220" within
// `timeout` (tried again every 20 ms until then).
bool WaitForGreeting(uint16_t port, absl::Duration timeout);

// `text` with every LF not preceded by CR turned into CRLF (Postfix stores mail with LF ends).
std::string LfToCrlf(std::string_view text);

// Dovecot's LMTP delivery puts "Return-Path: <sender>\r\n" before the message; this is `stored`
// without that first line (unchanged if it does not start with "Return-Path:").
std::string WithoutReturnPath(std::string_view stored);

// The files of a maildir's new/ and cur/ (byte-exact), in file-name order; empty if none.
std::vector<std::string> ReadMaildir(const std::string& maildir);

// ---- Process and file helpers of the real peers (also tests/testing/milter_peers.h) ------------

// Writes `content` to a temporary name beside `path`, then renames it: a reader sees the old or
// the new file, never half of one.
bool WriteFileAtomic(const std::string& path, const std::string& content);

// Creates `dir` (mode 0711) and gives every parent that lacks it the search bit for others, so
// that unprivileged users (Dovecot's, Postfix's, rspamd's) can reach their files below it (TempDir
// is 0700). Only adds o+x, never read or write.
bool MakeReachableDir(const std::string& dir, std::string* error);

// fork + execv with stdin from /dev/null and stdout/stderr appended to `log_path`; no other
// descriptor of the test leaks into the child (a daemon it starts would keep the test's sockets
// open). The child gets SIGTERM if the thread that started it dies first. With
// `own_process_group` the child leads a new process group (its PID is the group's ID), so that
// it and the workers it forks can be killed together. The child's PID, or -1.
pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log_path,
                  bool own_process_group = false);

// SIGTERM to our child `pid`, reaps it; SIGKILL after `timeout`. True if it exited in time.
bool StopChild(pid_t pid, absl::Duration timeout);

// Polls `done` every 20 ms until it holds (true) or `timeout` has passed (false).
bool PollUntil(const std::function<bool()>& done, absl::Duration timeout);

// Dovecot LMTP on 127.0.0.1:port() and on the unix socket socket_path(). Users are local parts
// ("alice"): "alice" and "alice@<any domain>" are both that user (the userdb drops the domain);
// an unknown user gets "550 5.1.1 ... User doesn't exist" at RCPT. Mail is stored with CRLF line
// ends (mail_save_crlf), so a message arrives byte-exact after the Return-Path line Dovecot adds
// (see WithoutReturnPath), and no Received or Delivered-To header is added.
class DovecotLmtp {
 public:
  // Creates `dir` (its parent must exist) and starts Dovecot there (dovecot -F, our child); ready
  // when the port greets with 220 and the socket exists (bounded by `timeout`). nullptr and the
  // reason (with Dovecot's log) in `error` on failure.
  static std::unique_ptr<DovecotLmtp> Start(const std::string& dir,
                                            const std::vector<std::string>& users,
                                            std::string* error = nullptr,
                                            absl::Duration timeout = absl::Seconds(30));
  ~DovecotLmtp();  // Stop()

  uint16_t port() const { return port_; }
  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return pid_; }  // Dovecot's master; -1 while stopped
  bool running() const { return pid_ > 0; }

  // SIGTERM to the master (which ends its children), waits for it (up to `timeout`, then
  // SIGKILL). Afterwards the port and the socket refuse connections. True if it exited in time.
  bool Stop(absl::Duration timeout = absl::Seconds(20));
  // Starts it again with the same configuration: the same port, socket and maildirs.
  bool Restart(std::string* error = nullptr, absl::Duration timeout = absl::Seconds(30));

  // The messages stored for `user` (a local part), byte-exact, in file-name order.
  std::vector<std::string> Messages(const std::string& user) const;
  // Waits until `user` has at least `count` messages. True if so within `timeout`.
  bool WaitForMessages(const std::string& user, size_t count,
                       absl::Duration timeout = absl::Seconds(30)) const;
  std::string maildir(const std::string& user) const { return dir_ + "/mail/" + user; }
  // Dovecot's log (its log_path and what it printed).
  std::string Log() const;

 private:
  DovecotLmtp() = default;
  bool Launch(std::string* error, absl::Duration timeout);

  std::string dir_;
  std::string config_path_;
  std::string socket_path_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A private Postfix instance on 127.0.0.1:port() that accepts mail for `domain` (and relays
// nothing else: 554 5.7.1), delivering it with virtual(8) into maildirs under its directory, one
// per user (local part) given to Start(); other local parts of `domain` get "550 5.1.1 ... User
// unknown in virtual mailbox table". No DNS, no relayhost, no local delivery, nothing leaves the
// machine (bounces Postfix makes itself go to the error transport). Stored messages have LF line
// ends and Postfix's Return-Path, X-Original-To, Delivered-To and Received headers first; the
// rest is the message as sent (see LfToCrlf). Postfix offers PIPELINING, SIZE, 8BITMIME, DSN,
// SMTPUTF8, CHUNKING and ENHANCEDSTATUSCODES.
class PostfixHop {
 public:
  // Creates `dir` (its parent must exist), writes main.cf/master.cf and runs `postfix -c DIR/etc
  // start`; ready when the port greets with 220 (bounded by `timeout`). nullptr and the reason
  // (with Postfix's log) in `error` on failure.
  // With `tls_cert_chain` and `tls_key` (PEM files), smtpd offers STARTTLS with that certificate
  // (smtpd_tls_security_level = may).
  static std::unique_ptr<PostfixHop> Start(const std::string& dir, const std::string& domain,
                                           const std::vector<std::string>& users,
                                           std::string* error = nullptr,
                                           absl::Duration timeout = absl::Seconds(30),
                                           const std::string& tls_cert_chain = "",
                                           const std::string& tls_key = "");
  ~PostfixHop();  // Stop()

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }  // Postfix's master (not our child); -1 while stopped
  const std::string& domain() const { return domain_; }

  // From now on RCPT TO:<address> is answered with `reply`, "CODE X.Y.Z text" with a 4xx or 5xx
  // code (e.g. "450 4.2.1 try later", "550 5.1.1 no such user"); the client sees it as
  // "CODE X.Y.Z <address>: Recipient address rejected: text". Rewrites Postfix's
  // check_recipient_access table, `postfix reload`s, and returns once a probe session (EHLO,
  // MAIL FROM:<>, RCPT, QUIT) gets the new code, so the very next session sees it. False if it
  // did not within `timeout`.
  bool SetRecipientReply(const std::string& address, const std::string& reply,
                         absl::Duration timeout = absl::Seconds(30));
  // Takes `address` out of the table again (same mechanism and wait: the probe must get 250 for a
  // user given to Start(), 550 otherwise).
  bool ClearRecipientReply(const std::string& address, absl::Duration timeout = absl::Seconds(30));

  // The messages delivered to `user` (a local part), byte-exact as stored, in file-name order.
  std::vector<std::string> Messages(const std::string& user) const;
  bool WaitForMessages(const std::string& user, size_t count,
                       absl::Duration timeout = absl::Seconds(30)) const;
  // Postfix's log (maillog_file) and what `postfix` commands printed.
  std::string Log() const;

  // `postfix -c DIR/etc stop`, then waits until the master PID is gone (up to `timeout`, then
  // SIGKILL). True if it stopped in time.
  bool Stop(absl::Duration timeout = absl::Seconds(30));

 private:
  PostfixHop() = default;
  bool WriteAccessTable(std::string* error) const;
  bool ReloadAndProbe(const std::string& address, int want_code, absl::Duration timeout);

  std::string dir_;
  std::string domain_;
  std::vector<std::string> users_;
  std::vector<std::pair<std::string, std::string>> replies_;  // address -> reply
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// One message stored by CaptureSmtp.
struct CapturedMessage {
  std::string mail_command;                // "MAIL FROM:<> RET=HDRS", as sent
  std::vector<std::string> rcpt_commands;  // each accepted "RCPT TO:<...> ...", as sent
  std::string sender;                      // the reverse-path without <>; "" for the null sender
  std::vector<std::string> recipients;     // the forward-paths without <>
  std::string data;  // the message as received: dot-unstuffed, CRLF kept, without ".\r\n"
};

// tests/testing/capture_smtp.py on 127.0.0.1:port(): EHLO (or LHLO) offers `extensions`, every
// recipient is accepted unless a canned reply says otherwise, every message is stored.
class CaptureSmtp {
 public:
  // Creates `dir` (its parent must exist) and starts the script there (/usr/bin/python3, our
  // child); ready when it greets with 220 (bounded by `timeout`).
  static std::unique_ptr<CaptureSmtp> Start(
      const std::string& dir, std::string* error = nullptr,
      const std::vector<std::string>& extensions = {"PIPELINING", "8BITMIME"},
      absl::Duration timeout = absl::Seconds(30));
  ~CaptureSmtp();  // Stop()

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }

  // RCPT TO:<address> gets `reply` ("550 5.1.1 no such user"; a 2xx reply accepts it), from the
  // next RCPT on (the script reads the table at every RCPT).
  void SetRecipientReply(const std::string& address, const std::string& reply);
  void ClearRecipientReply(const std::string& address);

  // Every message stored so far, in the order the server accepted them.
  std::vector<CapturedMessage> Messages() const;
  bool WaitForMessages(size_t count, absl::Duration timeout = absl::Seconds(30)) const;
  // How many connections it has accepted so far (0 before the first).
  size_t Sessions() const;
  std::string Log() const;

  // SIGTERM, wait (then SIGKILL after `timeout`). True if it exited in time.
  bool Stop(absl::Duration timeout = absl::Seconds(10));

 private:
  CaptureSmtp() = default;
  void WriteReplies() const;

  std::string dir_;
  std::vector<std::pair<std::string, std::string>> replies_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace ringmx::testing

// Many scripted SMTP client connections driven by one thread with epoll and non-blocking sockets:
// the client side of the many-connections and hostile-client end-to-end tests and of
// bench/hostile. Each connection runs its own list of steps (send, trickle, wait for replies, wait
// for the close) and collects every reply the server sends, whatever step it is on. Loopback use
// only; every run is bounded by a deadline. Test-only.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"

#include "tests/testing/smtp_client.h"

namespace ringmx::testing {

// One step of a swarm connection's script.
struct SwarmStep {
  enum class Kind : uint8_t {
    kSend,          // write `bytes` `repeat` times, as fast as the socket takes them
    kTrickle,       // write `bytes` one octet at a time, `interval` apart
    kAwaitReplies,  // wait until `replies` replies have arrived in total (greeting included)
    kAwaitClose,    // wait until the server closes the connection
    kStopReading,   // read nothing more (replies pile up at the server); a reset still ends it
  };
  Kind kind = Kind::kSend;
  std::string bytes;
  uint64_t repeat = 1;
  absl::Duration interval;
  size_t replies = 0;

  static SwarmStep Send(std::string bytes, uint64_t repeat = 1);
  static SwarmStep Trickle(std::string bytes, absl::Duration interval);
  static SwarmStep AwaitReplies(size_t total);
  static SwarmStep AwaitClose();
  static SwarmStep StopReading();
};

// State of one connection. Read it after (or between) ConnSwarm::Run() calls.
struct SwarmConn {
  std::string label;  // the caller's name for the kind of client
  std::vector<SwarmStep> steps;
  size_t step = 0;                 // index of the step being run
  std::vector<SmtpReply> replies;  // every complete reply, in order
  bool opened = false;             // connect() was called
  bool connected = false;          // the TCP handshake completed
  bool closed = false;             // EOF or a socket error: nothing more will be read
  bool reset = false;              // closed by a reset or a write error, not a clean EOF
  std::string error;               // the failed connect, read or write, if any
  uint64_t bytes_sent = 0;
  absl::Time last_reply_at = absl::InfinitePast();

  // The script has run to its end, or the connection is closed. A 421 also ends the script: the
  // server is closing, and nothing more will be read.
  bool Done() const;
  // The first reply with `code`, or nullptr.
  const SmtpReply* FindReply(int code) const;
  int LastCode() const { return replies.empty() ? -1 : replies.back().code; }

  // Driver state (ConnSwarm only).
  int fd = -1;
  std::string in;
  uint64_t send_offset = 0;  // octets of the current step already written
  absl::Time next_send = absl::InfinitePast();
  bool want_write = false;
  bool reading = true;              // false after a kStopReading step
  bool counted_done = false;        // counted in ConnSwarm::done_
  bool counted_unanswered = false;  // counted in ConnSwarm::unanswered_
};

// Owns its connections and their sockets (closed when the swarm dies). Not thread-safe: use from
// one thread.
class ConnSwarm {
 public:
  // Connections to 127.0.0.1:`port`.
  explicit ConnSwarm(uint16_t port);
  ~ConnSwarm();
  ConnSwarm(const ConnSwarm&) = delete;
  ConnSwarm& operator=(const ConnSwarm&) = delete;

  // Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit.
  static uint64_t RaiseFileLimit();
  // Makes this process's RLIMIT_NOFILE soft limit at least `needed` (a server it starts inherits
  // it): if the hard limit is below `wanted`, raises it to `wanted` (capped at
  // /proc/sys/fs/nr_open; this takes root or CAP_SYS_RESOURCE), then the soft limit to the hard
  // limit. Returns the new soft limit; if that is below `needed`, says why in `error`.
  static uint64_t RaiseFileLimitTo(uint64_t needed, uint64_t wanted, std::string* error);

  // Adds a connection, opened by the next Run(); returns its index.
  size_t Add(std::string label, std::vector<SwarmStep> steps);
  // Appends steps to a connection's script (e.g. once every connection has been greeted).
  void Append(size_t index, std::vector<SwarmStep> steps);

  // Opens the connections not opened yet, at most `max_unanswered` at a time that have not yet
  // received their first reply (so the listen backlog never overflows), and runs every script
  // until all connections are Done() or `deadline` passes. With `on_tick`, it is called about
  // every `tick`, may Add() connections, and decides the end instead: the run goes on (even with
  // every connection done) until it returns false or `deadline` passes. True if all are done.
  bool Run(absl::Time deadline, size_t max_unanswered = 256,
           const std::function<bool()>& on_tick = nullptr,
           absl::Duration tick = absl::Milliseconds(100));

  // Closes the sockets of connections that are done (the caller has read what it needs).
  void CloseDone();

  size_t size() const { return conns_.size(); }
  SwarmConn& conn(size_t i) { return conns_[i]; }
  const SwarmConn& conn(size_t i) const { return conns_[i]; }
  const std::vector<SwarmConn>& conns() const { return conns_; }
  size_t done_count() const { return done_; }

 private:
  void Open(size_t index);
  void OnEvent(size_t index, uint32_t events, absl::Time now);
  void ReadAvailable(SwarmConn& c, absl::Time now);
  // Runs steps until one has to wait; keeps the epoll interest and the done count up to date.
  void Advance(size_t index, absl::Time now);
  void MarkClosed(SwarmConn& c, bool reset, std::string error);
  void UpdateInterest(size_t index);
  // Keeps `done_` and `unanswered_` in step with the connection's state.
  void Recount(SwarmConn& c);

  const uint16_t port_;
  int epoll_fd_ = -1;
  std::vector<SwarmConn> conns_;
  size_t next_to_open_ = 0;
  size_t unanswered_ = 0;  // opened, not closed, no reply yet
  size_t done_ = 0;
  // Connections in a kTrickle step, checked for their next octet on each loop turn.
  std::vector<size_t> trickling_;
};

}  // namespace ringmx::testing

// One load-generating thread: its own io_uring (net::Reactor) driving many SMTP sessions as
// non-blocking state machines. Bench-only.
#pragma once

#include <stdint.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include "bench/load/histogram.h"
#include "bench/load/options.h"
#include "net/reactor.h"
#include "smtp/reply.h"

namespace ringmx::bench {

int64_t NowNs();  // CLOCK_MONOTONIC

// Read-only during the run, except the message budget and the abort flag.
struct Shared {
  const Options* opt = nullptr;
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  SSL_CTX* ssl_ctx = nullptr;  // null with --tls none
  std::string data;            // the message, dot-stuffed, followed by ".\r\n"
  bool bounded = false;        // --total-messages given
  std::atomic<int64_t> budget{0};
  int64_t start_ns = 0;
  int64_t stop_ns = 0;  // no transaction starts after this
  int64_t hard_ns = 0;  // every session still open is aborted here
  std::atomic<bool> abort{false};
  // --accepted-ids: opened O_APPEND; each id is one write(), so lines from several workers never
  // interleave. -1 without the option.
  int accepted_ids_fd = -1;

  // Takes one message from the budget. False once the budget or the time is used up.
  bool ClaimMessage(int64_t now_ns);
};

// Per worker; the atomics are read by the progress line while the run goes on, the rest only
// after the worker has finished.
struct Stats {
  std::atomic<uint64_t> messages_ok{0};
  std::atomic<uint64_t> messages_failed{0};
  std::atomic<uint64_t> sessions_ok{0};
  std::atomic<uint64_t> sessions_failed{0};
  std::atomic<uint64_t> handshakes{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::map<std::string, uint64_t> errors;  // failed transactions by first bad reply code/reason
  Histogram banner;                        // connect() submitted -> 220 greeting
  Histogram handshake;                     // TLS ClientHello -> handshake complete
  Histogram data;                          // end of data sent -> its reply
  Histogram session;  // session start (scheduled start with --rate) -> 221 to QUIT
};

class Worker;

class Conn {
 public:
  explicit Conn(Worker* worker);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Starts a session holding one claimed message. `start_ns` is when it should have started.
  void Start(int64_t start_ns);
  bool busy() const { return busy_; }
  // Ends the session with `reason` if it has been silent for too long or the run is over.
  void Check(int64_t now_ns, int64_t timeout_ns, bool abort);

 private:
  enum class Step : uint8_t {
    kBanner,
    kEhlo,
    kStartTls,
    kMail,
    kRcpt,
    kData,
    kDataEnd,
    kRset,
    kQuit
  };
  enum OpKind : uint8_t { kConnect, kRecv, kSend };
  struct Op final : net::CompletionHandler {
    Conn* conn = nullptr;
    OpKind kind = kConnect;
    void OnCompletion(const io_uring_cqe& cqe) override { conn->OnOp(kind, cqe.res); }
  };
  struct Tx {
    std::string fail;  // first refusing reply code, "" while all is well
    int rcpt_ok = 0;
    int rcpt_sent = 0;
    int64_t eod_ns = 0;
  };

  void OnOp(OpKind kind, int res);
  void OnConnected(int res);
  void OnRecv(int res);
  void OnSent(int res);
  void ArmRecv();
  void KickSend();
  void Write(std::string_view plain);
  void OnPlain();
  void OnReply(const smtp::Reply& reply);
  // Sends RSET after a failed transaction (when `failed`), then the next MAIL (and with
  // PIPELINING its RCPTs and DATA), or QUIT when the session has no more messages.
  void NextTransaction(bool failed);
  void AppendRcpt(Tx& tx, std::string& dst);
  void CompleteTx(bool accepted, const std::string& code);
  // --accepted-ids: appends the id of a 250 after the data ("queued as <id>") to the file.
  void RecordAcceptedId(std::string_view reply);
  void StartTls();
  void DriveHandshake();
  void FlushTls();
  void EndSession(bool ok, const std::string& reason);
  void MaybeFinish();

  Worker* worker_;
  Op connect_op_, recv_op_, send_op_;
  int fd_ = -1;
  int ops_ = 0;
  bool busy_ = false;
  bool ended_ = false;
  bool recv_pending_ = false;
  bool send_pending_ = false;
  bool connect_pending_ = false;
  bool reserved_ = false;  // a claimed message not yet in a transaction
  int messages_started_ = 0;
  int64_t start_ns_ = 0;
  int64_t connect_ns_ = 0;
  int64_t hs_start_ns_ = 0;
  int64_t last_ns_ = 0;
  std::deque<Step> expect_;
  std::deque<Tx> txs_;
  std::string in_;            // plaintext not yet parsed
  smtp::ReplyParser parser_;  // the replies in `in_`; reset for each session
  std::string out_;           // wire bytes waiting
  std::string sending_;       // wire bytes in the send in flight
  size_t sending_off_ = 0;
  std::unique_ptr<char[]> rbuf_;
  SSL* ssl_ = nullptr;
  bool hs_done_ = false;
  bool pipe_ = false;  // pipelining in this session (asked for and offered)
};

class Worker {
 public:
  Worker(Shared* shared, int index, int connections, double rate);
  ~Worker();
  void Run();
  Stats& stats() { return stats_; }
  const std::string& fatal() const { return fatal_; }
  int64_t finished_ns() const { return finished_ns_; }

 private:
  friend class Conn;
  void OnSessionFree(Conn* conn);
  void StartFree(int64_t now);

  Shared* shared_;
  int index_;
  int connections_;
  double rate_;  // this worker's share of --rate; 0: closed loop
  Stats stats_;
  std::string fatal_;
  int64_t finished_ns_ = 0;
  std::unique_ptr<net::Reactor> reactor_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> free_;
  std::deque<int64_t> backlog_;  // scheduled starts waiting for a free connection (--rate)
  bool no_more_ = false;         // closed loop: the budget or the time ran out
  int busy_count_ = 0;
  std::string mail_from_;
  std::vector<std::string> rcpt_lines_;
  std::string ehlo_;
  uint32_t proxy_sessions_ = 0;  // --proxy: numbers the client address each header names
};

}  // namespace ringmx::bench

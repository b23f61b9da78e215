#include "bench/load/worker.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <openssl/err.h>

#include "bench/load/proxy_header.h"

namespace ringmx::bench {
namespace {

constexpr size_t kRecvSize = 16384;

void Bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

std::string CodeKey(int code) { return std::to_string(code); }

}  // namespace

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

bool Shared::ClaimMessage(int64_t now_ns) {
  if (abort.load(std::memory_order_relaxed) || now_ns >= stop_ns) return false;
  if (!bounded) return true;
  return budget.fetch_sub(1, std::memory_order_relaxed) > 0;
}

// ---------------------------------------------------------------------------------------------
// Conn

Conn::Conn(Worker* worker) : worker_(worker), rbuf_(new char[kRecvSize]) {
  connect_op_.conn = recv_op_.conn = send_op_.conn = this;
  connect_op_.kind = kConnect;
  recv_op_.kind = kRecv;
  send_op_.kind = kSend;
}

Conn::~Conn() {
  if (fd_ >= 0) close(fd_);
  if (ssl_ != nullptr) SSL_free(ssl_);
}

void Conn::Start(int64_t start_ns) {
  busy_ = true;
  ended_ = false;
  reserved_ = true;
  messages_started_ = 0;
  start_ns_ = start_ns;
  expect_.clear();
  txs_.clear();
  in_.clear();
  parser_ = smtp::ReplyParser();
  out_.clear();
  sending_.clear();
  sending_off_ = 0;
  hs_done_ = false;
  const Shared& sh = *worker_->shared_;
  fd_ = socket(sh.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    EndSession(false, "socket");
    return;
  }
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  connect_ns_ = last_ns_ = NowNs();
  io_uring_sqe* sqe = worker_->reactor_->Prepare(&connect_op_);
  io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(&sh.addr), sh.addrlen);
  connect_pending_ = true;
  ++ops_;
}

void Conn::OnOp(OpKind kind, int res) {
  --ops_;
  switch (kind) {
    case kConnect:
      connect_pending_ = false;
      OnConnected(res);
      break;
    case kRecv:
      recv_pending_ = false;
      OnRecv(res);
      break;
    case kSend:
      send_pending_ = false;
      OnSent(res);
      break;
  }
  MaybeFinish();
}

void Conn::OnConnected(int res) {
  if (ended_) return;
  if (res < 0) {
    EndSession(false, "connect");
    return;
  }
  last_ns_ = NowNs();
  ArmRecv();
  expect_.push_back(Step::kBanner);
  if (const int version = worker_->shared_->opt->proxy; version != 0) {
    // The header goes first, in the clear (before the ClientHello on implicit TLS), as a balancer
    // sends it; the client is 198.51.100.1-254, the front end the target (127.0.0.1 for IPv6).
    const Shared& sh = *worker_->shared_;
    uint32_t destination = 0x7f000001;
    uint16_t port = 0;
    if (sh.addr.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&sh.addr);
      destination = ntohl(in->sin_addr.s_addr);
      port = ntohs(in->sin_port);
    } else {
      port = ntohs(reinterpret_cast<const sockaddr_in6*>(&sh.addr)->sin6_port);
    }
    const uint32_t n = worker_->proxy_sessions_++;
    out_.append(ProxyHeaderBytes(version, 0xC6336400u + 1 + n % 254,
                                 static_cast<uint16_t>(1024 + n % 60000), destination, port));
    KickSend();
  }
  if (worker_->shared_->opt->tls == TlsMode::kImplicit) {
    StartTls();
    KickSend();
  }
}

void Conn::ArmRecv() {
  if (ended_ || recv_pending_) return;
  io_uring_sqe* sqe = worker_->reactor_->Prepare(&recv_op_);
  io_uring_prep_recv(sqe, fd_, rbuf_.get(), kRecvSize, 0);
  recv_pending_ = true;
  ++ops_;
}

void Conn::OnRecv(int res) {
  if (ended_) return;
  if (res == 0) {
    EndSession(false, "closed");
    return;
  }
  if (res < 0) {
    EndSession(false, res == -ECONNRESET ? "reset" : "io_error");
    return;
  }
  last_ns_ = NowNs();
  if (ssl_ == nullptr) {
    in_.append(rbuf_.get(), static_cast<size_t>(res));
  } else {
    BIO_write(SSL_get_rbio(ssl_), rbuf_.get(), res);
    if (!hs_done_) {
      DriveHandshake();
      KickSend();
      if (ended_ || !hs_done_) {
        ArmRecv();
        return;
      }
    }
    char buf[16384];
    while (true) {
      int n = SSL_read(ssl_, buf, sizeof(buf));
      if (n > 0) {
        in_.append(buf, static_cast<size_t>(n));
        continue;
      }
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_READ) break;
      ERR_clear_error();
      // The replies that came before close_notify (a 221) still count.
      OnPlain();
      EndSession(false, err == SSL_ERROR_ZERO_RETURN ? "closed" : "tls");
      return;
    }
    FlushTls();
  }
  OnPlain();
  KickSend();
  ArmRecv();
}

void Conn::OnSent(int res) {
  if (ended_) return;
  if (res < 0) {
    EndSession(false, res == -EPIPE || res == -ECONNRESET ? "reset" : "io_error");
    return;
  }
  Bump(worker_->stats_.bytes_sent, static_cast<uint64_t>(res));
  sending_off_ += static_cast<size_t>(res);
  if (sending_off_ >= sending_.size()) {
    sending_.clear();
    sending_off_ = 0;
  }
  KickSend();
}

void Conn::KickSend() {
  if (ended_ || send_pending_) return;
  if (sending_.empty()) {
    if (out_.empty()) return;
    sending_.swap(out_);
    sending_off_ = 0;
  }
  io_uring_sqe* sqe = worker_->reactor_->Prepare(&send_op_);
  io_uring_prep_send(sqe, fd_, sending_.data() + sending_off_, sending_.size() - sending_off_,
                     MSG_NOSIGNAL);
  send_pending_ = true;
  ++ops_;
}

void Conn::Write(std::string_view plain) {
  if (ssl_ != nullptr && hs_done_) {
    // Memory BIOs take everything.
    size_t off = 0;
    while (off < plain.size()) {
      const int chunk = static_cast<int>(std::min<size_t>(plain.size() - off, 1 << 20));
      int n = SSL_write(ssl_, plain.data() + off, chunk);
      if (n <= 0) {
        ERR_clear_error();
        EndSession(false, "tls");
        return;
      }
      off += static_cast<size_t>(n);
    }
    FlushTls();
    return;
  }
  out_.append(plain);
}

void Conn::StartTls() {
  const Shared& sh = *worker_->shared_;
  ssl_ = SSL_new(sh.ssl_ctx);
  if (ssl_ == nullptr) {
    EndSession(false, "tls");
    return;
  }
  SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_connect_state(ssl_);
  if (!sh.opt->sni.empty()) SSL_set_tlsext_host_name(ssl_, sh.opt->sni.c_str());
  hs_start_ns_ = NowNs();
  DriveHandshake();
}

void Conn::DriveHandshake() {
  int r = SSL_do_handshake(ssl_);
  FlushTls();
  if (r == 1) {
    hs_done_ = true;
    worker_->stats_.handshake.Record(NowNs() - hs_start_ns_);
    Bump(worker_->stats_.handshakes);
    if (worker_->shared_->opt->tls == TlsMode::kStartTls) {
      expect_.push_back(Step::kEhlo);
      Write(worker_->ehlo_);
    }
    return;
  }
  int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ) return;
  ERR_clear_error();
  EndSession(false, "tls");
}

void Conn::FlushTls() {
  BIO* wbio = SSL_get_wbio(ssl_);
  char buf[16384];
  while (BIO_ctrl_pending(wbio) > 0) {
    int n = BIO_read(wbio, buf, sizeof(buf));
    if (n <= 0) break;
    out_.append(buf, static_cast<size_t>(n));
  }
}

void Conn::OnPlain() {
  // Whole replies only (smtp/reply.h); a malformed one ends the session.
  std::string_view rest = in_;
  while (!ended_ && !rest.empty()) {
    smtp::Reply reply;
    const smtp::ReplyParser::Result r = parser_.Parse(rest, reply);
    if (r == smtp::ReplyParser::Result::kError) {
      EndSession(false, "protocol");
      return;
    }
    if (r == smtp::ReplyParser::Result::kNeedMore) break;
    OnReply(reply);
  }
  if (ended_) return;
  // The parser keeps any partial line itself (bounded by its limits).
  in_.erase(0, in_.size() - rest.size());
}

void Conn::AppendRcpt(Tx& tx, std::string& dst) {
  const auto& lines = worker_->rcpt_lines_;
  dst.append(lines[static_cast<size_t>(tx.rcpt_sent) % lines.size()]);
  ++tx.rcpt_sent;
  expect_.push_back(Step::kRcpt);
}

void Conn::CompleteTx(bool accepted, const std::string& code) {
  Stats& st = worker_->stats_;
  Tx& tx = txs_.front();
  if (accepted) {
    Bump(st.messages_ok);
    if (!tx.fail.empty()) ++st.errors[tx.fail];  // some recipients refused
  } else {
    Bump(st.messages_failed);
    ++st.errors[tx.fail.empty() ? code : tx.fail];
  }
  txs_.pop_front();
}

void Conn::RecordAcceptedId(std::string_view reply) {
  // ringmx words it "250 2.0.0 Ok: queued as <id>"; other servers differ, and a reply without the
  // marker is recorded as "?" so the file still has one line per accepted message.
  constexpr std::string_view kMarker = "queued as ";
  std::string line = "?";
  if (size_t pos = reply.find(kMarker); pos != std::string_view::npos) {
    pos += kMarker.size();
    const size_t end = reply.find_first_of(" \r\n", pos);
    const std::string_view id =
        reply.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (!id.empty()) line = std::string(id);
  }
  line.push_back('\n');
  // A write() to a regular file opened O_APPEND is in the page cache once it returns: it survives
  // this process being killed. No fsync: the record must outlive a kill, not a power cut.
  const int fd = worker_->shared_->accepted_ids_fd;
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = write(fd, line.data() + off, line.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (worker_->fatal_.empty()) {
        worker_->fatal_ = std::string("--accepted-ids: write failed: ") + strerror(errno);
      }
      worker_->shared_->abort.store(true);
      return;
    }
    off += static_cast<size_t>(n);
  }
}

void Conn::NextTransaction(bool failed) {
  const Options& opt = *worker_->shared_->opt;
  std::string plain;  // one write: one TLS record, one send
  if (failed) {
    plain.append("RSET\r\n");
    expect_.push_back(Step::kRset);
  }
  bool have = reserved_;
  reserved_ = false;
  if (!have && messages_started_ < opt.messages_per_connection) {
    have = worker_->shared_->ClaimMessage(NowNs());
  }
  if (have) {
    ++messages_started_;
    txs_.emplace_back();
    Tx& tx = txs_.back();
    plain.append(worker_->mail_from_);
    expect_.push_back(Step::kMail);
    if (pipe_) {
      for (int i = 0; i < opt.rcpts; ++i) AppendRcpt(tx, plain);
      plain.append("DATA\r\n");
      expect_.push_back(Step::kData);
    }
  } else {
    plain.append("QUIT\r\n");
    expect_.push_back(Step::kQuit);
  }
  Write(plain);
}

void Conn::OnReply(const smtp::Reply& reply) {
  const int code = reply.code;
  if (expect_.empty()) {
    EndSession(false, "protocol");
    return;
  }
  const Step step = expect_.front();
  expect_.pop_front();
  const Options& opt = *worker_->shared_->opt;
  Stats& st = worker_->stats_;
  switch (step) {
    case Step::kBanner:
      st.banner.Record(NowNs() - connect_ns_);
      if (code != 220) {
        EndSession(false, CodeKey(code));
        return;
      }
      expect_.push_back(Step::kEhlo);
      Write(worker_->ehlo_);
      return;
    case Step::kEhlo:
      if (code != 250) {
        EndSession(false, CodeKey(code));
        return;
      }
      // PIPELINING only where the server offers it (RFC 2920), whatever --pipelining says.
      pipe_ = opt.pipelining && reply.HasKeyword("PIPELINING");
      if (opt.tls == TlsMode::kStartTls && ssl_ == nullptr) {
        expect_.push_back(Step::kStartTls);
        Write("STARTTLS\r\n");
        return;
      }
      NextTransaction(false);
      return;
    case Step::kStartTls:
      if (code != 220) {
        EndSession(false, CodeKey(code));
        return;
      }
      StartTls();
      return;
    case Step::kMail: {
      Tx& tx = txs_.front();
      if (code != 250 && tx.fail.empty()) tx.fail = CodeKey(code);
      if (!pipe_) {
        if (code != 250) {
          CompleteTx(false, CodeKey(code));
          NextTransaction(true);
        } else {
          std::string rcpt;
          AppendRcpt(tx, rcpt);
          Write(rcpt);
        }
      }
      return;
    }
    case Step::kRcpt: {
      Tx& tx = txs_.front();
      if (code == 250 || code == 251) {
        ++tx.rcpt_ok;
      } else if (tx.fail.empty()) {
        tx.fail = CodeKey(code);
      }
      if (!pipe_) {
        if (tx.rcpt_sent < opt.rcpts) {
          std::string rcpt;
          AppendRcpt(tx, rcpt);
          Write(rcpt);
        } else if (tx.rcpt_ok > 0) {
          expect_.push_back(Step::kData);
          Write("DATA\r\n");
        } else {
          CompleteTx(false, CodeKey(code));
          NextTransaction(true);
        }
      }
      return;
    }
    case Step::kData: {
      Tx& tx = txs_.front();
      if (code != 354) {
        CompleteTx(false, CodeKey(code));
        NextTransaction(true);
        return;
      }
      expect_.push_back(Step::kDataEnd);
      tx.eod_ns = NowNs();
      Write(worker_->shared_->data);
      // With PIPELINING the next command group goes out with the end of the data.
      if (pipe_) NextTransaction(false);
      return;
    }
    case Step::kDataEnd: {
      Tx& tx = txs_.front();
      st.data.Record(NowNs() - tx.eod_ns);
      if (code == 250 && worker_->shared_->accepted_ids_fd >= 0) RecordAcceptedId(reply.ToWire());
      CompleteTx(code == 250, CodeKey(code));
      if (!pipe_) NextTransaction(false);
      return;
    }
    case Step::kRset:
      return;
    case Step::kQuit:
      if (code == 221) {
        st.session.Record(NowNs() - start_ns_);
        EndSession(true, "");
      } else {
        EndSession(false, CodeKey(code));
      }
      return;
  }
}

void Conn::EndSession(bool ok, const std::string& reason) {
  if (ended_) return;
  ended_ = true;
  Stats& st = worker_->stats_;
  bool counted = false;
  while (!txs_.empty()) {
    CompleteTx(false, reason);
    counted = true;
  }
  if (reserved_) {
    reserved_ = false;
    Bump(st.messages_failed);
    ++st.errors[reason];
    counted = true;
  }
  if (ok) {
    Bump(st.sessions_ok);
  } else {
    Bump(st.sessions_failed);
    if (!counted) ++st.errors[reason];
  }
  if (fd_ >= 0 && ops_ > 0) shutdown(fd_, SHUT_RDWR);
  if (connect_pending_) {
    // A connect in progress ignores shutdown(); cancel it (the cancel's own completion is ignored).
    io_uring_sqe* sqe = worker_->reactor_->Prepare(nullptr);
    io_uring_prep_cancel(sqe, &connect_op_, 0);
  }
  // Completions still in flight call MaybeFinish.
  if (ops_ == 0) MaybeFinish();
}

void Conn::MaybeFinish() {
  if (!ended_ || ops_ > 0 || !busy_) return;
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  recv_pending_ = send_pending_ = connect_pending_ = false;
  busy_ = false;
  worker_->OnSessionFree(this);
}

void Conn::Check(int64_t now_ns, int64_t timeout_ns, bool abort) {
  if (!busy_ || ended_) return;
  if (abort) {
    EndSession(false, "aborted");
  } else if (now_ns - last_ns_ > timeout_ns) {
    EndSession(false, "timeout");
  }
}

// ---------------------------------------------------------------------------------------------
// Worker

Worker::Worker(Shared* shared, int index, int connections, double rate)
    : shared_(shared), index_(index), connections_(connections), rate_(rate) {
  const Options& opt = *shared_->opt;
  mail_from_ = "MAIL FROM:<" + opt.from + ">\r\n";
  for (int i = 0; i < opt.rcpts; ++i) {
    rcpt_lines_.push_back("RCPT TO:<user" + std::to_string(i) + "@" + opt.to + ">\r\n");
  }
  ehlo_ = "EHLO " + opt.helo + "\r\n";
}

Worker::~Worker() = default;

void Worker::OnSessionFree(Conn* conn) {
  // Restarted from the loop, never from inside a completion (no recursion when connects fail
  // at once).
  --busy_count_;
  free_.push_back(conn);
}

void Worker::StartFree(int64_t now) {
  // A session that fails at once (socket() refused) comes back to free_: one pass only.
  for (size_t n = free_.size(); n > 0 && !free_.empty(); --n) {
    int64_t start = now;
    if (rate_ > 0) {
      if (backlog_.empty()) return;
      start = backlog_.front();
      backlog_.pop_front();
    } else if (no_more_ || !shared_->ClaimMessage(now)) {
      no_more_ = true;
      return;
    }
    Conn* conn = free_.back();
    free_.pop_back();
    ++busy_count_;
    conn->Start(start);
  }
}

void Worker::Run() {
  auto reactor = net::Reactor::Create(std::clamp(connections_ * 4, 64, 32768));
  if (!reactor.ok()) {
    fatal_ = std::string(reactor.status().message());
    finished_ns_ = NowNs();
    return;
  }
  reactor_ = std::move(*reactor);
  for (int i = 0; i < connections_; ++i) conns_.push_back(std::make_unique<Conn>(this));
  const Options& opt = *shared_->opt;
  const int64_t timeout_ns = static_cast<int64_t>(opt.timeout_s * 1e9);
  int64_t now = NowNs();
  int64_t next_arrival = shared_->start_ns;
  const double interval_ns = rate_ > 0 ? 1e9 / rate_ : 0;
  int64_t arrivals = 0;
  bool arrivals_done = false;
  for (auto it = conns_.rbegin(); it != conns_.rend(); ++it) free_.push_back(it->get());
  int64_t last_check = now;
  bool aborted = false;
  while (true) {
    now = NowNs();
    if (rate_ > 0 && !arrivals_done) {
      while (next_arrival <= now) {
        if (!shared_->ClaimMessage(next_arrival > now ? now : next_arrival)) {
          arrivals_done = true;
          break;
        }
        backlog_.push_back(next_arrival);
        ++arrivals;
        next_arrival =
            shared_->start_ns + static_cast<int64_t>(static_cast<double>(arrivals) * interval_ns);
      }
    }
    if (!aborted) StartFree(now);
    if (!aborted && (now >= shared_->hard_ns || shared_->abort.load(std::memory_order_relaxed))) {
      aborted = true;
      // Sessions waiting for a connection never started: their messages fail as aborted.
      if (!backlog_.empty()) {
        stats_.messages_failed.fetch_add(backlog_.size(), std::memory_order_relaxed);
        stats_.errors["aborted"] += backlog_.size();
        backlog_.clear();
      }
      arrivals_done = true;
      for (auto& conn : conns_) conn->Check(now, timeout_ns, true);
    }
    if (now - last_check >= 100000000) {
      last_check = now;
      for (auto& conn : conns_) conn->Check(now, timeout_ns, false);
    }
    const bool more = rate_ > 0 ? (!arrivals_done || !backlog_.empty()) : !no_more_;
    if (busy_count_ == 0 && (!more || aborted)) break;
    int64_t wait_ns = 100000000;
    if (rate_ > 0 && !arrivals_done) wait_ns = std::clamp<int64_t>(next_arrival - now, 0, wait_ns);
    auto ran = reactor_->RunOnce(absl::Nanoseconds(wait_ns));
    if (!ran.ok()) {
      fatal_ = std::string(ran.status().message());
      shared_->abort.store(true);
      break;
    }
  }
  (void)index_;
  finished_ns_ = NowNs();
}

}  // namespace ringmx::bench

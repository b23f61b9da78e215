#include "net/shard.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "net/buffer_ring.h"
#include "net/check_workers.h"
#include "net/connection.h"
#include "net/credentials.h"
#include "net/listener.h"
#include "net/queue_log.h"
#include "net/spool.h"

namespace ringmx::net {
namespace {

constexpr unsigned kRingEntries = 4096;
constexpr uint16_t kBufferGroup = 1;
constexpr uint32_t kBufferCount = 512;        // power of two
constexpr uint32_t kBufferBytes = 16 * 1024;  // per receive buffer
constexpr absl::Duration kTickInterval = absl::Milliseconds(100);
// Delivery results wait this long for a group that incoming mail starts (QueueLogOptions).
constexpr absl::Duration kStateRecordWait = absl::Milliseconds(20);

}  // namespace

// ---- Mailbox ------------------------------------------------------------------------------

Mailbox::Mailbox() : eventfd_(::eventfd(0, EFD_CLOEXEC)) { RINGMX_CHECK(eventfd_ >= 0); }

Mailbox::~Mailbox() { close(eventfd_); }

void Mailbox::Post(ShardMessage message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(message));
  }
  const uint64_t one = 1;
  ssize_t unused = write(eventfd_, &one, sizeof(one));
  (void)unused;  // the counter cannot overflow from our few posts
}

std::vector<ShardMessage> Mailbox::TakeAll() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ShardMessage> out;
  out.swap(queue_);
  return out;
}

// ---- Completion handlers owned by the shard -------------------------------------------------

class Shard::Acceptor final : public CompletionHandler {
 public:
  Acceptor(Shard& shard, ShardListener listener) : shard_(shard), listener_(listener) {}
  ~Acceptor() { Close(); }
  void Close() {
    if (listener_.fd >= 0) close(listener_.fd);
    listener_.fd = -1;
  }
  void OnCompletion(const io_uring_cqe& cqe) override { shard_.OnAccept(cqe, *this); }

  Shard& shard_;
  ShardListener listener_;
  bool armed_ = false;
  bool rearm_ = false;
  // Accepted sockets numbered at or above this are refused with 421 (see AcceptFdCeiling());
  // computed from RLIMIT_NOFILE each time the accept is armed.
  int fd_ceiling_ = INT_MAX;
  // A pause is going on: accepts failed (out of descriptors, say) or were refused at the ceiling.
  // Logged once when it starts and once when a connection is taken again, never per attempt.
  bool paused_ = false;
  bool cancel_pending_ = false;  // a cancel of the armed multishot accept is in flight
  bool retired_ = false;         // a reload removed its listener: closed, never re-armed
  uint64_t failed_ = 0;          // accepts that failed during the pause
  uint64_t refused_ = 0;         // connections refused with 421 during the pause
};

class Shard::MailboxReader final : public CompletionHandler {
 public:
  explicit MailboxReader(Shard& shard) : shard_(shard) {}
  void OnCompletion(const io_uring_cqe& /*cqe*/) override {
    armed_ = false;
    shard_.OnMailbox();
  }
  Shard& shard_;
  uint64_t value_ = 0;
  bool armed_ = false;
};

// ---- Shard ----------------------------------------------------------------------------------

Shard::Shard(uint32_t index, Runtime runtime, std::vector<ShardListener> listeners,
             const KernelTlsSupport& kernel_tls, const core::Clock& clock, int cpu,
             uint32_t shard_count)
    : index_(index),
      clock_(clock),
      cpu_(cpu),
      kernel_tls_(kernel_tls.available),
      kernel_tls_rekey_(kernel_tls.available && kernel_tls.rekey),
      shard_count_(shard_count),
      generation_(GenerationRef::Make(std::move(runtime))),
      ids_(index),
      auth_throttle_(policy::AuthThrottleOptions::FromConfig(generation_->snapshot().config.auth)) {
  for (const ShardListener& listener : listeners) {
    acceptors_.push_back(std::make_unique<Acceptor>(*this, listener));
  }
  mailbox_reader_ = std::make_unique<MailboxReader>(*this);
}

Shard::~Shard() {
  for (Connection* connection : connections_) delete connection;
  // Acceptors close their listening sockets; the ring goes after every user of it.
  acceptors_.clear();
  retired_acceptors_.clear();
  deliverer_.reset();
  queue_log_ = nullptr;
  spool_.reset();
  buffers_.reset();
  reactor_.reset();
}

absl::Status Shard::Init() {
  RINGMX_ASSIGN_OR_RETURN(reactor_, Reactor::Create(kRingEntries));
  RINGMX_ASSIGN_OR_RETURN(
      buffers_, BufferRing::Create(reactor_->ring(), kBufferGroup, kBufferCount, kBufferBytes));
  const core::SpoolConfig& spool = runtime().snapshot->config.spool;
  if (spool.mode == core::SpoolMode::kDiscard) {
    spool_ = CreateDiscardSpool(*reactor_);
  } else {
    // Replays this shard's queue before it serves (blocking I/O is fine here).
    RINGMX_ASSIGN_OR_RETURN(
        std::unique_ptr<QueueLog> log,
        QueueLog::Open(ShardQueueDirectory(spool.path, index_), *reactor_, clock_,
                       {.segment_size = spool.segment_size,
                        .name = absl::StrCat("shard=", index_),
                        .state_wait = kStateRecordWait}));
    queue_log_ = log.get();
    spool_ = std::move(log);
    deliverer_ = std::make_unique<Deliverer>(index_, *reactor_, *queue_log_, clock_, ids_,
                                             delivery_counters_, runtime());
    deliverer_->set_on_learned(
        [this](const std::string& address, const policy::VerifyCache::Entry& entry) {
          for (Shard* peer : peers_) {
            ShardMessage message;
            message.kind = ShardMessage::Kind::kVerifyLearned;
            message.verify_address = address;
            message.verify_entry = entry;
            peer->mailbox().Post(std::move(message));
          }
        });
    PublishQueueCounters();  // what replay found, before the first batch
  }
  for (auto& acceptor : acceptors_) ArmAccept(*acceptor);
  ArmMailbox();
  return reactor_->Submit();
}

void Shard::NameAndPinThread() {
  // A thread name is at most 15 bytes: "ringmx-shard" and up to three digits fit.
  std::string name = absl::StrCat("ringmx-shard", index_);
  if (name.size() > 15) name.resize(15);
  // Best effort: a thread without its name only looks anonymous in ps and /proc.
  pthread_setname_np(pthread_self(), name.c_str());
  if (cpu_ < 0) {
    core::LogInfo(absl::StrCat("shard=", index_, " cpu=any (pin_threads = false)"));
    return;
  }
  // Before the ring exists, so that the ring's memory and its kernel workers start out local.
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu_, &set);
  const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  if (rc != 0) {
    core::LogWarning(absl::StrCat(
        "shard=", index_, " cpu=", cpu_, " pinning failed, running unpinned: ",
        core::ErrnoStatus(rc, absl::StrCat("pthread_setaffinity_np cpu ", cpu_)).message()));
    return;
  }
  core::LogInfo(absl::StrCat("shard=", index_, " cpu=", cpu_));
}

void Shard::Run(const std::function<void(absl::Status)>& ready) {
  NameAndPinThread();
  absl::Status status = Init();
  ready(status);
  if (!status.ok()) return;
  while (!Finished()) {
    batch_now_valid_ = false;  // the next batch reads the clock afresh
    // Answers ready for the next batch (a cached verification) must not wait for the tick.
    absl::StatusOr<int> ran =
        reactor_->RunOnce(AnswerDueNow(batch_now_) ? absl::ZeroDuration() : kTickInterval);
    if (!ran.ok()) {
      core::LogError(absl::StrCat("shard=", index_, " ring failed: ", ran.status().ToString()));
      break;
    }
    const absl::Time now = BatchNow();
    if (now >= next_tick_) {
      Tick(now);
      next_tick_ = now + kTickInterval;
    }
    ReleaseDelayedAnswers(now);
    FlushDirty(now);
    // Before the group commit, so that the results it records ride with this batch's group.
    if (deliverer_ != nullptr) deliverer_->AfterBatch(now);
    spool_->Flush();
    PublishQueueCounters();
  }
}

void Shard::PublishQueueCounters() {
  if (queue_log_ == nullptr) return;
  const QueueLogCounters& c = queue_log_->counters();
  auto set = [](std::atomic<uint64_t>& counter, uint64_t value) {
    counter.store(value, std::memory_order_relaxed);
  };
  // Queue commands (delete) change the index through groups too; replay before any group.
  if (c.groups == published_queue_groups_ && published_queue_groups_ != 0) return;
  published_queue_groups_ = c.groups;
  set(counters_.queue_messages, queue_log_->index().size());
  set(counters_.queue_groups, c.groups);
  set(counters_.queue_records, c.records);
  set(counters_.queue_bytes, c.bytes);
  set(counters_.queue_last_group_records, c.last_group_records);
}

bool Shard::Finished() const {
  if (!draining_) return false;
  if (!connections_.empty() || spool_->pending() > 0) return false;
  if (deliverer_ != nullptr && !deliverer_->Finished()) return false;
  for (const auto& acceptor : acceptors_) {
    if (acceptor->armed_) return false;
  }
  for (const auto& acceptor : retired_acceptors_) {
    if (acceptor->armed_) return false;
  }
  return true;
}

namespace {

// The lowest descriptor number at which a new connection is refused: RLIMIT_NOFILE minus a reserve
// for the work of the shard beyond its sockets (the queue's segment files, rotation, start-up
// reads). Linux hands out the lowest free descriptor, so an accepted socket numbered
// N means at least N descriptors are open: a cheap lower bound on the count, no syscall per accept.
int AcceptFdCeiling() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return INT_MAX;
  const rlim_t reserve =
      std::min<rlim_t>(std::clamp<rlim_t>(limit.rlim_cur / 8, 16, 4096), limit.rlim_cur / 2);
  return static_cast<int>(std::min<rlim_t>(limit.rlim_cur - reserve, INT_MAX));
}

}  // namespace

void Shard::ArmAccept(Acceptor& acceptor) {
  io_uring_sqe* sqe = reactor_->Prepare(&acceptor);
  io_uring_prep_multishot_accept(sqe, acceptor.listener_.fd, nullptr, nullptr, SOCK_CLOEXEC);
  acceptor.armed_ = true;
  acceptor.rearm_ = false;
  acceptor.cancel_pending_ = false;
  acceptor.fd_ceiling_ = AcceptFdCeiling();
}

void Shard::OnAccept(const io_uring_cqe& cqe, Acceptor& acceptor) {
  if (!(cqe.flags & IORING_CQE_F_MORE)) {
    acceptor.armed_ = false;
    if (!draining_ && !acceptor.retired_) acceptor.rearm_ = true;  // re-armed at the next tick
  }
  if (acceptor.retired_) {
    // Taken in the instant before the cancel: its listener is gone from the config, so the
    // connection is closed unserved, as it would have been a moment later.
    if (cqe.res >= 0) close(cqe.res);
    return;
  }
  // Stops taking connections until the next tick, which re-arms the accept (Tick() re-arms an
  // acceptor that is not armed): a failing or refused accept costs one attempt per tick, never a
  // loop. A failed accept has already ended the multishot; one still armed is cancelled.
  auto pause = [&](const std::string& why) {
    if (acceptor.armed_ && !acceptor.cancel_pending_) {
      io_uring_sqe* sqe = reactor_->Prepare(nullptr);  // its own completion says nothing new
      io_uring_prep_cancel(sqe, &acceptor, 0);
      acceptor.cancel_pending_ = true;
    }
    if (acceptor.paused_) return;
    acceptor.paused_ = true;
    core::LogWarning(absl::StrCat(
        "shard=", index_,
        " listener=", runtime().snapshot->config.listeners[acceptor.listener_.index].name,
        " accept paused: ", why, "; retrying every tick, logged again when it accepts"));
  };
  if (cqe.res < 0) {
    if (cqe.res == -ECANCELED) return;
    ++acceptor.failed_;
    pause(cqe.res == -EMFILE || cqe.res == -ENFILE
              ? absl::StrCat("out of file descriptors (",
                             core::ErrnoStatus(-cqe.res, "accept").message(), ")")
              : std::string(core::ErrnoStatus(-cqe.res, "accept").message()));
    return;
  }
  const int fd = cqe.res;
  if (draining_) {
    close(fd);
    return;
  }
  if (fd >= acceptor.fd_ceiling_) {
    // Near the descriptor limit: the rest is kept for the sessions already in, so that they can
    // still store their messages. The client is told to come back (RFC 5321 section 3.8; RFC 3463
    // 4.3.2 "system not accepting network messages"); a new socket's buffer always takes it. An
    // implicit-TLS client expects a handshake, not plaintext: it only sees the close.
    if (runtime().snapshot->config.listeners[acceptor.listener_.index].tls !=
        core::TlsMode::kImplicit) {
      const std::string reply =
          absl::StrCat("421 4.3.2 ", runtime().snapshot->config.hostname,
                       " Service not available: too many connections, try again later\r\n");
      const ssize_t sent = send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      (void)sent;  // nothing to do if the client is already gone
    }
    close(fd);
    ++acceptor.refused_;
    pause(absl::StrCat("near the file descriptor limit (socket ", fd, ", limit minus reserve ",
                       acceptor.fd_ceiling_, "); new connections get 421"));
    return;
  }
  // The pause ends (and says so) only well below the ceiling: at the limit with clients coming and
  // going, sockets land just below and just above it in turn, which is one episode, not many.
  if (acceptor.paused_ && fd < acceptor.fd_ceiling_ - std::min(16, acceptor.fd_ceiling_ / 4)) {
    core::LogInfo(absl::StrCat("shard=", index_, " listener=",
                               runtime().snapshot->config.listeners[acceptor.listener_.index].name,
                               " accepting again (", acceptor.failed_, " failed accepts, ",
                               acceptor.refused_, " connections refused with 421 meanwhile)"));
    acceptor.paused_ = false;
    acceptor.failed_ = 0;
    acceptor.refused_ = 0;
  }
  policy::ConnectionFacts facts;
  facts.listener = &runtime().snapshot->config.listeners[acceptor.listener_.index];
  sockaddr_storage storage;
  socklen_t len = sizeof(storage);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&storage), &len) < 0 ||
      !EndpointFromSockaddr(&storage, facts.client)) {
    close(fd);  // the client is already gone
    return;
  }
  len = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len) == 0) {
    EndpointFromSockaddr(&storage, facts.local);
  }
  const absl::Time now = BatchNow();
  auto* connection =
      new Connection(*this, fd, generation_, acceptor.listener_.index, std::move(facts), now);
  connection->slot_ = connections_.size();
  connections_.push_back(connection);
  ShardCounters::Add(counters_.connections_open, 1);
  ShardCounters::Add(counters_.connections_total, 1);
  connection->Start(now);
}

void Shard::ArmMailbox() {
  io_uring_sqe* sqe = reactor_->Prepare(mailbox_reader_.get());
  io_uring_prep_read(sqe, mailbox_.eventfd(), &mailbox_reader_->value_, sizeof(uint64_t), 0);
  mailbox_reader_->armed_ = true;
}

void Shard::OnMailbox() {
  for (ShardMessage& message : mailbox_.TakeAll()) {
    switch (message.kind) {
      case ShardMessage::Kind::kSnapshot:
        ApplySnapshot(std::move(message.runtime), std::move(message.listeners));
        break;
      case ShardMessage::Kind::kDrain:
        BeginDrain(BatchNow());
        break;
      case ShardMessage::Kind::kQueueTask:
        // What it appends goes out with the group of this batch (Flush after the batch).
        if (message.queue_task) message.queue_task(queue_log_);
        break;
      case ShardMessage::Kind::kCheckAnswer:
        OnCheckAnswer(message.check_id, std::move(message.answer), BatchNow());
        break;
      case ShardMessage::Kind::kVerifyLearned:
        if (deliverer_ != nullptr) {
          deliverer_->Learn(message.verify_address, std::move(message.verify_entry));
        }
        break;
      case ShardMessage::Kind::kTickForTest: {
        // This batch may have read the clock before the test moved it: read it again (taking the
        // message under the mailbox's mutex ordered the move before this read).
        batch_now_valid_ = false;
        const absl::Time now = BatchNow();
        Tick(now);
        next_tick_ = now + kTickInterval;
        if (message.done) message.done();
        break;
      }
    }
  }
  if (!draining_) ArmMailbox();
}

void Shard::ApplySnapshot(Runtime next, std::vector<ShardListener> listeners) {
  // New sessions get the new generation; live ones keep theirs until they end, and the old one
  // goes with the last of them (or now, if none is left).
  generation_ = GenerationRef::Make(std::move(next));
  // The throttle's limits are the shard's, from the newest config; its counts carry on.
  auth_throttle_.set_options(
      policy::AuthThrottleOptions::FromConfig(runtime().snapshot->config.auth));
  if (deliverer_ != nullptr) deliverer_->SetRuntime(runtime());

  // Listeners: a socket in `listeners` that an acceptor has is kept (with its new index); a new
  // one gets an acceptor; an acceptor whose socket is not listed stops accepting now.
  std::vector<std::unique_ptr<Acceptor>> kept;
  for (const ShardListener& listener : listeners) {
    auto it = std::find_if(acceptors_.begin(), acceptors_.end(), [&](const auto& acceptor) {
      return acceptor != nullptr && acceptor->listener_.fd == listener.fd;
    });
    if (it != acceptors_.end()) {
      (*it)->listener_.index = listener.index;
      kept.push_back(std::move(*it));
      continue;
    }
    kept.push_back(std::make_unique<Acceptor>(*this, listener));
    if (draining_) continue;  // closed with the shard
    ArmAccept(*kept.back());
    core::LogInfo(absl::StrCat(
        "shard=", index_, " listener=", runtime().snapshot->config.listeners[listener.index].name,
        " accepting (added by reload)"));
  }
  for (std::unique_ptr<Acceptor>& acceptor : acceptors_) {
    if (acceptor == nullptr) continue;
    // Removed: no new connection from now on. The socket is closed at once, so clients of the old
    // address are refused by the kernel instead of waiting in a backlog nobody reads; the
    // sessions it accepted are not tied to it and go on with their own generation.
    acceptor->retired_ = true;
    acceptor->rearm_ = false;
    if (acceptor->armed_ && !acceptor->cancel_pending_) {
      io_uring_sqe* sqe = reactor_->Prepare(nullptr);
      io_uring_prep_cancel(sqe, acceptor.get(), 0);
      acceptor->cancel_pending_ = true;
    }
    acceptor->Close();
    retired_acceptors_.push_back(std::move(acceptor));
  }
  acceptors_ = std::move(kept);
  ReapRetiredAcceptors();
}

void Shard::ReapRetiredAcceptors() {
  std::erase_if(retired_acceptors_, [](const auto& acceptor) { return !acceptor->armed_; });
}

void Shard::BeginDrain(absl::Time now) {
  if (draining_) return;
  draining_ = true;
  const absl::Duration grace = runtime().snapshot->config.timeouts.shutdown_grace;
  drain_deadline_ = now + grace;
  core::LogInfo(absl::StrCat("shard=", index_, " draining connections=", connections_.size(),
                             " grace_s=", absl::ToInt64Seconds(grace)));
  for (auto& acceptor : acceptors_) {
    acceptor->rearm_ = false;
    if (acceptor->armed_) {
      io_uring_sqe* sqe = reactor_->Prepare(nullptr);
      io_uring_prep_cancel_fd(sqe, acceptor->listener_.fd, IORING_ASYNC_CANCEL_ALL);
    }
  }
  for (Connection* connection : connections_) connection->Drain(now);
  if (deliverer_ != nullptr) deliverer_->BeginDrain(now);
}

void Shard::Tick(absl::Time now) {
  if (!draining_) {
    for (auto& acceptor : acceptors_) {
      if (acceptor->rearm_ && !acceptor->armed_) ArmAccept(*acceptor);
    }
  }
  if (draining_ && !forced_ && now >= drain_deadline_) {
    forced_ = true;
    core::LogWarning(absl::StrCat("shard=", index_, " shutdown grace over, closing ",
                                  connections_.size(), " connections"));
    for (Connection* connection : connections_) connection->Abort();
    if (deliverer_ != nullptr) deliverer_->Abort();
  }
  ReapRetiredAcceptors();
  ReleaseDelayedAnswers(now);
  for (Connection* connection : connections_) connection->Tick(now);
  if (deliverer_ != nullptr) deliverer_->Tick(now);
  limiter_.Expire(now);  // works once a minute
}

uint64_t Shard::StartCheck(Connection* connection, smtp::CheckRequest request,
                           const core::Snapshot& snapshot) {
  const uint64_t id = ++next_check_id_;
  PendingCheck& pending = checks_[id];
  pending.connection = connection;
  pending.client = connection->session_.facts().client.address;
  pending.kind = request.kind;
  const absl::Time now = BatchNow();
  switch (request.kind) {
    case smtp::CheckRequest::Kind::kCredentials: {
      const policy::AuthThrottleDecision throttle = auth_throttle_.Before(pending.client, now);
      smtp::CheckAnswer early;
      if (throttle.refuse) {
        // Over its failure limit: refused without spending a hash on it.
        early.decision = smtp::CheckAnswer::Decision::kRefuse;
        core::LogInfo(absl::StrCat("auth throttle shard=", index_,
                                   " client=", pending.client.ToString(), " refused"));
      } else if (check_workers_ == nullptr || snapshot.passwd == nullptr) {
        early.decision = smtp::CheckAnswer::Decision::kTempFail;
      } else {
        if (throttle.delay > absl::ZeroDuration()) {
          // Every answer to this address waits, success too: a fast 235 against a slow 535 would
          // tell a guesser which guess was right without waiting.
          pending.release_at = now + throttle.delay;
          core::LogInfo(absl::StrCat("auth throttle shard=", index_,
                                     " client=", pending.client.ToString(),
                                     " delay_ms=", absl::ToInt64Milliseconds(throttle.delay)));
        }
        // The job owns the password (a wiping SecretString) and the table it checks against.
        auto secret = std::make_shared<core::SecretString>(std::move(request.secret));
        pending.ticket =
            check_workers_->Submit([table = snapshot.passwd, mailbox = &mailbox_, id,
                                    user = std::move(request.user), secret = std::move(secret)] {
              ShardMessage message;
              message.kind = ShardMessage::Kind::kCheckAnswer;
              message.check_id = id;
              message.answer.decision = VerifyPassword(*table, user, secret->view())
                                            ? smtp::CheckAnswer::Decision::kAccept
                                            : smtp::CheckAnswer::Decision::kReject;
              secret->Wipe();
              mailbox->Post(std::move(message));
            });
        return id;
      }
      // Answered in the next batch, like every check (the caller is in the middle of its work).
      delayed_answers_.push_back({now, id, std::move(early)});
      return id;
    }
    case smtp::CheckRequest::Kind::kRecipient: {
      if (deliverer_ == nullptr) {
        // No queue (discard mode): nothing to verify against.
        delayed_answers_.push_back({now, id, {smtp::CheckAnswer::Decision::kAccept, ""}});
        return id;
      }
      // A cached answer comes back from inside Verify(): like every answer it is handed over in
      // the next batch (ReleaseDelayedAnswers()), never from inside this call.
      deliverer_->Verify(std::move(request.address), [this, id](smtp::CheckAnswer answer) {
        delayed_answers_.push_back({absl::InfinitePast(), id, std::move(answer)});
      });
      return id;
    }
  }
  return id;
}

void Shard::CancelCheck(uint64_t id) {
  auto it = checks_.find(id);
  if (it == checks_.end()) return;
  if (it->second.ticket != 0 && check_workers_ != nullptr)
    check_workers_->Cancel(it->second.ticket);
  checks_.erase(it);
}

void Shard::OnCheckAnswer(uint64_t id, smtp::CheckAnswer answer, absl::Time now) {
  auto it = checks_.find(id);
  if (it == checks_.end()) return;  // the connection has gone
  PendingCheck& pending = it->second;
  if (pending.kind == smtp::CheckRequest::Kind::kCredentials && pending.ticket != 0) {
    pending.ticket = 0;  // the hash has run
    if (answer.decision == smtp::CheckAnswer::Decision::kReject) {
      auth_throttle_.Failed(pending.client, now);
    }
    if (pending.release_at > now) {
      delayed_answers_.push_back({pending.release_at, id, std::move(answer)});
      return;
    }
  }
  Connection* connection = pending.connection;
  checks_.erase(it);
  connection->OnCheckAnswer(std::move(answer));
}

bool Shard::AnswerDueNow(absl::Time now) const {
  for (const DelayedAnswer& answer : delayed_answers_) {
    if (answer.due <= now) return true;
  }
  return false;
}

void Shard::ReleaseDelayedAnswers(absl::Time now) {
  if (delayed_answers_.empty()) return;
  std::vector<DelayedAnswer> due;
  for (size_t i = 0; i < delayed_answers_.size();) {
    if (delayed_answers_[i].due <= now) {
      due.push_back(std::move(delayed_answers_[i]));
      delayed_answers_[i] = std::move(delayed_answers_.back());
      delayed_answers_.pop_back();
    } else {
      ++i;
    }
  }
  for (DelayedAnswer& answer : due) {
    auto it = checks_.find(answer.id);
    if (it == checks_.end()) continue;
    Connection* connection = it->second.connection;
    checks_.erase(it);
    connection->OnCheckAnswer(std::move(answer.answer));
  }
}

void Shard::MarkDirty(Connection* connection) {
  if (connection->dirty_) return;
  connection->dirty_ = true;
  dirty_.push_back(connection);
}

void Shard::FlushDirty(absl::Time now) {
  if (dirty_.empty()) return;
  // Flush may mark connections dirty again (for the next batch), so work on a swapped list. Both
  // vectors keep their capacity, so a batch allocates nothing.
  flushing_.swap(dirty_);
  for (Connection* connection : flushing_) {
    connection->dirty_ = false;
    connection->Flush(now);
    if (connection->Finished() && !connection->dirty_) {
      // Unlink in O(1): move the last connection into this slot.
      Connection* last = connections_.back();
      last->slot_ = connection->slot_;
      connections_[connection->slot_] = last;
      connections_.pop_back();
      ShardCounters::Sub(counters_.connections_open, 1);
      delete connection;
    }
  }
  flushing_.clear();
}

}  // namespace ringmx::net

// A shard: one thread, one io_uring ring, one SO_REUSEPORT socket per listener, and every
// connection it accepted (DESIGN.md section 1). Nothing here is shared with another shard; the
// only way in from outside is the Mailbox.
#pragma once

#include <stdint.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

#include "core/clock.h"
#include "core/queue_id.h"
#include "core/snapshot.h"
#include "net/delivery.h"
#include "net/generation.h"
#include "net/ktls.h"
#include "net/reactor.h"
#include "net/runtime.h"
#include "net/shard_stats.h"
#include "policy/auth_throttle.h"
#include "policy/connection_limits.h"
#include "policy/verify_cache.h"
#include "smtp/session.h"

namespace ringmx::net {

class BufferRing;
class CheckWorkers;
class Connection;
class QueueLog;
class Spool;

// One listening socket of this shard.
struct ShardListener {
  size_t index = 0;  // into Snapshot::config.listeners
  int fd = -1;       // owned by the shard from Run() on (or from its kSnapshot message on)
};

// A request from the control plane to one shard.
struct ShardMessage {
  // kTickForTest: the test clock moved (Server::AdvanceClockForTest); check every deadline now
  // against a fresh reading of the clock, then call `done` on the shard's thread.
  // kQueueTask: a `ringmx queue` command's part on this shard: `queue_task` runs on the shard's
  // thread with its queue log (nullptr in discard mode) and answers through what it captured.
  // kCheckAnswer: a check that ran off the shard (CheckWorkers) answers the connection that
  // asked for it (`check_id`, from Shard::StartCheck); dropped if that connection has gone.
  // kVerifyLearned: another shard's recipient probe learnt `verify_entry` for `verify_address`.
  enum class Kind { kSnapshot, kDrain, kTickForTest, kQueueTask, kCheckAnswer, kVerifyLearned };
  Kind kind = Kind::kSnapshot;
  Runtime runtime;  // kSnapshot only
  // kSnapshot only: every listener of the new config, by its index there, with this shard's
  // socket: one the shard already accepts on (same fd) or a new one it now owns. The shard's
  // sockets not in the list are closed at once (their sessions go on).
  std::vector<ShardListener> listeners;
  std::function<void()> done;                 // kTickForTest only
  std::function<void(QueueLog*)> queue_task;  // kQueueTask only
  uint64_t check_id = 0;                      // kCheckAnswer only
  smtp::CheckAnswer answer;                   // kCheckAnswer only
  std::string verify_address;                 // kVerifyLearned only
  policy::VerifyCache::Entry verify_entry;    // kVerifyLearned only

  static ShardMessage Drain() {
    ShardMessage message;
    message.kind = Kind::kDrain;
    return message;
  }
  static ShardMessage Snapshot(Runtime runtime, std::vector<ShardListener> listeners) {
    ShardMessage message;
    message.kind = Kind::kSnapshot;
    message.runtime = std::move(runtime);
    message.listeners = std::move(listeners);
    return message;
  }
};

// The control plane's way into a shard: a queue plus an eventfd the shard reads through its ring.
// Thread-safe (control plane only; never on the per-connection path).
class Mailbox {
 public:
  Mailbox();
  ~Mailbox();
  void Post(ShardMessage message);
  std::vector<ShardMessage> TakeAll();
  int eventfd() const { return eventfd_; }

 private:
  int eventfd_ = -1;
  std::mutex mu_;
  std::vector<ShardMessage> queue_ ABSL_GUARDED_BY(mu_);
};

// Per-shard counters. Written only by the shard's thread (relaxed load+store, no locked
// instruction), read by the control plane when someone asks for stats.
struct ShardCounters {
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  // Connections refused with 421 (or closed, on implicit TLS) for a `[limits]` limit.
  std::atomic<uint64_t> connections_refused{0};
  // Connections a `proxy_protocol` listener closed before their session: an untrusted peer, a
  // malformed or truncated PROXY header, or none within timeouts.proxy_s (not shutdown).
  std::atomic<uint64_t> proxy_refused{0};
  std::atomic<uint64_t> messages_accepted{0};
  std::atomic<uint64_t> messages_rejected{0};
  std::atomic<uint64_t> bytes_accepted{0};
  std::atomic<uint64_t> store_errors{0};
  // Client input that waited for its session (net/held_input.h): kept in its receive buffer, or
  // copied; and the receive buffers held out of the ring now (gauge, set by the connections).
  std::atomic<uint64_t> input_held_in_place_bytes{0};
  std::atomic<uint64_t> input_held_copied_bytes{0};
  std::atomic<uint64_t> recv_buffers_held{0};
  // The queue log's group commit (QueueLogCounters; zero in discard mode), copied after each
  // batch in which a group completed.
  std::atomic<uint64_t> queue_groups{0};
  std::atomic<uint64_t> queue_records{0};
  std::atomic<uint64_t> queue_bytes{0};
  std::atomic<uint64_t> queue_last_group_records{0};
  std::atomic<uint64_t> queue_messages{0};  // messages in the queue (the index), after replay too
  TrafficCells traffic;  // replies, inbound TLS, latency histograms (net/shard_stats.h)

  static void Add(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void Sub(std::atomic<uint64_t>& counter, uint64_t n) {
    counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
};

// Shard-local except for mailbox() and counters(), which the control plane uses. Created on the
// main thread; Run() executes on the shard's own thread and returns when the shard has drained.
class Shard {
 public:
  // `kernel_tls`: what the start-up probe found; TLS connections move their record layer to the
  // kernel when it has TLS ULP (and TLS 1.3 ones only when it can rekey), if tls.ktls allows.
  // `clock`: where every deadline of the shard reads the time; it must outlive the shard.
  // `cpu`: the CPU the shard's thread pins itself to, or -1 to leave it unpinned (pin_threads).
  // `shard_count`: how many shards the server runs; each enforces its share of `[limits]`.
  Shard(uint32_t index, Runtime runtime, std::vector<ShardListener> listeners,
        const KernelTlsSupport& kernel_tls, const core::Clock& clock, int cpu,
        uint32_t shard_count);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // The thread body: names the thread `ringmx-shard<index>` and pins it to its CPU (a failure
  // is logged and the shard runs unpinned), builds the ring, arms accepts, loops until drained.
  // `ready` is called once with the start-up result (the ring and buffers exist and accepts are
  // armed, or an error).
  void Run(const std::function<void(absl::Status)>& ready);

  Mailbox& mailbox() { return mailbox_; }
  // Where checks that must not run on the shard's thread go (password hashes). Set before Run();
  // it must outlive the shard's connections (the Server destroys it before the shards, after
  // their threads have ended). Without it such checks answer "temporary failure".
  void set_check_workers(CheckWorkers* workers) { check_workers_ = workers; }
  // The other shards, told of what this shard's recipient probes learn. Set before Run(); they
  // must outlive this shard's thread (the Server owns them all).
  void set_peers(std::vector<Shard*> peers) { peers_ = std::move(peers); }
  const ShardCounters& counters() const { return counters_; }
  const DeliveryCounters& delivery_counters() const { return delivery_counters_; }
  uint32_t index() const { return index_; }
  // The shard's queue (`ringmx queue ...` commands run here, on the shard's thread: post them as
  // a mailbox message); nullptr in discard mode or before Run() has built it. Shard-local.
  QueueLog* queue_log() { return queue_log_; }

 private:
  friend class Connection;
  class Acceptor;
  class MailboxReader;

  absl::Status Init();
  // Names the calling thread after the shard and pins it to `cpu_` (if not -1); logs the result.
  void NameAndPinThread();
  void OnAccept(const io_uring_cqe& cqe, Acceptor& acceptor);
  void ArmAccept(Acceptor& acceptor);
  void OnMailbox();
  void ArmMailbox();
  void Tick(absl::Time now);
  void BeginDrain(absl::Time now);
  void FlushDirty(absl::Time now);
  bool Finished() const;
  // Copies the queue log's counters into counters_ when a group has completed since last time.
  void PublishQueueCounters();

  // Used by Connection.
  // The time of the current completion batch: the clock is read at most once per batch (at the
  // first call after Run() starts a new one), so every handler of a batch sees the same instant.
  absl::Time BatchNow() {
    if (!batch_now_valid_) {
      batch_now_ = clock_.Now();
      batch_now_valid_ = true;
    }
    return batch_now_;
  }
  void MarkDirty(Connection* connection);
  // Runs a session's check for `connection` (DESIGN.md section 6b) and returns its id (never 0);
  // the answer comes back through Connection::OnCheckAnswer(), later (never from inside this
  // call). `snapshot` is the session's.
  uint64_t StartCheck(Connection* connection, smtp::CheckRequest request,
                      const core::Snapshot& snapshot);
  // The connection is going away: its check's answer is dropped (and the job, if not started).
  void CancelCheck(uint64_t id);
  // A check's answer, from the mailbox or the shard itself.
  void OnCheckAnswer(uint64_t id, smtp::CheckAnswer answer, absl::Time now);
  // Answers whose delay (AUTH failures from a throttled address) is over.
  void ReleaseDelayedAnswers(absl::Time now);
  // Whether an answer in delayed_answers_ is due at `now` (the next batch must not wait).
  bool AnswerDueNow(absl::Time now) const;
  Reactor& reactor() { return *reactor_; }
  BufferRing& buffers() { return *buffers_; }
  Spool& spool() { return *spool_; }
  core::QueueIdGenerator& ids() { return ids_; }
  ShardCounters& mutable_counters() { return counters_; }
  bool kernel_tls() const { return kernel_tls_; }
  bool kernel_tls_rekey() const { return kernel_tls_rekey_; }
  policy::ConnectionLimiter& limiter() { return limiter_; }
  uint32_t shard_count() const { return shard_count_; }

  const uint32_t index_;
  const core::Clock& clock_;
  const int cpu_;  // -1: not pinned
  const bool kernel_tls_;
  const bool kernel_tls_rekey_;
  const uint32_t shard_count_;
  // The current config generation (its Snapshot and TLS contexts).
  const Runtime& runtime() const { return generation_->runtime(); }
  // A kSnapshot message: makes `runtime` the current generation and the acceptors those of
  // `listeners` (kept, added, and removed ones retired).
  void ApplySnapshot(Runtime runtime, std::vector<ShardListener> listeners);
  // Retired acceptors whose accept is no longer in flight are deleted.
  void ReapRetiredAcceptors();

  // What new connections get (each takes a reference); replaced by a kSnapshot message, live
  // connections keep theirs until they end (net/generation.h).
  GenerationRef generation_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  // Acceptors of listeners a reload removed: closed, waiting for their cancelled accept's last
  // completion before they can be deleted.
  std::vector<std::unique_ptr<Acceptor>> retired_acceptors_;
  Mailbox mailbox_;
  std::unique_ptr<MailboxReader> mailbox_reader_;
  std::unique_ptr<Reactor> reactor_;
  std::unique_ptr<BufferRing> buffers_;
  std::unique_ptr<Spool> spool_;
  QueueLog* queue_log_ = nullptr;  // spool_ when it is the queue log (durable mode)
  // Delivers what queue_log_ holds (durable mode only); destroyed before the log.
  DeliveryCounters delivery_counters_;
  std::unique_ptr<Deliverer> deliverer_;
  uint64_t published_queue_groups_ = 0;
  core::QueueIdGenerator ids_;
  ShardCounters counters_;
  // This shard's sessions and recent connections per client address (`[limits]`); Connection
  // admits and releases itself here. Outlives every connection (they are deleted first).
  policy::ConnectionLimiter limiter_;

  // Checks that are out: id -> who asked and what (checks_ holds only live connections).
  struct PendingCheck {
    Connection* connection = nullptr;
    uint64_t ticket = 0;  // CheckWorkers ticket, 0 if the check runs elsewhere
    core::IpAddress client;
    smtp::CheckRequest::Kind kind = smtp::CheckRequest::Kind::kCredentials;
    // The throttle holds the answer until then (InfinitePast(): answer when it comes).
    absl::Time release_at = absl::InfinitePast();
  };
  absl::flat_hash_map<uint64_t, PendingCheck> checks_;
  uint64_t next_check_id_ = 0;
  CheckWorkers* check_workers_ = nullptr;
  std::vector<Shard*> peers_;
  // AUTH failures per client address (this shard's share; DESIGN.md section 1: nothing shared).
  policy::AuthThrottle auth_throttle_;
  // Failure answers held back by the throttle: delivered at `due` (the shard's tick).
  struct DelayedAnswer {
    absl::Time due;
    uint64_t id = 0;
    smtp::CheckAnswer answer;
  };
  std::vector<DelayedAnswer> delayed_answers_;

  // Every live connection, for ticks and drain. Owned here; removed when finished.
  std::vector<Connection*> connections_;
  // Connections with output or state changes to act on at the end of this completion batch
  // (one write per batch, RFC 2920). Each appears at most once (Connection::dirty_).
  std::vector<Connection*> dirty_;
  std::vector<Connection*> flushing_;  // the batch FlushDirty() is working on; empty otherwise
  // BatchNow()'s reading; valid while `batch_now_valid_`, which Run() clears before each batch.
  absl::Time batch_now_ = absl::InfinitePast();
  bool batch_now_valid_ = false;
  absl::Time next_tick_ = absl::InfinitePast();
  bool draining_ = false;
  absl::Time drain_deadline_ = absl::InfiniteFuture();
  bool forced_ = false;
};

}  // namespace ringmx::net

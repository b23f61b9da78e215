// The delivery driver (DESIGN.md section 6a, docs/delivery.md): each shard delivers what its own
// queue holds, on its own ring, with no lock. It finds due recipients in the queue index, routes
// them by domain ([[route]]), reads each message back from the queue log, hands one transaction
// per message and hop to a cached outbound connection (net/outbound.h), records every
// recipient's result in the queue (delivered, deferred with the next attempt, failed), marks
// hops that fail as down for a while, and queues RFC 3464 DSNs for [delivery] bounce_next_hop.
//
// At least once: a result is recorded after the hop answered; a crash in between sends the
// message again after the restart (the hop may get it twice), never loses it. A message leaves
// the queue only when every recipient is final.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

#include "core/clock.h"
#include "core/queue/index.h"
#include "core/queue_id.h"
#include "net/outbound.h"
#include "net/queue_compact.h"
#include "net/queue_log.h"
#include "net/reactor.h"
#include "net/runtime.h"
#include "policy/retry.h"
#include "policy/verify_cache.h"
#include "smtp/dsn.h"
#include "smtp/session.h"
#include "tls/client_context.h"

namespace ringmx::net {

// Running totals for `stats` and metrics. Written by the shard's thread only, read by the
// control plane (relaxed atomics, like ShardCounters).
struct DeliveryCounters {
  std::atomic<uint64_t> attempts{0};     // transactions tried (one per message and hop)
  std::atomic<uint64_t> sent{0};         // recipients delivered (the hop said 2yz)
  std::atomic<uint64_t> deferred{0};     // recipients deferred (4yz, timeout, refused connection)
  std::atomic<uint64_t> bounced{0};      // recipients failed (5yz, expired, unroutable)
  std::atomic<uint64_t> dsns{0};         // DSNs queued
  std::atomic<uint64_t> connections{0};  // outbound connections opened
  std::atomic<uint64_t> connections_open{0};
};

// Shard-local. Created by the shard when it has a queue log; destroyed only once Finished().
class Deliverer final : public QueueObserver, public OutboundOwner {
 public:
  // `queue`, `reactor`, `clock`, `ids` and `counters` must outlive the deliverer.
  Deliverer(uint32_t shard, Reactor& reactor, QueueLog& queue, const core::Clock& clock,
            core::QueueIdGenerator& ids, DeliveryCounters& counters, Runtime runtime);
  ~Deliverer();
  Deliverer(const Deliverer&) = delete;
  Deliverer& operator=(const Deliverer&) = delete;

  // The shard's newest runtime (a reload): new transactions route with it.
  void SetRuntime(Runtime runtime);
  // After each completion batch: starts what is due (reads messages, dispatches them).
  void AfterBatch(absl::Time now);
  // The shard's tick: timeouts, idle connections, deferred recipients coming due.
  void Tick(absl::Time now);
  // SIGTERM: nothing new starts; idle connections quit; transactions under way may finish.
  void BeginDrain(absl::Time now);
  // Shutdown grace over: every connection is closed now (what was not recorded is sent again
  // after the restart).
  void Abort();
  // Nothing is in flight: no connection, no read, no state record waiting.
  bool Finished() const;

  // Recipient verification at RCPT (issue 12 item 5): the answer for `address` from the cache,
  // else from the first hop of its route that is not down (MAIL FROM:<>, RCPT TO, RSET on a
  // connection kept for probes). Accept when the route does not verify. `done` is called once:
  // from inside Verify() when the answer is known at once, else later from a completion or a
  // tick. Probes of one address in flight are shared.
  using VerifyDone = std::function<void(smtp::CheckAnswer)>;
  void Verify(std::string address, VerifyDone done);
  const policy::VerifyCache& verify_cache() const { return verify_cache_; }
  // Told of every answer a probe of this shard learnt, so that the shard can tell the others:
  // a client's next session may land on any shard, and a known recipient must stay known there
  // while the hop is down.
  using Learned =
      std::function<void(const std::string& address, const policy::VerifyCache::Entry&)>;
  void set_on_learned(Learned on_learned) { on_learned_ = std::move(on_learned); }
  // An answer another shard learnt.
  void Learn(const std::string& address, policy::VerifyCache::Entry entry);

  // QueueObserver.
  void OnMessageReady(std::string_view id) override;
  void OnFlush() override;
  // OutboundOwner.
  void OnResults(OutboundConnection& connection, std::vector<smtp::RecipientResult>& results,
                 bool done) override;
  void OnFinished(OutboundConnection& connection) override;

 private:
  struct Message;
  struct Job;
  struct Pool;

  // Due work: (time in unix us, message id); duplicates are harmless (checked when popped).
  using Due = std::pair<int64_t, std::string>;

  void Schedule(int64_t at_us, std::string id);
  // Pops what is due and queues the messages to read.
  void CollectDue(absl::Time now);
  // When a hop of one of `m`'s open recipients is up again (unix us): 0 if one is up now.
  int64_t BackUpAt(const core::queue::QueuedMessage& m, absl::Time now) const;
  void StartReads();
  void OnRead(std::vector<RelocationRead> reads);
  // Routes the due recipients of `message` and queues one job per route (or defers them).
  void Dispatch(Message& message, absl::Time now);
  void StartJob(Message& message, size_t route, size_t hop_index, std::vector<uint32_t> rcpts);
  // The pool of connections for `hop` of route number `route` of `snapshot` (kBounceRoute:
  // the bounce hop), made on first use with the route's TLS settings.
  Pool& PoolFor(const core::Snapshot& snapshot,
                const std::shared_ptr<const tls::ClientTlsContext>& client_tls,
                const core::NextHop& hop, size_t route, bool probe);
  // Gives waiting jobs to free connections of `pool`, opening new ones up to its limit.
  void Pump(Pool& pool, absl::Time now);
  // Records one recipient's result (or keeps a failure for the DSN) and logs it.
  // `connection`: the one that carried the attempt (nullptr for our own refusal).
  void Record(Message& message, Job& job, const OutboundConnection* connection, uint32_t rcpt,
              const smtp::RecipientResult& result, absl::Time now);
  void JobDone(Job& job, OutboundConnection& connection, absl::Time now);
  // Every job of `message` is done: queues its DSN and the failed states, then forgets it once
  // its records are applied.
  void MaybeFinishMessage(Message& message, absl::Time now);
  // Queues the DSN of `kind` for the message's failures or successes (the recipients whose
  // NOTIFY asks for it), from <> to the sender, delivered through bounce_next_hop.
  void QueueDsn(Message& message, smtp::DsnKind kind, absl::Time now);
  void WriteState(Message& message, uint32_t rcpt, core::queue::RecipientStatus status);
  void Forget(Message& message);
  void CloseIdle(absl::Time now);
  void StartProbe(const std::string& key, std::string address,
                  std::shared_ptr<const core::Snapshot> snapshot,
                  std::shared_ptr<const tls::ClientTlsContext> client_tls,
                  const core::RouteConfig& route, size_t hop_index);
  void OnProbeResult(Job& job, OutboundConnection& connection, const smtp::RecipientResult& result,
                     absl::Time now);
  // Answers every caller waiting for `key` and forgets the probe.
  void AnswerProbe(const std::string& key, const smtp::CheckAnswer& answer);
  static smtp::CheckAnswer Unreachable(const core::RouteConfig& route, std::string_view address,
                                       std::string_view why);

  const uint32_t shard_;
  Reactor& reactor_;
  QueueLog& queue_;
  const core::Clock& clock_;
  core::QueueIdGenerator& ids_;
  DeliveryCounters& counters_;
  Runtime runtime_;
  policy::HopDownTracker down_;
  QueueCompactor reader_;
  bool draining_ = false;
  bool rescan_ = false;  // look at every message of the index again (start, flush, reload)

  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due_;
  std::vector<std::string> to_read_;  // due messages waiting for a read batch
  // Messages read or being read, by id: a message is here from its read until its records are
  // applied, so it is never started twice.
  absl::flat_hash_map<std::string, std::unique_ptr<Message>> active_;
  // Pools of connections by hop (NextHop::ToString()).
  absl::flat_hash_map<std::string, std::unique_ptr<Pool>> pools_;
  // The job each busy connection carries.
  absl::flat_hash_map<OutboundConnection*, Job*> running_;
  // Finished connections, deleted after the batch (never from their own callback).
  std::vector<std::unique_ptr<OutboundConnection>> graveyard_;
  size_t open_connections_ = 0;

  // Recipient verification: the cache, callers waiting per probed address (lower-cased), and
  // the probe jobs in flight.
  policy::VerifyCache verify_cache_;
  absl::flat_hash_map<std::string, std::vector<VerifyDone>> probing_;
  std::vector<std::unique_ptr<Job>> probes_;
  Learned on_learned_;
};

}  // namespace ringmx::net

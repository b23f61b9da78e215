#include "net/delivery.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/json.h"
#include "core/log.h"
#include "core/queue/log_format.h"
#include "core/spool_record.h"
#include "core/strings.h"
#include "smtp/dsn.h"
#include "smtp/envelope.h"

namespace ringmx::net {
namespace {

namespace q = core::queue;

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
// The route index of a DSN's job: [delivery] bounce_next_hop.
constexpr size_t kBounceRoute = std::numeric_limits<size_t>::max();
// Bounds on work in memory: messages read and not finished, and messages per read batch.
constexpr size_t kMaxActive = 512;
constexpr size_t kMaxReadBatch = 64;
// A read that failed is tried again this much later.
constexpr absl::Duration kReadRetry = absl::Seconds(60);
// An idle cached connection is closed after this long (Postfix: smtp_connection_cache_time_limit).
constexpr absl::Duration kIdleLimit = absl::Seconds(5);
// A connection takes no new message after this long (Postfix: smtp_connection_reuse_time_limit).
constexpr absl::Duration kReuseLimit = absl::Seconds(300);

int64_t ToUs(absl::Time t) { return absl::ToUnixMicros(t); }

// DeliveryCounters are written by this shard only: a relaxed load and store, no atomic RMW.
void Add(std::atomic<uint64_t>& counter, uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
void Sub(std::atomic<uint64_t>& counter, uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
}

std::string_view DomainOf(std::string_view address) {
  const size_t at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

smtp::ClientTls ClientTlsFor(core::RouteTls tls) {
  switch (tls) {
    case core::RouteTls::kNone:
      return smtp::ClientTls::kNone;
    case core::RouteTls::kOpportunistic:
      return smtp::ClientTls::kOpportunistic;
    case core::RouteTls::kVerify:
      return smtp::ClientTls::kRequired;
  }
  return smtp::ClientTls::kNone;
}

// Frees itself once the DSN is stored (or refused: then the failures it reports stay as they
// were, and the next attempt reports them again).
class DsnWaiter final : public SpoolWaiter {
 public:
  DsnWaiter(std::string name, std::string id, std::string original)
      : name_(std::move(name)), id_(std::move(id)), original_(std::move(original)) {}
  void OnStored(const absl::Status& result) override {
    if (!result.ok()) {
      core::LogError(absl::StrCat("delivery ", name_, " dsn id=", id_, " for=", original_,
                                  " not stored: ", result.message()));
    }
    delete this;
  }

 private:
  std::string name_;
  std::string id_;
  std::string original_;
};

}  // namespace

struct Deliverer::Job {
  Message* message = nullptr;
  size_t route = 0;  // into the snapshot's routes, or kBounceRoute
  size_t hop_index = 0;
  std::vector<uint32_t> rcpts;  // recipient numbers of the message, in OutboundMessage order
  smtp::OutboundMessage out;
  Pool* pool = nullptr;
  // The hop deferred a recipient (4xx): its connection is not reused, so that the next attempt
  // meets a fresh session (a hop's tables, greylisting and limits are per session).
  bool hop_deferred = false;
  // Recipients whose connection failed before the hop greeted: tried on the next hop.
  std::vector<std::pair<uint32_t, smtp::RecipientResult>> failover;
  // A recipient probe (message == nullptr): the route it verifies (in `snapshot`) and the key
  // its callers wait under.
  std::shared_ptr<const core::Snapshot> snapshot;
  std::shared_ptr<const tls::ClientTlsContext> client_tls;
  const core::RouteConfig* route_config = nullptr;
  std::string probe_key;
};

struct Deliverer::Message {
  std::string id;
  std::shared_ptr<const core::Snapshot> snapshot;           // the routes this attempt uses
  std::shared_ptr<const tls::ClientTlsContext> client_tls;  // built with `snapshot`
  int64_t received_us = 0;
  std::string sender;
  bool bounce = false;
  std::vector<std::string> recipients;
  std::vector<q::RecipientStatus> states;
  std::string record;  // the kMessage record (trace headers and envelope point into it)
  std::string body;
  std::string_view trace_headers;
  std::string_view envelope_json;
  bool body_8bit = false;
  bool smtputf8 = false;
  // RFC 3461 parameters from the stored envelope (defaults when it has none).
  smtp::DsnRet ret = smtp::DsnRet::kUnspecified;
  std::string envid;
  std::vector<smtp::DsnRcptParams> rcpt_dsn;  // one per recipient
  std::vector<std::unique_ptr<Job>> jobs;
  size_t jobs_open = 0;
  size_t writes = 0;           // state records not yet durable
  bool finishing = false;      // every job is done; the last state records are being written
  bool writes_closed = false;  // ... and all of them are queued: the last one's answer forgets it
  struct Failure {
    uint32_t rcpt = 0;
    smtp::RecipientResult result;
    std::string hop;  // "" when no hop was reached
    bool expired = false;
  };
  std::vector<Failure> failures;
  // Delivered recipients that asked for NOTIFY=SUCCESS from a hop that cannot pass it on (LMTP,
  // an SMTP hop without DSN): `expired` unused; `hop` set.
  struct Success {
    uint32_t rcpt = 0;
    smtp::RecipientResult result;
    std::string hop;
    bool final_hop = false;  // LMTP: "delivered"; SMTP without DSN: "relayed"
  };
  std::vector<Success> successes;
  int64_t next_due_us = kNever;
};

struct Deliverer::Pool {
  core::NextHop hop;
  std::string name;  // hop.ToString()
  int max_connections = 20;
  OutboundOptions options;
  std::vector<std::unique_ptr<OutboundConnection>> connections;
  std::deque<Job*> waiting;
};

Deliverer::Deliverer(uint32_t shard, Reactor& reactor, QueueLog& queue, const core::Clock& clock,
                     core::QueueIdGenerator& ids, DeliveryCounters& counters, Runtime runtime)
    : shard_(shard),
      reactor_(reactor),
      queue_(queue),
      clock_(clock),
      ids_(ids),
      counters_(counters),
      runtime_(std::move(runtime)),
      reader_(reactor, queue.dir_fd(), queue.directory(), absl::StrCat("shard=", shard)),
      rescan_(true) {
  queue_.set_observer(this);
}

Deliverer::~Deliverer() { queue_.set_observer(nullptr); }

void Deliverer::SetRuntime(Runtime runtime) {
  runtime_ = std::move(runtime);
  rescan_ = true;  // routes may have appeared
}

void Deliverer::OnMessageReady(std::string_view id) { Schedule(0, std::string(id)); }

void Deliverer::OnFlush() {
  down_.Clear();
  rescan_ = true;
}

void Deliverer::Schedule(int64_t at_us, std::string id) { due_.emplace(at_us, std::move(id)); }

bool Deliverer::Finished() const {
  return running_.empty() && !reader_.busy() && reader_.ops_in_flight() == 0 &&
         open_connections_ == 0 && std::all_of(active_.begin(), active_.end(), [](const auto& a) {
           return a.second->writes == 0;
         });
}

void Deliverer::AfterBatch(absl::Time now) {
  graveyard_.clear();
  if (draining_ || runtime_.snapshot->routes.empty()) return;
  if (rescan_) {
    rescan_ = false;
    for (const q::QueuedMessage* m : queue_.index().List()) Schedule(0, m->id);
  }
  CollectDue(now);
  StartReads();
  for (auto& [name, pool] : pools_) {
    if (!pool->waiting.empty()) Pump(*pool, now);
  }
}

void Deliverer::CollectDue(absl::Time now) {
  const int64_t now_us = ToUs(now);
  while (!due_.empty() && due_.top().first <= now_us && active_.size() < kMaxActive) {
    std::string id = due_.top().second;
    due_.pop();
    if (active_.contains(id)) continue;  // its end schedules what is left
    const q::QueuedMessage* m = queue_.index().Find(id);
    if (m == nullptr || m->held) continue;
    bool due = false;
    int64_t next = kNever;
    for (const q::QueuedRecipient& r : m->recipients) {
      if (r.status.state == q::RecipientState::kPending) {
        due = true;
      } else if (r.status.state == q::RecipientState::kDeferred) {
        if (r.status.next_attempt_us <= now_us) {
          due = true;
        } else {
          next = std::min(next, r.status.next_attempt_us);
        }
      }
    }
    if (!due) {
      if (next != kNever) Schedule(next, id);
      continue;
    }
    // A message whose every hop is down is not even read: it waits for the first to come back.
    if (int64_t back = BackUpAt(*m, now); back > now_us) {
      Schedule(back, id);
      continue;
    }
    auto message = std::make_unique<Message>();
    message->id = id;
    message->received_us = m->received_us;
    message->sender = m->sender;
    message->bounce = m->bounce;
    for (const q::QueuedRecipient& r : m->recipients) {
      message->recipients.push_back(r.address);
      message->states.push_back(r.status);
    }
    active_.emplace(id, std::move(message));
    to_read_.push_back(std::move(id));
  }
}

int64_t Deliverer::BackUpAt(const q::QueuedMessage& m, absl::Time now) const {
  const core::Snapshot& snapshot = *runtime_.snapshot;
  int64_t earliest = kNever;
  auto hop_up_at = [&](const core::NextHop& hop) -> int64_t {
    std::optional<absl::Time> until = down_.DownUntil(hop.ToString(), now);
    return until ? ToUs(*until) : 0;
  };
  for (const q::QueuedRecipient& r : m.recipients) {
    if (q::IsFinal(r.status.state)) continue;
    if (m.bounce) {
      if (!snapshot.config.delivery.bounce_next_hop) return 0;
      earliest = std::min(earliest, hop_up_at(*snapshot.config.delivery.bounce_next_hop));
    } else {
      const core::RouteConfig* route = snapshot.routes.Lookup(DomainOf(r.address));
      if (route == nullptr) return 0;  // fails at once: read it
      for (const core::NextHop& hop : route->next_hop) {
        earliest = std::min(earliest, hop_up_at(hop));
      }
    }
    if (earliest == 0) return 0;
  }
  return earliest == kNever ? 0 : earliest;
}

void Deliverer::StartReads() {
  if (reader_.busy() || to_read_.empty()) return;
  std::vector<const q::QueuedMessage*> batch;
  size_t taken = 0;
  for (; taken < to_read_.size() && batch.size() < kMaxReadBatch; ++taken) {
    const q::QueuedMessage* m = queue_.index().Find(to_read_[taken]);
    if (m == nullptr) {
      // Gone since (deleted): forget it.
      active_.erase(to_read_[taken]);
      continue;
    }
    batch.push_back(m);
  }
  to_read_.erase(to_read_.begin(), to_read_.begin() + static_cast<ptrdiff_t>(taken));
  if (batch.empty()) return;
  std::vector<std::string> batch_ids;
  for (const q::QueuedMessage* m : batch) batch_ids.push_back(m->id);
  reader_.Start(batch, [this, batch_ids = std::move(batch_ids)](std::vector<RelocationRead> reads,
                                                                bool /*failed: logged*/) {
    absl::flat_hash_set<std::string> read_ids;
    for (const RelocationRead& r : reads) read_ids.insert(r.id);
    const absl::Time now = clock_.Now();
    for (const std::string& id : batch_ids) {
      if (read_ids.contains(id)) continue;
      // Not read (logged by the reader): try again later.
      active_.erase(id);
      Schedule(ToUs(now + kReadRetry), id);
    }
    OnRead(std::move(reads));
  });
}

void Deliverer::OnRead(std::vector<RelocationRead> reads) {
  const absl::Time now = clock_.Now();
  for (RelocationRead& read : reads) {
    auto it = active_.find(read.id);
    if (it == active_.end()) continue;
    Message& message = *it->second;
    message.record = std::move(read.record_bytes);
    message.body = std::move(read.body);
    absl::StatusOr<q::MessageView> view =
        q::ParseMessage(std::string_view(message.record).substr(q::kRecordHeaderSize));
    if (!view.ok()) {
      core::LogError(absl::StrCat("delivery shard=", shard_, " id=", message.id,
                                  " unreadable record: ", view.status().message()));
      const std::string id = message.id;
      active_.erase(it);
      Schedule(ToUs(now + kReadRetry), id);
      continue;
    }
    message.trace_headers = view->header.trace_headers;
    message.envelope_json = view->header.envelope_json;
    if (absl::StatusOr<smtp::StoredEnvelope> envelope =
            smtp::ParseStoredEnvelope(message.envelope_json);
        envelope.ok()) {
      message.body_8bit = envelope->body_8bitmime;
      message.smtputf8 = envelope->smtputf8;
      message.ret = envelope->ret;
      message.envid = std::move(envelope->envid);
      message.rcpt_dsn = std::move(envelope->rcpt_dsn);
    } else {
      // Delivered as 7-bit ASCII with no DSN parameters; the hop judges the bytes.
      core::LogWarning(absl::StrCat("delivery shard=", shard_, " id=", message.id,
                                    " envelope unreadable, delivering without its parameters: ",
                                    envelope.status().message()));
    }
    message.rcpt_dsn.resize(message.recipients.size());
    if (draining_) {
      active_.erase(it);  // tried again after the restart
      continue;
    }
    Dispatch(message, now);
  }
}

void Deliverer::Dispatch(Message& message, absl::Time now) {
  message.snapshot = runtime_.snapshot;
  message.client_tls = runtime_.client_tls;
  const core::RouteTable& routes = message.snapshot->routes;
  const int64_t now_us = ToUs(now);
  // Due recipients grouped by route, in recipient order.
  std::vector<std::pair<size_t, std::vector<uint32_t>>> groups;
  auto group_for = [&groups](size_t route) -> std::vector<uint32_t>& {
    for (auto& g : groups) {
      if (g.first == route) return g.second;
    }
    groups.emplace_back(route, std::vector<uint32_t>());
    return groups.back().second;
  };
  for (uint32_t i = 0; i < message.recipients.size(); ++i) {
    const q::RecipientStatus& s = message.states[i];
    if (q::IsFinal(s.state)) continue;
    if (s.state == q::RecipientState::kDeferred && s.next_attempt_us > now_us) {
      message.next_due_us = std::min(message.next_due_us, s.next_attempt_us);
      continue;
    }
    if (message.bounce) {
      group_for(kBounceRoute).push_back(i);
      continue;
    }
    const core::RouteConfig* route = routes.Lookup(DomainOf(message.recipients[i]));
    if (route == nullptr) {
      // Accepted before the routes changed (a reload): nothing can deliver it.
      smtp::RecipientResult result;
      result.status = smtp::RecipientResult::Status::kBounced;
      result.local = true;
      result.reply.code = 550;
      result.reply.enhanced = "5.4.4";
      result.reply.lines = {
          absl::StrCat("5.4.4 no [[route]] for the domain of <", message.recipients[i], ">")};
      Job none;
      none.message = &message;
      Record(message, none, nullptr, i, result, now);
      continue;
    }
    group_for(static_cast<size_t>(route - routes.routes().data())).push_back(i);
  }
  for (auto& [route, rcpts] : groups) {
    const std::vector<core::NextHop>* hops = nullptr;
    std::vector<core::NextHop> bounce_hops;
    if (route == kBounceRoute) {
      if (message.snapshot->config.delivery.bounce_next_hop) {
        bounce_hops.push_back(*message.snapshot->config.delivery.bounce_next_hop);
      }
      hops = &bounce_hops;
    } else {
      hops = &routes.routes()[route].next_hop;
    }
    size_t hop_index = hops->size();
    std::optional<absl::Time> back_up;
    for (size_t h = 0; h < hops->size(); ++h) {
      const std::string name = (*hops)[h].ToString();
      if (!down_.IsDown(name, now)) {
        hop_index = h;
        break;
      }
      std::optional<absl::Time> until = down_.DownUntil(name, now);
      if (until && (!back_up || *until < *back_up)) back_up = until;
    }
    if (hop_index == hops->size()) {
      // Every hop of the route is down: the recipients wait, no attempt is counted.
      const int64_t at = back_up ? ToUs(*back_up) : ToUs(now + absl::Seconds(60));
      message.next_due_us = std::min(message.next_due_us, at);
      continue;
    }
    StartJob(message, route, hop_index, std::move(rcpts));
  }
  MaybeFinishMessage(message, now);
}

void Deliverer::StartJob(Message& message, size_t route, size_t hop_index,
                         std::vector<uint32_t> rcpts) {
  const core::RouteConfig* config =
      route == kBounceRoute ? nullptr : &message.snapshot->routes.routes()[route];
  const core::NextHop& hop = config == nullptr ? *message.snapshot->config.delivery.bounce_next_hop
                                               : config->next_hop[hop_index];
  auto job = std::make_unique<Job>();
  job->message = &message;
  job->route = route;
  job->hop_index = hop_index;
  job->out.sender = message.sender;
  for (uint32_t r : rcpts) {
    job->out.recipients.push_back(message.recipients[r]);
    job->out.rcpt_dsn.push_back(message.rcpt_dsn[r]);
  }
  job->out.ret = message.ret;
  job->out.envid = message.envid;
  job->rcpts = std::move(rcpts);
  job->out.body_8bit = message.body_8bit;
  job->out.smtputf8 = message.smtputf8;
  job->out.body = {message.trace_headers, message.body};
  Pool& pool = PoolFor(*message.snapshot, message.client_tls, hop, route, /*probe=*/false);
  job->pool = &pool;
  pool.waiting.push_back(job.get());
  message.jobs.push_back(std::move(job));
  ++message.jobs_open;
}

Deliverer::Pool& Deliverer::PoolFor(const core::Snapshot& snapshot,
                                    const std::shared_ptr<const tls::ClientTlsContext>& client_tls,
                                    const core::NextHop& hop, size_t route, bool probe) {
  const core::RouteConfig* config =
      route == kBounceRoute ? nullptr : &snapshot.routes.routes()[route];
  const core::RouteTls tls = config != nullptr ? config->tls
                             : hop.protocol == core::HopProtocol::kLmtp
                                 ? core::RouteTls::kNone
                                 : core::RouteTls::kOpportunistic;
  // One pool per config generation, route and hop: a reload (new CA, new name, new limits) gets
  // new pools, and the old ones close once idle.
  std::string key =
      absl::StrCat(snapshot.generation, "#", route == kBounceRoute ? "bounce" : absl::StrCat(route),
                   "#", hop.ToString(), probe ? "#verify" : "");
  auto& slot = pools_[key];
  if (slot == nullptr) {
    slot = std::make_unique<Pool>();
    slot->hop = hop;
    slot->name = hop.ToString();
    slot->max_connections = config == nullptr ? 20 : config->max_connections;
    OutboundOptions& o = slot->options;
    o.hop = hop;
    o.client.protocol = hop.protocol == core::HopProtocol::kLmtp ? smtp::ClientProtocol::kLmtp
                                                                 : smtp::ClientProtocol::kSmtp;
    o.client.helo_name = snapshot.config.hostname;
    SSL_CTX* ctx = nullptr;
    std::string server_name;
    if (client_tls != nullptr && hop.protocol == core::HopProtocol::kSmtp) {
      ctx = route == kBounceRoute ? client_tls->ForBounce() : client_tls->ForRoute(route);
      if (route != kBounceRoute) server_name = std::string(client_tls->ServerNameForRoute(route));
    }
    o.client.tls = ctx == nullptr ? smtp::ClientTls::kNone : ClientTlsFor(tls);
    if (ctx != nullptr) {
      o.make_tls = [client_tls, ctx, server_name, endpoint = hop.inet]() {
        return tls::Engine::ForClient(client_tls, ctx, server_name, endpoint);
      };
    }
    const core::DeliveryConfig& d = snapshot.config.delivery;
    o.connect_timeout = d.connect_timeout;
    o.command_timeout = d.command_timeout;
    o.data_timeout = d.data_timeout;
  }
  return *slot;
}

void Deliverer::Pump(Pool& pool, absl::Time now) {
  while (!pool.waiting.empty() && !draining_) {
    OutboundConnection* free = nullptr;
    for (auto& c : pool.connections) {
      if (c->closed() || !c->can_send() || running_.contains(c.get())) continue;
      if (now - c->started_at() >= kReuseLimit) {
        c->Quit(now);  // old enough: the next message gets a new connection
        continue;
      }
      free = c.get();
      break;
    }
    if (free == nullptr) {
      if (pool.connections.size() >= static_cast<size_t>(pool.max_connections)) break;
      auto connection = std::make_unique<OutboundConnection>(reactor_, *this, pool.options);
      free = connection.get();
      pool.connections.push_back(std::move(connection));
      ++open_connections_;
      Add(counters_.connections, 1);
      Add(counters_.connections_open, 1);
      free->Start(now);
      if (free->closed()) {
        // Could not even make a socket: the job's recipients are deferred like a refused
        // connection's.
        Job* job = pool.waiting.front();
        pool.waiting.pop_front();
        running_[free] = job;
        std::vector<smtp::RecipientResult> results;
        for (size_t i = 0; i < job->rcpts.size(); ++i) {
          smtp::RecipientResult r;
          r.index = i;
          r.status = smtp::RecipientResult::Status::kDeferred;
          r.local = true;
          r.reply.code = 451;
          r.reply.enhanced = "4.4.0";
          r.reply.lines = {absl::StrCat("4.4.0 ", free->error())};
          results.push_back(std::move(r));
        }
        OnResults(*free, results, true);
        continue;
      }
    }
    Job* job = pool.waiting.front();
    pool.waiting.pop_front();
    running_[free] = job;
    Add(counters_.attempts, 1);
    free->Send(job->out, now);
  }
}

void Deliverer::OnResults(OutboundConnection& connection,
                          std::vector<smtp::RecipientResult>& results, bool done) {
  auto it = running_.find(&connection);
  if (it == running_.end()) return;
  Job& job = *it->second;
  const absl::Time now = clock_.Now();
  if (job.message == nullptr) {
    for (const smtp::RecipientResult& result : results) {
      OnProbeResult(job, connection, result, now);
    }
    if (done) {
      running_.erase(it);
      auto owned = std::find_if(probes_.begin(), probes_.end(),
                                [&job](const auto& p) { return p.get() == &job; });
      if (owned != probes_.end()) probes_.erase(owned);
    }
    return;
  }
  Message& message = *job.message;
  const size_t hops =
      job.route == kBounceRoute ? 1 : message.snapshot->routes.routes()[job.route].next_hop.size();
  for (smtp::RecipientResult& result : results) {
    const uint32_t rcpt = job.rcpts[result.index];
    if (result.status == smtp::RecipientResult::Status::kDeferred && !result.local) {
      job.hop_deferred = true;
    }
    if (result.reply.code == 421) {
      down_.MarkDown(connection.hop_name(), now, now + message.snapshot->config.delivery.hop_down);
    }
    // A hop that never got as far as a transaction (refused or timed out, closed, a 421 or
    // other refusal at the greeting, TLS that failed) did not judge these recipients: the
    // route's next hop gets them at once.
    if (result.status == smtp::RecipientResult::Status::kDeferred && !connection.was_ready() &&
        job.hop_index + 1 < hops) {
      job.failover.emplace_back(rcpt, std::move(result));
      continue;
    }
    Record(message, job, &connection, rcpt, result, now);
  }
  if (!done) return;
  running_.erase(it);
  JobDone(job, connection, now);
}

void Deliverer::JobDone(Job& job, OutboundConnection& connection, absl::Time now) {
  Message& message = *job.message;
  const absl::Duration hop_down = message.snapshot->config.delivery.hop_down;
  if (!connection.was_ready() && !connection.error().empty()) {
    // Refused, timed out or broken before the greeting: leave the hop alone for a while.
    down_.MarkDown(connection.hop_name(), now, now + hop_down);
    core::LogWarning(absl::StrCat("delivery shard=", shard_, " hop=", connection.hop_name(),
                                  " down for ", absl::FormatDuration(hop_down), ": ",
                                  connection.error()));
  }
  if (!job.failover.empty()) {
    const auto& hops = message.snapshot->routes.routes()[job.route].next_hop;
    size_t next = hops.size();
    for (size_t h = job.hop_index + 1; h < hops.size(); ++h) {
      if (!down_.IsDown(hops[h].ToString(), now)) {
        next = h;
        break;
      }
    }
    if (next < hops.size()) {
      std::vector<uint32_t> rcpts;
      for (auto& [rcpt, result] : job.failover) rcpts.push_back(rcpt);
      StartJob(message, job.route, next, std::move(rcpts));
    } else {
      for (auto& [rcpt, result] : job.failover) {
        Record(message, job, &connection, rcpt, result, now);
      }
    }
    job.failover.clear();
  }
  if (job.hop_deferred && !connection.closed()) connection.Quit(now);
  --message.jobs_open;
  MaybeFinishMessage(message, now);
}

void Deliverer::Record(Message& message, Job& job, const OutboundConnection* connection,
                       uint32_t rcpt, const smtp::RecipientResult& result, absl::Time now) {
  const q::RecipientStatus& before = message.states[rcpt];
  const uint32_t attempts = before.attempts + 1;
  const std::string hop = job.pool == nullptr ? std::string("none") : std::string(job.pool->name);
  const absl::Time arrival = absl::FromUnixMicros(message.received_us);
  const core::DeliveryConfig& d = message.snapshot->config.delivery;
  std::string status_name;
  q::RecipientStatus status;
  status.attempts = attempts;
  status.at_us = ToUs(now);
  status.reply = result.reply.OneLine();
  bool failed = false;
  bool expired = false;
  switch (result.status) {
    case smtp::RecipientResult::Status::kSent:
      status_name = "sent";
      status.state = q::RecipientState::kDelivered;
      Add(counters_.sent, 1);
      if (job.pool != nullptr) down_.MarkUp(job.pool->name);
      // NOTIFY=SUCCESS: an SMTP hop that offers DSN got the parameter and reports itself;
      // otherwise the report is ours ("delivered" by an LMTP hop, "relayed" to an SMTP one).
      if (connection != nullptr && message.rcpt_dsn[rcpt].notify.WantsSuccess()) {
        const bool lmtp = connection->hop().protocol == core::HopProtocol::kLmtp;
        if (lmtp || !connection->extensions().dsn) {
          message.successes.push_back({rcpt, result, hop, lmtp});
        }
      }
      break;
    case smtp::RecipientResult::Status::kDeferred: {
      policy::RetryDecision decision =
          policy::RetrySchedule(d).AfterFailure(static_cast<int>(attempts), arrival, now);
      if (decision.expired) {
        status_name = "bounced";
        failed = expired = true;
        break;
      }
      status_name = "deferred";
      status.state = q::RecipientState::kDeferred;
      status.next_attempt_us = ToUs(decision.next_attempt);
      message.next_due_us = std::min(message.next_due_us, status.next_attempt_us);
      Add(counters_.deferred, 1);
      break;
    }
    case smtp::RecipientResult::Status::kBounced:
      status_name = "bounced";
      failed = true;
      break;
  }
  core::LogInfo(absl::StrCat(
      "delivery shard=", shard_, " id=", message.id, " to=<", message.recipients[rcpt],
      "> hop=", hop, " delay=", absl::StrFormat("%.3f", absl::ToDoubleSeconds(now - arrival)),
      " attempt=", attempts, " status=", status_name, expired ? " expired=true" : "",
      connection == nullptr      ? std::string()
      : connection->tls_active() ? absl::StrCat(" tls=", connection->tls_version())
                                 : std::string(" tls=none"),
      " reply=\"", core::Av(status.reply), "\""));
  if (failed) {
    Add(counters_.bounced, 1);
    Message::Failure failure;
    failure.rcpt = rcpt;
    failure.result = result;
    failure.hop = result.local ? std::string() : hop;
    failure.expired = expired;
    message.failures.push_back(std::move(failure));
    return;  // recorded after the DSN is queued (MaybeFinishMessage)
  }
  message.states[rcpt] = status;
  WriteState(message, rcpt, std::move(status));
}

void Deliverer::WriteState(Message& message, uint32_t rcpt, q::RecipientStatus status) {
  ++message.writes;
  queue_.UpdateRecipient(
      message.id, rcpt, std::move(status), [this, id = message.id](absl::Status result) {
        auto it = active_.find(id);
        if (!result.ok() && !absl::IsNotFound(result)) {
          core::LogError(absl::StrCat("delivery shard=", shard_, " id=", id,
                                      " state not recorded: ", result.message()));
        }
        if (it == active_.end()) return;
        Message& m = *it->second;
        --m.writes;
        if (m.writes == 0 && m.writes_closed) Forget(m);
      });
}

void Deliverer::MaybeFinishMessage(Message& message, absl::Time now) {
  if (message.jobs_open > 0 || message.finishing) return;
  message.finishing = true;
  if (!message.successes.empty()) QueueDsn(message, smtp::DsnKind::kSuccess, now);
  if (!message.failures.empty()) {
    QueueDsn(message, smtp::DsnKind::kFailure, now);
    for (const Message::Failure& f : message.failures) {
      q::RecipientStatus status;
      status.state = q::RecipientState::kFailed;
      status.attempts = message.states[f.rcpt].attempts + 1;
      status.at_us = ToUs(now);
      status.reply = f.expired ? absl::StrCat("expired: ", f.result.reply.OneLine())
                               : f.result.reply.OneLine();
      message.states[f.rcpt] = status;
      WriteState(message, f.rcpt, std::move(status));
    }
  }
  // Only now may an answer forget the message (one can come from inside WriteState()).
  message.writes_closed = true;
  if (message.writes == 0) Forget(message);
}

void Deliverer::QueueDsn(Message& message, smtp::DsnKind kind, absl::Time now) {
  if (message.bounce) {
    if (kind == smtp::DsnKind::kFailure) {
      core::LogWarning(absl::StrCat("delivery shard=", shard_, " id=", message.id,
                                    " a DSN failed; no DSN is sent about a DSN"));
    }
    return;
  }
  if (message.sender.empty()) return;  // the null sender gets no DSN (no loops)
  const core::Config& config = message.snapshot->config;
  if (!config.delivery.bounce_next_hop) return;
  const std::string dsn_id = ids_.Next(now);
  std::string original;
  original.reserve(message.trace_headers.size() + message.body.size());
  original.append(message.trace_headers);
  original.append(message.body);
  smtp::DsnRequest request;
  request.kind = kind;
  request.hostname = config.hostname;
  request.dsn_id = dsn_id;
  request.original_id = message.id;
  request.sender = message.sender;
  if (!message.envid.empty()) request.envid = message.envid;
  request.ret = message.ret;
  request.arrival = absl::FromUnixMicros(message.received_us);
  request.now = now;
  request.message = original;
  auto add = [&](uint32_t rcpt, smtp::DsnAction action, const smtp::RecipientResult& result,
                 const std::string& hop) {
    smtp::DsnRecipient r;
    r.address = message.recipients[rcpt];
    r.notify = message.rcpt_dsn[rcpt].notify;
    r.orcpt = message.rcpt_dsn[rcpt].orcpt;
    r.action = action;
    r.status = result.reply.enhanced;
    r.remote_mta = hop;
    r.diagnostic = result.local ? result.reply.Text() : result.reply.OneLine();
    r.diagnostic_is_smtp = !result.local;
    r.last_attempt = now;
    request.recipients.push_back(std::move(r));
  };
  if (kind == smtp::DsnKind::kSuccess) {
    for (const Message::Success& s : message.successes) {
      add(s.rcpt, s.final_hop ? smtp::DsnAction::kDelivered : smtp::DsnAction::kRelayed, s.result,
          s.hop);
    }
  } else {
    for (const Message::Failure& f : message.failures) {
      add(f.rcpt, smtp::DsnAction::kFailed, f.result, f.hop);
      if (f.expired) {
        smtp::DsnRecipient& r = request.recipients.back();
        r.diagnostic = absl::StrCat("message expired after ",
                                    absl::FormatDuration(config.delivery.max_lifetime),
                                    "; last reply: ", f.result.reply.OneLine());
        r.diagnostic_is_smtp = false;
      }
    }
  }
  std::optional<smtp::DsnMessage> dsn = smtp::BuildDsn(request);
  if (!dsn) return;
  core::SpoolRecord record;
  record.id = dsn_id;
  record.body = std::move(dsn->bytes);
  record.sender = "";
  record.recipients = {dsn->rcpt_to};
  record.received_unix_us = ToUs(now);
  record.bounce = true;
  core::JsonWriter json(record.envelope_json);
  json.BeginObject()
      .Key("id")
      .String(dsn_id)
      .Key("mail_from")
      .String("")
      .Key("rcpt_to")
      .BeginArray()
      .String(dsn->rcpt_to)
      .EndArray()
      .Key("smtputf8")
      .Bool(dsn->smtputf8)
      .Key("body_type")
      .String(dsn->body_8bitmime ? "8BITMIME" : "7BIT")
      .Key("size")
      .Uint(record.body.size())
      .Key("dsn_for")
      .String(message.id)
      .EndObject();
  Add(counters_.dsns, 1);
  core::LogInfo(absl::StrCat(
      "delivery shard=", shard_, " id=", message.id, " dsn id=", dsn_id, " to=<", dsn->rcpt_to,
      "> ", kind == smtp::DsnKind::kSuccess ? "delivered=" : "failed=", dsn->reported.size()));
  queue_.Submit(std::move(record),
                new DsnWaiter(absl::StrCat("shard=", shard_), dsn_id, message.id));
}

void Deliverer::Forget(Message& message) {
  std::string id = message.id;  // the key outlives the entry it names
  if (message.next_due_us != kNever) Schedule(message.next_due_us, id);
  active_.erase(id);
}

void Deliverer::Tick(absl::Time now) {
  // A connection's Tick() may report it finished, which moves it out of its pool's list (into
  // graveyard_, still alive): walk a copy.
  std::vector<OutboundConnection*> connections;
  for (auto& [name, pool] : pools_) {
    for (auto& c : pool->connections) connections.push_back(c.get());
  }
  for (OutboundConnection* c : connections) c->Tick(now);
  CloseIdle(now);
}

void Deliverer::CloseIdle(absl::Time now) {
  // Pools with nothing left (those of an older config generation, or a hop not used lately).
  absl::erase_if(pools_, [](const auto& entry) {
    return entry.second->connections.empty() && entry.second->waiting.empty();
  });
  for (auto& [name, pool] : pools_) {
    for (auto& c : pool->connections) {
      if (!c->closed() && c->idle() && !running_.contains(c.get()) && pool->waiting.empty() &&
          (draining_ || now - c->idle_since() >= kIdleLimit)) {
        c->Quit(now);
      }
    }
  }
}

void Deliverer::OnFinished(OutboundConnection& connection) {
  // A connection that ends while it carries a job has already reported its results (Fail()).
  for (auto& [name, pool] : pools_) {
    auto& list = pool->connections;
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].get() != &connection) continue;
      graveyard_.push_back(std::move(list[i]));
      list.erase(list.begin() + static_cast<ptrdiff_t>(i));
      --open_connections_;
      Sub(counters_.connections_open, 1);
      return;
    }
  }
}

void Deliverer::Verify(std::string address, VerifyDone done) {
  const absl::Time now = clock_.Now();
  // The shard's newest configuration (as for deliveries), not the session's.
  const core::RouteConfig* route = runtime_.snapshot->routes.Lookup(DomainOf(address));
  if (route == nullptr || !route->verify_recipients) {
    done(smtp::CheckAnswer{smtp::CheckAnswer::Decision::kAccept, ""});
    return;
  }
  if (std::optional<policy::VerifyCache::Entry> cached = verify_cache_.Find(address, now)) {
    if (cached->known) {
      done(smtp::CheckAnswer{smtp::CheckAnswer::Decision::kAccept, ""});
    } else {
      done(smtp::CheckAnswer{smtp::CheckAnswer::Decision::kReject, cached->reply});
    }
    return;
  }
  std::string key = address;
  absl::AsciiStrToLower(&key);
  auto [it, first] = probing_.try_emplace(key);
  it->second.push_back(std::move(done));
  if (!first) return;  // a probe of this address is out: its answer serves this caller too
  for (size_t h = 0; h < route->next_hop.size(); ++h) {
    if (!down_.IsDown(route->next_hop[h].ToString(), now)) {
      StartProbe(key, std::move(address), runtime_.snapshot, runtime_.client_tls, *route, h);
      return;
    }
  }
  AnswerProbe(key, Unreachable(*route, address, "every next hop of its route is down"));
}

smtp::CheckAnswer Deliverer::Unreachable(const core::RouteConfig& route, std::string_view address,
                                         std::string_view why) {
  if (route.verify_unreachable == core::VerifyUnreachable::kAccept) {
    return smtp::CheckAnswer{smtp::CheckAnswer::Decision::kAccept, ""};
  }
  return smtp::CheckAnswer{
      smtp::CheckAnswer::Decision::kTempFail,
      absl::StrCat("450 4.4.1 <", core::Av(address),
                   ">: Recipient address verification failed: ", core::Av(why), ", try later")};
}

void Deliverer::StartProbe(const std::string& key, std::string address,
                           std::shared_ptr<const core::Snapshot> snapshot,
                           std::shared_ptr<const tls::ClientTlsContext> client_tls,
                           const core::RouteConfig& route, size_t hop_index) {
  auto job = std::make_unique<Job>();
  job->hop_index = hop_index;
  job->snapshot = std::move(snapshot);
  job->client_tls = std::move(client_tls);
  job->route_config = &route;
  job->probe_key = key;
  job->out.probe = true;
  job->out.sender = "";
  job->out.recipients = {std::move(address)};
  Pool& pool = PoolFor(*job->snapshot, job->client_tls, route.next_hop[hop_index],
                       static_cast<size_t>(&route - job->snapshot->routes.routes().data()),
                       /*probe=*/true);
  job->pool = &pool;
  pool.waiting.push_back(job.get());
  probes_.push_back(std::move(job));
}

void Deliverer::OnProbeResult(Job& job, OutboundConnection& connection,
                              const smtp::RecipientResult& result, absl::Time now) {
  const core::RouteConfig& route = *job.route_config;
  const std::string& address = job.out.recipients[0];
  const absl::Duration hop_down = job.snapshot->config.delivery.hop_down;
  std::string outcome;
  smtp::CheckAnswer answer;
  switch (result.status) {
    case smtp::RecipientResult::Status::kSent:
      outcome = "known";
      verify_cache_.Put(address, true, result.reply.OneLine(), now, route.verify_positive_ttl);
      if (on_learned_ && route.verify_positive_ttl > absl::ZeroDuration()) {
        on_learned_(address, {true, result.reply.OneLine(), now + route.verify_positive_ttl});
      }
      answer.decision = smtp::CheckAnswer::Decision::kAccept;
      break;
    case smtp::RecipientResult::Status::kBounced:
      if (!result.local) {
        outcome = "unknown";
        answer.decision = smtp::CheckAnswer::Decision::kReject;
        answer.reply = absl::StrCat(
            "550 5.1.1 <", address,
            ">: Recipient address rejected: the next hop said: ", result.reply.OneLine());
        verify_cache_.Put(address, false, answer.reply, now, route.verify_negative_ttl);
        if (on_learned_ && route.verify_negative_ttl > absl::ZeroDuration()) {
          on_learned_(address, {false, answer.reply, now + route.verify_negative_ttl});
        }
        break;
      }
      [[fallthrough]];
    case smtp::RecipientResult::Status::kDeferred:
      if (!connection.was_ready()) {
        down_.MarkDown(connection.hop_name(), now, now + hop_down);
        // Try the next hop of the route that is not down, if any.
        for (size_t h = job.hop_index + 1; h < route.next_hop.size(); ++h) {
          if (!down_.IsDown(route.next_hop[h].ToString(), now)) {
            core::LogInfo(absl::StrCat("verify shard=", shard_, " to=<", address, "> hop=",
                                       connection.hop_name(), " unreachable, trying the next hop"));
            StartProbe(job.probe_key, address, job.snapshot, job.client_tls, route, h);
            return;
          }
        }
        outcome = "unreachable";
        answer = Unreachable(route, address, "the next hop cannot be reached");
      } else if (result.reply.code == 421) {
        down_.MarkDown(connection.hop_name(), now, now + hop_down);
        outcome = "unreachable";
        answer = Unreachable(route, address, "the next hop is not available");
      } else {
        outcome = "tempfail";
        answer.decision = smtp::CheckAnswer::Decision::kTempFail;
        answer.reply = absl::StrCat("450 4.4.1 <", address,
                                    ">: Recipient address verification failed: the next hop said: ",
                                    result.reply.OneLine());
      }
      break;
  }
  core::LogInfo(absl::StrCat("verify shard=", shard_, " to=<", address,
                             "> hop=", connection.hop_name(), " result=", outcome, " reply=\"",
                             result.reply.OneLine(), "\""));
  AnswerProbe(job.probe_key, answer);
}

void Deliverer::Learn(const std::string& address, policy::VerifyCache::Entry entry) {
  verify_cache_.PutEntry(address, std::move(entry), clock_.Now());
}

void Deliverer::AnswerProbe(const std::string& key, const smtp::CheckAnswer& answer) {
  auto it = probing_.find(key);
  if (it == probing_.end()) return;
  std::vector<VerifyDone> waiting = std::move(it->second);
  probing_.erase(it);
  for (VerifyDone& done : waiting) done(answer);
}

void Deliverer::BeginDrain(absl::Time now) {
  draining_ = true;
  for (auto& [name, pool] : pools_) {
    // Jobs that never started: their messages are tried again after the restart.
    while (!pool->waiting.empty()) {
      Job* job = pool->waiting.front();
      pool->waiting.pop_front();
      --job->message->jobs_open;
      MaybeFinishMessage(*job->message, now);
    }
  }
  CloseIdle(now);
}

void Deliverer::Abort() {
  for (auto& [name, pool] : pools_) {
    for (auto& c : pool->connections) c->Abort("shutting down");
  }
}

}  // namespace ringmx::net

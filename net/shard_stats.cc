#include "net/shard_stats.h"

#include <chrono>
#include <future>

#include "core/queue/index.h"
#include "net/queue_log.h"
#include "net/shard.h"

namespace ringmx::net {

void TrafficCells::CountReplies(std::string_view replies) {
  core::ForEachReply(replies, [this](int code, std::string_view enhanced) {
    switch (code / 100) {
      case 2:
        core::Bump(replies_2xx);
        break;
      case 3:
        core::Bump(replies_3xx);
        break;
      case 4:
        core::Bump(replies_4xx);
        break;
      default:
        core::Bump(replies_5xx);
        break;
    }
    if (!enhanced.empty()) replies_by_enhanced_code.Add(enhanced);
  });
}

void TrafficCells::CountHandshake(const core::TlsFacts& facts, bool kernel) {
  // "VERSION CIPHER" in a buffer of the stack (no allocation); a longer one counts as "other".
  char key[core::LabeledCounters<1>::kMaxKey + 1];
  const size_t n = facts.version.size() + 1 + facts.cipher.size();
  if (n <= core::LabeledCounters<1>::kMaxKey) {
    facts.version.copy(key, facts.version.size());
    key[facts.version.size()] = ' ';
    facts.cipher.copy(key + facts.version.size() + 1, facts.cipher.size());
    tls_handshakes.Add(std::string_view(key, n));
  } else {
    tls_handshakes.Add(std::string_view());  // "other"
  }
  core::Bump(kernel ? tls_kernel : tls_userspace);
}

void TrafficCells::Observe(core::HistogramCell& cell, absl::Duration elapsed) {
  const int64_t us = absl::ToInt64Microseconds(elapsed);
  cell.Observe(us < 0 ? 0 : static_cast<uint64_t>(us));
}

core::ShardStats ReadShardStats(const Shard& shard) {
  const auto load = [](const std::atomic<uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  core::ShardStats out;
  const ShardCounters& c = shard.counters();
  out.connections_open = load(c.connections_open);
  out.connections_total = load(c.connections_total);
  out.connections_refused = load(c.connections_refused);
  out.proxy_refused = load(c.proxy_refused);
  out.messages_accepted = load(c.messages_accepted);
  out.messages_rejected = load(c.messages_rejected);
  out.bytes_accepted = load(c.bytes_accepted);
  out.store_errors = load(c.store_errors);
  out.input_held_in_place_bytes = load(c.input_held_in_place_bytes);
  out.input_held_copied_bytes = load(c.input_held_copied_bytes);
  out.recv_buffers_held = load(c.recv_buffers_held);
  out.queue_messages = load(c.queue_messages);
  out.queue_groups = load(c.queue_groups);
  out.queue_records = load(c.queue_records);
  out.queue_bytes = load(c.queue_bytes);
  out.queue_last_group_records = load(c.queue_last_group_records);
  const DeliveryCounters& d = shard.delivery_counters();
  out.delivery_attempts = load(d.attempts);
  out.delivery_sent = load(d.sent);
  out.delivery_deferred = load(d.deferred);
  out.delivery_bounced = load(d.bounced);
  out.dsns_queued = load(d.dsns);
  out.outbound_connections_total = load(d.connections);
  out.outbound_connections_open = load(d.connections_open);
  const TrafficCells& t = c.traffic;
  out.replies_2xx = load(t.replies_2xx);
  out.replies_3xx = load(t.replies_3xx);
  out.replies_4xx = load(t.replies_4xx);
  out.replies_5xx = load(t.replies_5xx);
  t.replies_by_enhanced_code.ReadInto(out.replies_by_enhanced_code);
  t.tls_handshakes.ReadInto(out.tls_handshakes);
  out.tls_kernel = load(t.tls_kernel);
  out.tls_userspace = load(t.tls_userspace);
  t.tls_failures.ReadInto(out.tls_failures);
  out.store_latency = t.store_latency.Read();
  out.handshake_time = t.handshake_time.Read();
  return out;
}

void CollectQueueSizes(const std::vector<std::unique_ptr<Shard>>& shards, absl::Duration wait,
                       core::StatsSnapshot& stats) {
  stats.queue_sizes = false;
  if (shards.size() != stats.shards.size()) return;
  struct Sizes {
    bool has_queue = false;
    uint64_t held = 0;
    uint64_t by_state[4] = {};
  };
  std::vector<std::future<Sizes>> answers;
  for (const auto& shard : shards) {
    auto promise = std::make_shared<std::promise<Sizes>>();
    answers.push_back(promise->get_future());
    ShardMessage message;
    message.kind = ShardMessage::Kind::kQueueTask;
    message.queue_task = [promise](QueueLog* queue) {
      Sizes sizes;
      if (queue != nullptr) {
        sizes.has_queue = true;
        for (const core::queue::QueuedMessage* m : queue->index().List()) {
          if (m->held) ++sizes.held;
          for (const core::queue::QueuedRecipient& r : m->recipients) {
            const size_t state = static_cast<size_t>(r.status.state);
            if (state < 4) ++sizes.by_state[state];
          }
        }
      }
      promise->set_value(sizes);
    };
    shard->mailbox().Post(std::move(message));
  }
  for (size_t s = 0; s < answers.size(); ++s) {
    if (answers[s].wait_for(absl::ToChronoMilliseconds(wait)) != std::future_status::ready) return;
    const Sizes sizes = answers[s].get();
    if (!sizes.has_queue) return;
    core::ShardStats& out = stats.shards[s];
    out.queue_held = sizes.held;
    out.queue_recipients_pending =
        sizes.by_state[static_cast<size_t>(core::queue::RecipientState::kPending)];
    out.queue_recipients_deferred =
        sizes.by_state[static_cast<size_t>(core::queue::RecipientState::kDeferred)];
    out.queue_recipients_delivered =
        sizes.by_state[static_cast<size_t>(core::queue::RecipientState::kDelivered)];
    out.queue_recipients_failed =
        sizes.by_state[static_cast<size_t>(core::queue::RecipientState::kFailed)];
  }
  stats.queue_sizes = true;
}

}  // namespace ringmx::net

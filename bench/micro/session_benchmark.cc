// smtp::Session end to end, without sockets: the bytes a pipelining client sends go in, the
// replies and the spool record come out. Items are transactions (or sessions, or replies).
//   BM_SessionTransaction   one pipelined transaction on a live session: MAIL FROM (SIZE, BODY),
//                           RCPT TO, DATA, 1 KiB body, "." and the store's answer
//   BM_SessionWhole         a whole session: banner, EHLO, the transaction above, QUIT
//   BM_SessionEhloReply     EHLO and its multi-line reply (reply building)
//   BM_BuildReceivedHeader, BM_BuildEnvelopeJson: the spool-record parts built at end of data
#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"

#include "core/config.h"
#include "core/queue_id.h"
#include "core/snapshot.h"
#include "core/spool_record.h"
#include "policy/policy.h"
#include "smtp/envelope.h"
#include "smtp/session.h"

namespace ringmx::smtp {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

std::shared_ptr<const core::Snapshot> BenchSnapshot() {
  core::Config config;
  config.hostname = "mx.example.test";
  core::ListenerConfig& listener = config.listeners.emplace_back();
  listener.name = "mx";
  listener.address = *core::Endpoint::Parse("192.0.2.10:25");
  config.policy.local_domains = {"example.test", "example.org"};
  config.policy.relay_networks = {*core::Cidr::Parse("10.0.0.0/8")};
  return core::Snapshot::Build(std::move(config), 1);
}

policy::ConnectionFacts BenchFacts(const core::Snapshot& snapshot) {
  policy::ConnectionFacts facts;
  facts.client = *core::Endpoint::Parse("203.0.113.5:40000");
  facts.local = *core::Endpoint::Parse("192.0.2.10:25");
  facts.listener = &snapshot.config.listeners[0];
  return facts;
}

// 1 KiB of body in 76-character lines, dot-stuffing included.
std::string Body1K() {
  std::string body = "Subject: benchmark\r\nFrom: <sender@example.net>\r\n\r\n";
  while (body.size() < 1024) body.append(std::string(76, 'x')).append("\r\n");
  return body;
}

std::string TransactionBytes() {
  return "MAIL FROM:<sender@example.net> SIZE=1200 BODY=8BITMIME\r\n"
         "RCPT TO:<user@example.test>\r\n"
         "DATA\r\n" +
         Body1K() + ".\r\n";
}

// Answers every delivery with OK, as a store that always succeeds; returns deliveries made.
int Drain(Session& session, Output& out) {
  int delivered = 0;
  while (out.deliver) {
    core::SpoolRecord record = std::move(*out.deliver);
    benchmark::DoNotOptimize(record.body.block_count());
    out.deliver.reset();
    ++delivered;
    session.OnDelivered(absl::OkStatus(), kNow, out);
  }
  return delivered;
}

void BM_SessionTransaction(benchmark::State& state) {
  const std::shared_ptr<const core::Snapshot> snapshot = BenchSnapshot();
  core::QueueIdGenerator ids(0);
  Session session(snapshot, BenchFacts(*snapshot), ids);
  Output out;
  session.Start(kNow, out);
  session.OnInput("EHLO client.example.net\r\n", kNow, out);
  out.Clear();
  const std::string input = TransactionBytes();
  int64_t delivered = 0;
  for (auto _ : state) {
    session.OnInput(input, kNow, out);
    delivered += Drain(session, out);
    benchmark::DoNotOptimize(out.replies.data());
    out.Clear();
  }
  if (delivered != static_cast<int64_t>(state.iterations()) || session.closed()) {
    state.SkipWithError("transaction not delivered");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(input.size()));
}
BENCHMARK(BM_SessionTransaction);

void BM_SessionWhole(benchmark::State& state) {
  const std::shared_ptr<const core::Snapshot> snapshot = BenchSnapshot();
  const policy::ConnectionFacts facts = BenchFacts(*snapshot);
  core::QueueIdGenerator ids(0);
  const std::string input = "EHLO client.example.net\r\n" + TransactionBytes() + "QUIT\r\n";
  int64_t delivered = 0;
  for (auto _ : state) {
    Session session(snapshot, facts, ids);
    Output out;
    session.Start(kNow, out);
    session.OnInput(input, kNow, out);
    delivered += Drain(session, out);
    benchmark::DoNotOptimize(out.replies.data());
    if (!session.closed()) {
      state.SkipWithError("session did not end with QUIT");
      break;
    }
  }
  if (delivered != static_cast<int64_t>(state.iterations())) {
    state.SkipWithError("transaction not delivered");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(input.size()));
}
BENCHMARK(BM_SessionWhole);

void BM_SessionEhloReply(benchmark::State& state) {
  const std::shared_ptr<const core::Snapshot> snapshot = BenchSnapshot();
  core::QueueIdGenerator ids(0);
  Session session(snapshot, BenchFacts(*snapshot), ids);
  Output out;
  session.Start(kNow, out);
  out.Clear();
  constexpr std::string_view kLine = "EHLO client.example.net\r\n";
  for (auto _ : state) {
    session.OnInput(kLine, kNow, out);
    benchmark::DoNotOptimize(out.replies.data());
    out.Clear();
  }
  if (session.closed()) state.SkipWithError("session closed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SessionEhloReply);

struct RecordFixture {
  std::shared_ptr<const core::Snapshot> snapshot = BenchSnapshot();
  policy::ConnectionFacts facts = BenchFacts(*snapshot);
  Envelope envelope;
  TraceContext context;

  RecordFixture() {
    envelope.mail_from = "sender@example.net";
    envelope.mail_params = {{"SIZE", "1200", true}, {"BODY", "8BITMIME", true}};
    envelope.rcpt_to = {"user@example.test"};
    envelope.body_8bitmime = true;
    context.id = "0123456789ABCDEFGHIJ";
    context.received_at = kNow;
    context.hostname = snapshot->config.hostname;
    context.helo = "client.example.net";
    context.ehlo = true;
    context.facts = &facts;
    context.size = 1024;
  }
};

void BM_BuildReceivedHeader(benchmark::State& state) {
  RecordFixture f;
  for (auto _ : state) {
    std::string header = BuildReceivedHeader(f.envelope, f.context);
    benchmark::DoNotOptimize(header.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildReceivedHeader);

void BM_BuildEnvelopeJson(benchmark::State& state) {
  RecordFixture f;
  for (auto _ : state) {
    std::string json = BuildEnvelopeJson(f.envelope, f.context);
    benchmark::DoNotOptimize(json.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildEnvelopeJson);

void BM_QueueIdNext(benchmark::State& state) {
  core::QueueIdGenerator ids(0);
  for (auto _ : state) {
    std::string id = ids.Next(kNow);
    benchmark::DoNotOptimize(id.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueIdNext);

}  // namespace
}  // namespace ringmx::smtp

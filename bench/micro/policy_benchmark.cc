// Policy evaluation (policy/policy.h) and Snapshot reads (core/snapshot.h). Items are decisions.
//   BM_CheckRecipient/LocalDomain   RCPT to a local domain from an outside client
//   BM_CheckRecipient/RelayHit      RCPT to a remote domain from a client in relay_networks
//   BM_CheckRecipient/RelayMiss     RCPT to a remote domain from an outside client (denied)
//   BM_CheckRecipient/Postmaster    bare <postmaster>
//   BM_SnapshotLocalDomains/N       Snapshot::local_domains lookup (hit/miss) with N domains
#include <stddef.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"

#include "core/config.h"
#include "core/snapshot.h"
#include "core/strings.h"
#include "policy/policy.h"

namespace ringmx::policy {
namespace {

// `extra_domains` local domains besides example.test and Example.ORG; relay networks as a small
// real site would list them (the hit is in the last one, so every network is tried).
std::shared_ptr<const core::Snapshot> BenchSnapshot(int extra_domains) {
  core::Config config;
  config.hostname = "mx.example.test";
  core::ListenerConfig& listener = config.listeners.emplace_back();
  listener.name = "mx";
  listener.address = *core::Endpoint::Parse("192.0.2.10:25");
  config.policy.local_domains = {"example.test", "example.org"};
  for (int i = 0; i < extra_domains; ++i) {
    config.policy.local_domains.push_back(absl::StrCat("domain", i, ".example"));
  }
  config.policy.relay_networks = {
      *core::Cidr::Parse("127.0.0.0/8"), *core::Cidr::Parse("2001:db8:1::/48"),
      *core::Cidr::Parse("192.168.0.0/16"), *core::Cidr::Parse("10.0.0.0/8")};
  return core::Snapshot::Build(std::move(config), 1);
}

ConnectionFacts Facts(const core::Snapshot& snapshot, std::string_view client) {
  ConnectionFacts facts;
  facts.client = *core::Endpoint::Parse(client);
  facts.local = *core::Endpoint::Parse("192.0.2.10:25");
  facts.listener = &snapshot.config.listeners[0];
  return facts;
}

void BM_CheckRecipient(benchmark::State& state, std::string_view client,
                       std::string_view local_part, std::string_view domain,
                       RecipientVerdict expected) {
  const std::shared_ptr<const core::Snapshot> snapshot = BenchSnapshot(0);
  const ConnectionFacts facts = Facts(*snapshot, client);
  if (CheckRecipient(*snapshot, facts, local_part, domain) != expected) {
    state.SkipWithError("unexpected verdict");
    return;
  }
  for (auto _ : state) {
    std::string_view l = local_part;
    std::string_view d = domain;
    benchmark::DoNotOptimize(l);
    benchmark::DoNotOptimize(d);
    RecipientVerdict verdict = CheckRecipient(*snapshot, facts, l, d);
    benchmark::DoNotOptimize(verdict);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_CheckRecipient, LocalDomain, "203.0.113.5:40000", "john.doe", "Example.ORG",
                  RecipientVerdict::kAccept);
BENCHMARK_CAPTURE(BM_CheckRecipient, RelayHit, "10.1.2.3:40000", "someone", "remote.example.net",
                  RecipientVerdict::kAccept);
BENCHMARK_CAPTURE(BM_CheckRecipient, RelayMiss, "203.0.113.5:40000", "someone",
                  "remote.example.net", RecipientVerdict::kRelayDenied);
BENCHMARK_CAPTURE(BM_CheckRecipient, Postmaster, "203.0.113.5:40000", "PostMaster", "",
                  RecipientVerdict::kAccept);

void BM_IsLocalDomain(benchmark::State& state, std::string_view domain, bool expected) {
  const std::shared_ptr<const core::Snapshot> snapshot =
      BenchSnapshot(static_cast<int>(state.range(0)));
  if (IsLocalDomain(*snapshot, domain) != expected) {
    state.SkipWithError("unexpected answer");
    return;
  }
  for (auto _ : state) {
    std::string_view d = domain;
    benchmark::DoNotOptimize(d);
    bool local = IsLocalDomain(*snapshot, d);
    benchmark::DoNotOptimize(local);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_IsLocalDomain, Hit, "Example.ORG", true)->Arg(0)->Arg(1000);
BENCHMARK_CAPTURE(BM_IsLocalDomain, Miss, "remote.example.net", false)->Arg(0)->Arg(1000);

// The raw Snapshot read: a lower-case lookup in local_domains, no case folding.
void BM_SnapshotLocalDomains(benchmark::State& state, std::string_view domain, bool expected) {
  const std::shared_ptr<const core::Snapshot> snapshot =
      BenchSnapshot(static_cast<int>(state.range(0)));
  if (snapshot->local_domains.contains(core::Av(domain)) != expected) {
    state.SkipWithError("unexpected answer");
    return;
  }
  for (auto _ : state) {
    std::string_view d = domain;
    benchmark::DoNotOptimize(d);
    bool found = snapshot->local_domains.contains(core::Av(d));
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_SnapshotLocalDomains, Hit, "example.org", true)->Arg(0)->Arg(1000);
BENCHMARK_CAPTURE(BM_SnapshotLocalDomains, Miss, "remote.example.net", false)->Arg(0)->Arg(1000);

// What a shard does per session: take a reference to the current Snapshot (shared_ptr copy).
void BM_SnapshotAcquire(benchmark::State& state) {
  const std::shared_ptr<const core::Snapshot> current = BenchSnapshot(0);
  for (auto _ : state) {
    std::shared_ptr<const core::Snapshot> mine = current;
    benchmark::DoNotOptimize(mine.get());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SnapshotAcquire);

}  // namespace
}  // namespace ringmx::policy

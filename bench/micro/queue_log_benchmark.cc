// The queue log's append path alone (net/queue_log.h): records/s and bytes/s of Submit() ->
// group commit (WRITEV chain + FSYNC(DATASYNC) on a real ring) -> waiters called, with no network
// and no SMTP. One iteration is one group of N messages submitted together, then committed.
//   BM_QueueLogAppend/<body bytes>/<messages per group>
// Writes into a fresh directory under $RINGMX_BENCH_DIR (default: the current directory; run it
// from the build tree so that it lands on the same disk as the spool would, not on a tmpfs). The
// directory is removed afterwards. Building each group's records (copying the test body into
// them, as a session does before it submits) is not timed.
//   cd build/release && bench/micro/queue_log_benchmark --benchmark_min_time=1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"

#include "core/clock.h"
#include "core/spool_record.h"
#include "net/queue_log.h"
#include "net/reactor.h"

namespace ringmx::net {
namespace {

class CountingWaiter final : public SpoolWaiter {
 public:
  void OnStored(const absl::Status& result) override {
    ++stored;
    if (!result.ok()) ++failed;
  }
  int64_t stored = 0;
  int64_t failed = 0;
};

std::string MakeTempDir() {
  const char* base = getenv("RINGMX_BENCH_DIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : ".", "/queue-log-bench-XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return remove(p); },
      16, FTW_DEPTH | FTW_PHYS);
}

void BM_QueueLogAppend(benchmark::State& state) {
  const size_t body_bytes = static_cast<size_t>(state.range(0));
  const int group = static_cast<int>(state.range(1));
  const std::string dir = MakeTempDir();
  if (dir.empty()) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  auto reactor = Reactor::Create(4096);
  if (!reactor.ok()) {
    state.SkipWithError(reactor.status().ToString().c_str());
    return;
  }
  {
    auto opened = QueueLog::Open(dir + "/0", **reactor, core::RealClock::Get(), {.name = "bench"});
    if (!opened.ok()) {
      state.SkipWithError(opened.status().ToString().c_str());
      return;
    }
    std::unique_ptr<QueueLog> log = std::move(opened).value();
    core::SpoolRecord prototype;
    prototype.trace_headers =
        "Received: from client.example.test ([192.0.2.1]) by mx.example.test "
        "with ESMTPS id 0000000000000000; Sun, 6 Dec 2026 22:00:00 +0000\r\n";
    prototype.body = std::string(body_bytes, 'x');
    prototype.envelope_json = std::string(400, 'j');
    prototype.sender = "sender@example.test";
    prototype.recipients = {"rcpt@example.test"};
    CountingWaiter waiter;
    std::vector<core::SpoolRecord> records(static_cast<size_t>(group));
    int64_t next_id = 0;
    int64_t bytes = 0;
    for (auto _ : state) {
      state.PauseTiming();
      for (core::SpoolRecord& record : records) {
        record = prototype;
        record.id = absl::StrCat("BENCH", next_id++);
      }
      state.ResumeTiming();
      const int64_t target = waiter.stored + group;
      for (core::SpoolRecord& record : records) log->Submit(std::move(record), &waiter);
      log->Flush();
      while (waiter.stored < target) {
        auto ran = (*reactor)->RunOnce(absl::Milliseconds(50));
        if (!ran.ok()) {
          state.SkipWithError(ran.status().ToString().c_str());
          break;
        }
        log->Flush();
      }
      bytes += group * static_cast<int64_t>(body_bytes + prototype.trace_headers.size() +
                                            prototype.envelope_json.size());
    }
    while (log->pending() > 0) {
      if (!(*reactor)->RunOnce(absl::Milliseconds(50)).ok()) break;
    }
    if (waiter.failed > 0) state.SkipWithError("stores failed");
    state.SetItemsProcessed(waiter.stored);
    state.SetBytesProcessed(bytes);
    state.counters["groups"] = static_cast<double>(log->counters().groups);
    state.counters["segments"] = static_cast<double>(log->counters().segments_created);
  }
  RemoveTree(dir);
}

BENCHMARK(BM_QueueLogAppend)
    ->ArgNames({"body", "group"})
    ->ArgsProduct({{1024, 10 * 1024, 100 * 1024}, {1, 16, 64, 256}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace ringmx::net

// A core::Clock for in-process tests: time stands still until the test moves it. Test-only.
#pragma once

#include <stdint.h>

#include <atomic>

#include "absl/time/time.h"

#include "core/clock.h"

namespace ringmx::testing {

// Starts at `start` (by default a fixed instant, so that logs and ids do not depend on the day
// the test runs) and moves only through Set() and Advance(). Thread-safe: a test may move it
// while a shard thread reads it.
class FakeClock final : public core::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_ns_(absl::ToUnixNanos(start)) {}

  absl::Time Now() const override {
    return absl::FromUnixNanos(now_ns_.load(std::memory_order_acquire));
  }
  void Set(absl::Time now) { now_ns_.store(absl::ToUnixNanos(now), std::memory_order_release); }
  void Advance(absl::Duration by) {
    now_ns_.fetch_add(absl::ToInt64Nanoseconds(by), std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace ringmx::testing

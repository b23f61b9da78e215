// Clock interface: the one place that reads wall time. Pure modules take `absl::Time now` as an
// argument instead; net/ reads it from a Clock once per completion batch (net::Shard), so every
// deadline of a shard (idle and DATA timeouts, greet pause, closing linger, shutdown grace)
// follows the injected clock. Production uses RealClock; `ringmx serve --test-clock` uses an
// OffsetClock that end-to-end tests move forward through the control socket.
#pragma once

#include <stdint.h>

#include <atomic>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ringmx::core {

// What a shard reads the time from. Implementations are thread-safe: one clock is shared by every
// shard of a process, read by each on its own thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The real clock: no state, no atomic. Immutable; safe to share.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static const RealClock& Get() {
    static const RealClock clock;
    return clock;
  }
};

// Real time plus an offset that only moves forward: time passes as usual, and a test can also
// jump ahead to a deadline instead of waiting for it (`ringmx serve --test-clock`, control
// command `advance-clock-for-test`). Test-only; never used unless that flag is given, so the
// atomic load stays off the production path. Thread-safe: AdvanceForTest() is called by the
// control thread, Now() by every shard.
class OffsetClock final : public Clock {
 public:
  absl::Time Now() const override {
    return absl::Now() + absl::Nanoseconds(offset_ns_.load(std::memory_order_relaxed));
  }
  // Moves the clock forward by `by` (negative durations are ignored: deadlines never move back).
  // Readers that must see the new offset are told through a mutex-protected message afterwards
  // (net::Mailbox), which orders this store before their next Now().
  void AdvanceForTest(absl::Duration by) {
    if (by <= absl::ZeroDuration()) return;
    offset_ns_.fetch_add(absl::ToInt64Nanoseconds(by), std::memory_order_relaxed);
  }
  absl::Duration offset() const {
    return absl::Nanoseconds(offset_ns_.load(std::memory_order_relaxed));
  }

 private:
  std::atomic<int64_t> offset_ns_{0};
};

}  // namespace ringmx::core

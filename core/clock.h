// Clock interface: the one place that reads wall time. Pure modules take `absl::Time now` as an
// argument instead; net/ reads it from a Clock once per completion batch.
#pragma once

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ringmx::core {

// Immutable; safe to share.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The real clock. Immutable; safe to share.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static const RealClock& Get() {
    static const RealClock clock;
    return clock;
  }
};

}  // namespace ringmx::core

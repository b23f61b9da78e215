// A log-linear latency histogram (about 3% relative error, nanoseconds up to centuries). One per
// metric per worker thread, merged after the run. Bench-only.
#pragma once

#include <stdint.h>

#include <algorithm>
#include <array>
#include <bit>

namespace ringmx::bench {

class Histogram {
 public:
  void Record(int64_t ns) {
    const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    ++counts_[Index(v)];
    ++count_;
    max_ = std::max(max_, v);
  }
  void Merge(const Histogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
  }
  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  // The value at quantile q (0..1), as the middle of its bucket (never above max).
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.5);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(Middle(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 5;
  static constexpr uint64_t kLinear = uint64_t{1} << (kSubBits + 1);  // exact below 64 ns
  static size_t Index(uint64_t v) {
    if (v < kLinear) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);  // >= kSubBits + 1
    const uint64_t sub = (v >> (e - kSubBits)) & ((uint64_t{1} << kSubBits) - 1);
    return static_cast<size_t>(kLinear + static_cast<uint64_t>(e - kSubBits - 1) * 32 + sub);
  }
  static uint64_t Middle(size_t i) {
    if (i < kLinear) return i;
    const uint64_t j = i - kLinear;
    const int e = static_cast<int>(j / 32) + kSubBits + 1;
    const uint64_t sub = j % 32;
    const uint64_t lower = (uint64_t{32} + sub) << (e - kSubBits);
    const uint64_t width = uint64_t{1} << (e - kSubBits);
    return lower + width / 2;
  }
  std::array<uint64_t, kLinear + 64 * 32> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace ringmx::bench

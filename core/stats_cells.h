// The cells a shard counts in (DESIGN.md section 1: counters are per shard and summed only when
// someone asks): fixed-bucket histograms and small tables of counters keyed by short strings
// learnt at run time (TLS cipher names, handshake failure reasons, enhanced status codes), plus
// the plain values they are read into. No allocation when counting, no locked instruction.
//
// Single writer, any readers: each cell is written by its shard's thread only, with a relaxed
// load and store (a plain move on x86-64, no read-modify-write), and read by the control plane or
// the metrics thread with relaxed loads. The atomics make those cross-thread reads well defined
// (plain fields would be a data race); they cost the writer nothing over plain fields.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <atomic>
#include <map>
#include <string>
#include <string_view>

namespace ringmx::core {

// Adds `n` to a single-writer counter (load + store, no locked instruction).
inline void Bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Upper bounds (microseconds, ascending) of a histogram's finite buckets; +Inf follows them.
inline constexpr size_t kHistogramBounds = 14;
using HistogramBounds = std::array<uint64_t, kHistogramBounds>;

// End of DATA (or the last BDAT chunk) to the 250: the wait for the group commit that makes the
// message durable.
inline constexpr HistogramBounds kStoreLatencyBounds = {250,    500,     1000,    2000,   5000,
                                                        10000,  20000,   50000,   100000, 250000,
                                                        500000, 1000000, 2500000, 5000000};
// First handshake byte expected (STARTTLS's 220 sent, or the implicit-TLS accept) to the
// handshake done.
inline constexpr HistogramBounds kHandshakeBounds = {500,     1000,    2500,    5000,    10000,
                                                     25000,   50000,   100000,  250000,  500000,
                                                     1000000, 2500000, 5000000, 10000000};

// A histogram's values at one moment. `buckets[i]` counts observations in bucket i only (not
// cumulative): i < kHistogramBounds those <= bounds[i] and > bounds[i-1], the last one the rest.
struct HistogramData {
  std::array<uint64_t, kHistogramBounds + 1> buckets{};
  uint64_t sum_us = 0;  // sum of the observations, microseconds

  uint64_t count() const;
  void Merge(const HistogramData& other);
};

// Shard-local writer, readable from any thread (see the file comment).
class HistogramCell {
 public:
  explicit HistogramCell(const HistogramBounds& bounds) : bounds_(bounds) {}
  void Observe(uint64_t micros);
  HistogramData Read() const;
  const HistogramBounds& bounds() const { return bounds_; }

 private:
  const HistogramBounds& bounds_;
  std::array<std::atomic<uint64_t>, kHistogramBounds + 1> buckets_{};
  std::atomic<uint64_t> sum_us_{0};
};

// Counters keyed by short strings, in `kSlots` fixed slots. A key is copied into the first free
// slot the first time it is seen (and never changes afterwards); keys longer than kMaxKey bytes,
// and new keys once every slot is taken, are counted under "other". Shard-local writer, readable
// from any thread: a reader sees a slot only after its key is complete (the slot's `used` flag is
// stored with release order after the key, and loaded with acquire order).
template <size_t kSlots>
class LabeledCounters {
 public:
  static constexpr size_t kMaxKey = 47;

  void Add(std::string_view key, uint64_t n = 1) {
    for (size_t i = 0; i < used_; ++i) {
      Slot& slot = slots_[i];
      if (std::string_view(slot.key, slot.length) == key) {
        Bump(slot.count, n);
        return;
      }
    }
    if (used_ == kSlots || key.size() > kMaxKey || key.empty()) {
      Bump(other_, n);
      return;
    }
    Slot& slot = slots_[used_++];
    key.copy(slot.key, key.size());
    slot.length = key.size();
    slot.count.store(n, std::memory_order_relaxed);
    slot.used.store(true, std::memory_order_release);
  }

  // Adds every key's count into `out` (summing what is already there); "other" only if non-zero.
  void ReadInto(std::map<std::string, uint64_t>& out) const {
    for (const Slot& slot : slots_) {
      if (!slot.used.load(std::memory_order_acquire)) break;
      out[std::string(slot.key, slot.length)] += slot.count.load(std::memory_order_relaxed);
    }
    const uint64_t other = other_.load(std::memory_order_relaxed);
    if (other != 0) out["other"] += other;
  }

 private:
  struct Slot {
    char key[kMaxKey] = {};
    size_t length = 0;
    std::atomic<bool> used{false};
    std::atomic<uint64_t> count{0};
  };
  std::array<Slot, kSlots> slots_;
  std::atomic<uint64_t> other_{0};
  size_t used_ = 0;  // the writer's own count of slots taken
};

// Calls `fn(code, enhanced)` for each complete reply in `replies` (SMTP reply bytes as the server
// sends them: lines "NNN-text" and a last line "NNN text", CRLF each): `code` is the three-digit
// code, `enhanced` the RFC 3463 enhanced code at the start of the last line's text ("5.7.1"), or
// "" when there is none. Lines that are not replies are skipped.
template <typename Fn>
void ForEachReply(std::string_view replies, Fn&& fn);

// The enhanced status code at the start of `text` ("5.7.1 Relay denied" -> "5.7.1"): class digit
// 2, 4 or 5, subject 1-3 digits, detail 1-3 digits, then a space or the end; "" otherwise.
std::string_view EnhancedCodeOf(std::string_view text);

template <typename Fn>
void ForEachReply(std::string_view replies, Fn&& fn) {
  while (!replies.empty()) {
    size_t eol = replies.find('\n');
    std::string_view line = replies.substr(0, eol);
    replies.remove_prefix(eol == std::string_view::npos ? replies.size() : eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9') {
      continue;
    }
    if (line.size() > 3 && line[3] == '-') continue;  // not the last line of its reply
    if (line.size() > 3 && line[3] != ' ') continue;
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    fn(code, EnhancedCodeOf(line.size() > 4 ? line.substr(4) : std::string_view()));
  }
}

}  // namespace ringmx::core

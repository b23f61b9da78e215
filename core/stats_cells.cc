#include "core/stats_cells.h"

namespace ringmx::core {

uint64_t HistogramData::count() const {
  uint64_t n = 0;
  for (uint64_t b : buckets) n += b;
  return n;
}

void HistogramData::Merge(const HistogramData& other) {
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
  sum_us += other.sum_us;
}

void HistogramCell::Observe(uint64_t micros) {
  size_t i = 0;
  while (i < kHistogramBounds && micros > bounds_[i]) ++i;
  Bump(buckets_[i]);
  Bump(sum_us_, micros);
}

HistogramData HistogramCell::Read() const {
  HistogramData data;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    data.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
  }
  data.sum_us = sum_us_.load(std::memory_order_relaxed);
  return data;
}

std::string_view EnhancedCodeOf(std::string_view text) {
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') {
    return {};
  }
  // Digits of one part from `pos`: 1-3 of them; returns the position after, or npos.
  auto digits = [&](size_t pos) -> size_t {
    size_t end = pos;
    while (end < text.size() && end - pos < 4 && text[end] >= '0' && text[end] <= '9') ++end;
    return end == pos || end - pos > 3 ? std::string_view::npos : end;
  };
  const size_t subject_end = digits(2);
  if (subject_end == std::string_view::npos || subject_end >= text.size() ||
      text[subject_end] != '.') {
    return {};
  }
  const size_t detail_end = digits(subject_end + 1);
  if (detail_end == std::string_view::npos) return {};
  if (detail_end < text.size() && text[detail_end] != ' ') return {};
  return text.substr(0, detail_end);
}

}  // namespace ringmx::core

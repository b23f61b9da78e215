#include "core/queue/scan.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/queue/log_format.h"

namespace ringmx::core::queue {
namespace {

bool AllZero(std::string_view bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](char c) { return c == 0; });
}

}  // namespace

ScanResult ScanSegment(std::string_view segment_bytes,
                       const std::function<void(const Frame&, uint64_t offset)>& visit) {
  ScanResult result;
  const std::string_view bytes = segment_bytes;
  const size_t magic_bytes = std::min(bytes.size(), kSegmentMagic.size());
  if (bytes.substr(0, magic_bytes) != kSegmentMagic.substr(0, magic_bytes)) {
    result.bad_segment_magic = true;
    return result;
  }
  const std::optional<SegmentKey> key = ParseSegmentHeader(bytes);
  if (!key.has_value()) {  // shorter than the header, and starts like one
    result.torn_tail_bytes = bytes.size();
    if (!bytes.empty()) result.torn_tail_what = "segment header cut short";
    return result;
  }
  result.key = *key;

  // The record magic as it lies on disk (little-endian).
  char magic_chars[4];
  memcpy(magic_chars, &key->record_magic, 4);
  const std::string_view magic(magic_chars, 4);
  size_t pos = kSegmentHeaderSize;
  result.good_end = pos;
  Frame frame;
  while (pos < bytes.size()) {
    const FrameProblem problem = CheckFrame(bytes.substr(pos), *key, frame);
    if (problem == FrameProblem::kNone) {
      visit(frame, pos);
      ++result.records;
      pos += frame.size;
      result.good_end = pos;
      continue;
    }
    // Resynchronise: the next record magic whose frame checks. A damaged length can make the bad
    // record look longer or shorter than it was, so every later magic is a candidate.
    size_t next = bytes.find(magic, pos + 1);
    while (next != std::string_view::npos &&
           CheckFrame(bytes.substr(next), *key, frame) != FrameProblem::kNone) {
      next = bytes.find(magic, next + 1);
    }
    if (next == std::string_view::npos) {
      result.torn_tail_bytes = bytes.size() - pos;
      result.torn_tail_what =
          AllZero(bytes.substr(pos)) ? "zeros" : std::string(FrameProblemName(problem));
      break;
    }
    result.damage.push_back(Damage{pos, next - pos, std::string(FrameProblemName(problem))});
    pos = next;  // `frame` holds the record there: visit it without checking it again.
    visit(frame, pos);
    ++result.records;
    pos += frame.size;
    result.good_end = pos;
  }
  return result;
}

}  // namespace ringmx::core::queue

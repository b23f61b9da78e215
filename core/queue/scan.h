// Recovery scan of one segment's bytes (DESIGN.md section 6): walks the records in order, hands
// each good one to a visitor, reports damaged ones and skips them (resynchronising on the next
// record magic whose CRC checks), and tells a torn tail (the bytes after the last good record do
// not hold a whole good record) from damage in the middle. Pure: the caller reads the file.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/queue/log_format.h"

namespace ringmx::core::queue {

struct Damage {
  uint64_t offset = 0;  // where the bad bytes start
  uint64_t size = 0;    // bytes skipped up to the next good record (or the end)
  std::string what;     // "crc mismatch", "bad magic", "length too large", "unknown type"
};

struct ScanResult {
  bool bad_segment_magic = false;  // the file does not start with kSegmentMagic: nothing read
  uint64_t records = 0;
  uint64_t good_end = 0;         // offset just past the last good record
  uint64_t torn_tail_bytes = 0;  // bytes after good_end that are not a whole record
  std::vector<Damage> damage;    // damaged stretches before good_end
};

// Calls `visit(frame, offset)` for each good record of `segment_bytes` (a whole segment file,
// kSegmentMagic first), in order.
ScanResult ScanSegment(std::string_view segment_bytes,
                       const std::function<void(const Frame&, uint64_t offset)>& visit);

}  // namespace ringmx::core::queue

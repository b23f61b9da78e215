// Recovery scan of one segment's bytes (DESIGN.md section 6): walks the records in order, hands
// each good one to a visitor, reports damaged ones and skips them (resynchronising on the next
// record magic of the segment's key whose CRC checks), and tells a torn tail (the bytes after the
// last good record do not hold a whole good record) from damage in the middle. Pure: the caller
// reads the file.
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
  // FrameProblemName() of the bad record: "crc mismatch", "bad magic", "length too large",
  // "unknown type", or "incomplete record" (its length runs past the end of the segment).
  std::string what;
};

struct ScanResult {
  bool bad_segment_magic = false;  // the file does not start with kSegmentMagic: nothing read
  SegmentKey key;                  // from the segment header, when the segment has a whole one
  uint64_t records = 0;
  uint64_t good_end = 0;         // offset just past the last good record
  uint64_t torn_tail_bytes = 0;  // bytes after good_end that are not a whole record
  std::vector<Damage> damage;    // damaged stretches before good_end
  // Why the tail is not a record, when torn_tail_bytes > 0: "zeros" (a preallocated or unwritten
  // tail), "segment header cut short", or the problem of the record at good_end
  // (FrameProblemName(): "incomplete record", "crc mismatch", ...).
  std::string torn_tail_what;
};

// Calls `visit(frame, offset)` for each good record of `segment_bytes` (a whole segment file, its
// header first), in order. `frame` views `segment_bytes`. Records are checked against the key in
// the segment's header.
//
// Accounting: unless bad_segment_magic, good_end + torn_tail_bytes == segment_bytes.size(), and
// the visited records and the damage stretches tile [kSegmentHeaderSize, good_end) in order.
// A segment shorter than kSegmentHeaderSize that starts like one (its first bytes are a prefix of
// kSegmentMagic, or all of it: a file created but not yet written, empty included) is a torn tail
// with good_end 0, not bad magic. With bad_segment_magic nothing is visited and good_end ==
// torn_tail_bytes == 0.
//
// Damage is found by resynchronising: after a bad record the scan looks for the next place where
// the segment's record magic starts a frame that decodes kOk with the segment's key. Records
// framed for another key (a record embedded in a message body, or copied from another segment)
// are never found. If there is none, the bytes from the bad record on are the torn tail (nothing
// is ever appended to a segment after a restart).
ScanResult ScanSegment(std::string_view segment_bytes,
                       const std::function<void(const Frame&, uint64_t offset)>& visit);

}  // namespace ringmx::core::queue

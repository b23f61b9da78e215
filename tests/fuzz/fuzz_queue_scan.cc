// Fuzz target: the recovery scan (core/queue/scan.h) and replay into an Index
// (core/queue/index.h). The scan must never crash, must account for every byte (records and
// damage tile the segment up to good_end, the torn tail is the rest), must hand out only frames
// that decode, and must leave no good record in what it calls the torn tail. The index fed every
// good record must keep its promises (no message whose recipients are all final, pins no older
// than the messages need).
//
// Records framed for another segment key (kind 10) are damage to the scan, never records.
//
// Input: [mode] then bytes.
//   mode bit 0 clear: the bytes are a segment after its kSegmentMagic (which is prepended): the
//                     segment key (u32 record magic, u32 CRC mask) and the records;
//   mode bit 0 set:   [u32 record magic][u32 CRC mask], the segment key, then a script that builds
//                     the segment from chunks, so that the scan sees good records (a CRC is
//                     rarely right by chance) mixed with damage: [kind] then the kind's fields,
//                     see Build().
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/queue/index.h"
#include "core/queue/log_format.h"
#include "core/queue/scan.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

namespace q = core::queue;

std::string Id(FuzzInput& in) {
  std::string id = "ID";
  id.push_back(static_cast<char>('0' + in.Byte() % 4));
  return id;
}

q::RecipientStatus Status(FuzzInput& in) {
  q::RecipientStatus s;
  s.state = static_cast<q::RecipientState>(in.Byte() % 4);
  s.attempts = in.Byte();
  s.next_attempt_us = in.U16();
  s.at_us = in.U16();
  s.reply = std::string(in.Bytes(in.Byte() % 8));
  return s;
}

q::SegmentKey Key(FuzzInput& in) {
  const std::string_view bytes = in.Bytes(8);
  char raw[8] = {};
  memcpy(raw, bytes.data(), bytes.size());
  q::SegmentKey key;
  memcpy(&key.record_magic, raw, 4);
  memcpy(&key.crc_mask, raw + 4, 4);
  return key;
}

// Builds a segment from a script. `clean` stays true while only whole good records were added.
std::string Build(FuzzInput& in, bool& clean, size_t& good_records) {
  const q::SegmentKey key = Key(in);
  std::string seg = q::EncodeSegmentHeader(key);
  clean = true;
  good_records = 0;
  while (!in.empty() && seg.size() < (1u << 20)) {
    const uint8_t kind = in.Byte() % 11;
    switch (kind) {
      case 0: {  // kMessage
        const std::string id = Id(in);
        const uint8_t shape = in.Byte();
        std::vector<std::string> rcpts(1 + shape % 3);
        for (size_t i = 0; i < rcpts.size(); ++i) {
          rcpts[i] = "r@x";
          rcpts[i][0] = static_cast<char>('a' + i);
        }
        q::MessageHeader h;
        h.id = id;
        h.received_us = in.U16();
        h.sender = "s@x";
        for (const std::string& r : rcpts) h.recipients.push_back(r);
        h.envelope_json = "{}";
        h.trace_headers = "Received: x\r\n";
        h.fragments = (shape >> 2) % 3;
        const std::string tail(in.Bytes(in.Byte()));
        h.body_size = tail.size() + h.fragments * 3;
        if ((shape & 0x20) != 0) {
          h.flags = q::kMessageFlagRelocated;
          h.held = (shape & 0x40) != 0;
          for (size_t i = 0; i < rcpts.size(); ++i) h.states.push_back(Status(in));
        }
        seg += q::EncodeMessagePrefix(h, tail, key) + tail;
        ++good_records;
        break;
      }
      case 1: {  // kFragment
        const std::string id = Id(in);
        const uint32_t index = in.Byte() % 4;
        const std::string bytes(in.Bytes(in.Byte()));
        seg += q::EncodeFragmentPrefix(id, index, bytes, key) + bytes;
        ++good_records;
        break;
      }
      case 2:
        seg += q::EncodeAbort(Id(in), key);
        ++good_records;
        break;
      case 3: {
        const std::string id = Id(in);
        const uint32_t rcpt = in.Byte() % 4;
        seg += q::EncodeRecipientState(id, rcpt, Status(in), key);
        ++good_records;
        break;
      }
      case 4: {
        const std::string id = Id(in);
        seg += q::EncodeMessageOp(id, static_cast<q::MessageOp>(1 + in.Byte() % 3), in.U16(), key);
        ++good_records;
        break;
      }
      case 5:  // raw bytes
        seg += in.ShortString();
        clean = false;
        break;
      case 6: {  // flip a bit somewhere after the segment header
        const size_t at = in.U16();
        const uint8_t bit = in.Byte() % 8;
        if (seg.size() > q::kSegmentHeaderSize) {
          const size_t i = q::kSegmentHeaderSize + at % (seg.size() - q::kSegmentHeaderSize);
          seg[i] = static_cast<char>(seg[i] ^ (1 << bit));
          clean = false;
        }
        break;
      }
      case 7:  // zeros, as a preallocated tail leaves
        seg.append(in.Byte() * size_t{16}, '\0');
        clean = false;
        break;
      case 8: {  // cut the segment (a torn write)
        const size_t keep = q::kSegmentHeaderSize + in.U16();
        if (keep < seg.size()) {
          seg.resize(keep);
          clean = false;
        }
        break;
      }
      case 9: {  // a lone record magic, a false resynchronisation point
        char magic[4];
        memcpy(magic, &key.record_magic, 4);
        seg.append(magic, 4);
        clean = false;
        break;
      }
      case 10: {  // a record framed for another key (forged in a body, or from another segment)
        const uint8_t which = in.Byte();
        const q::SegmentKey other{key.record_magic ^ ((which & 1) != 0 ? 0u : 0x01000000u),
                                  key.crc_mask ^ (1u + which)};
        const std::string id = Id(in);
        seg += q::EncodeMessageOp(id, q::MessageOp::kDelete, in.U16(), other);
        clean = false;
        break;
      }
    }
  }
  return seg;
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx::fuzz;
  namespace q = ringmx::core::queue;
  FuzzInput in(data, size);
  const uint8_t mode = in.Byte();
  bool clean = false;
  size_t good_records = 0;
  std::string seg;
  if ((mode & 1) != 0) {
    seg = Build(in, clean, good_records);
  } else {
    seg = std::string(q::kSegmentMagic) + std::string(in.Rest());
  }
  const std::optional<q::SegmentKey> key = q::ParseSegmentHeader(seg);
  const uint64_t segment = 1 + (mode >> 1) % 4;

  q::Index index;
  // A segment cut inside its header is all torn tail: nothing is visited, good_end is 0.
  uint64_t pos = key.has_value() ? q::kSegmentHeaderSize : 0;
  size_t visits = 0;
  std::vector<std::pair<uint64_t, uint64_t>> visited;  // offset, size
  const q::ScanResult r = q::ScanSegment(seg, [&](const q::Frame& frame, uint64_t offset) {
    ++visits;
    RINGMX_CHECK(offset + frame.size <= seg.size());
    RINGMX_CHECK(frame.payload.data() == seg.data() + offset + q::kRecordHeaderSize);
    q::Frame again;
    RINGMX_CHECK(key.has_value());
    RINGMX_CHECK(q::DecodeFrame(std::string_view(seg).substr(offset), *key, again) ==
                 q::FrameResult::kOk);
    RINGMX_CHECK(again.size == frame.size);
    visited.emplace_back(offset, frame.size);
    index.Apply(frame, q::Location{segment, offset, frame.size});
  });
  index.FinishReplay();

  RINGMX_CHECK(!r.bad_segment_magic);  // the magic is always there
  RINGMX_CHECK(key.has_value() ? r.key == *key : r.records == 0 && r.good_end == 0);
  RINGMX_CHECK(r.records == visits);
  RINGMX_CHECK(r.good_end + r.torn_tail_bytes == seg.size());
  RINGMX_CHECK((r.torn_tail_bytes == 0) == r.torn_tail_what.empty());
  // Records and damage tile [magic, good_end) in order.
  size_t d = 0;
  for (const auto& [offset, frame_size] : visited) {
    while (d < r.damage.size() && r.damage[d].offset == pos) {
      RINGMX_CHECK(r.damage[d].size > 0 && !r.damage[d].what.empty());
      pos += r.damage[d++].size;
    }
    RINGMX_CHECK(offset == pos);
    pos += frame_size;
  }
  RINGMX_CHECK(d == r.damage.size());
  RINGMX_CHECK(pos == r.good_end);
  // No good record starts in the torn tail.
  if (key.has_value()) {
    char magic_chars[4];
    memcpy(magic_chars, &key->record_magic, 4);
    const std::string_view magic(magic_chars, 4);
    const std::string_view tail = std::string_view(seg).substr(r.good_end);
    for (size_t at = tail.find(magic); at != std::string_view::npos;
         at = tail.find(magic, at + 1)) {
      q::Frame f;
      RINGMX_CHECK(q::DecodeFrame(tail.substr(at), *key, f) != q::FrameResult::kOk);
    }
  }
  if (clean) {
    RINGMX_CHECK(r.damage.empty() && r.torn_tail_bytes == 0 && r.records == good_records);
  }

  // The index.
  const q::ReplayStats& stats = index.stats();
  RINGMX_CHECK(stats.records == r.records);
  RINGMX_CHECK(stats.messages + stats.malformed <= stats.records);
  const auto list = index.List();
  RINGMX_CHECK(list.size() == index.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const q::QueuedMessage* m = list[i];
    RINGMX_CHECK(index.Find(m->id) == m);
    RINGMX_CHECK(!m->AllFinal());
    RINGMX_CHECK(m->record.segment == segment && m->first_segment == segment);
    RINGMX_CHECK(m->record.offset + m->record.size <= r.good_end);
    if (i > 0) RINGMX_CHECK(list[i - 1]->id < m->id);
  }
  RINGMX_CHECK(index.OldestNeededSegment(segment + 1) == (list.empty() ? segment + 1 : segment));
  return 0;
}

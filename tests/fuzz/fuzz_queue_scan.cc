// Fuzz target: the recovery scan (core/queue/scan.h) and replay into an Index
// (core/queue/index.h). The scan must never crash, must account for every byte (records and
// damage tile the segment up to good_end, the torn tail is the rest), must hand out only frames
// that decode, and must leave no good record in what it calls the torn tail. The index fed every
// good record must keep its promises (no message whose recipients are all final, pins no older
// than the messages need).
//
// Input: [mode] then bytes.
//   mode bit 0 clear: the bytes are a segment's records (kSegmentMagic is prepended);
//   mode bit 0 set:   the bytes are a script that builds the segment from chunks, so that the
//                     scan sees good records (a CRC is rarely right by chance) mixed with damage:
//                     [kind] then the kind's fields, see Build().
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <algorithm>
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

// Builds a segment from a script. `clean` stays true while only whole good records were added.
std::string Build(FuzzInput& in, bool& clean, size_t& good_records) {
  std::string seg(q::kSegmentMagic);
  clean = true;
  good_records = 0;
  while (!in.empty() && seg.size() < (1u << 20)) {
    const uint8_t kind = in.Byte() % 10;
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
        seg += q::EncodeMessagePrefix(h, tail) + tail;
        ++good_records;
        break;
      }
      case 1: {  // kFragment
        const std::string id = Id(in);
        const uint32_t index = in.Byte() % 4;
        const std::string bytes(in.Bytes(in.Byte()));
        seg += q::EncodeFragmentPrefix(id, index, bytes) + bytes;
        ++good_records;
        break;
      }
      case 2:
        seg += q::EncodeAbort(Id(in));
        ++good_records;
        break;
      case 3: {
        const std::string id = Id(in);
        const uint32_t rcpt = in.Byte() % 4;
        seg += q::EncodeRecipientState(id, rcpt, Status(in));
        ++good_records;
        break;
      }
      case 4: {
        const std::string id = Id(in);
        seg += q::EncodeMessageOp(id, static_cast<q::MessageOp>(1 + in.Byte() % 3), in.U16());
        ++good_records;
        break;
      }
      case 5:  // raw bytes
        seg += in.ShortString();
        clean = false;
        break;
      case 6: {  // flip a bit somewhere after the segment magic
        const size_t at = in.U16();
        const uint8_t bit = in.Byte() % 8;
        if (seg.size() > q::kSegmentMagic.size()) {
          const size_t i = q::kSegmentMagic.size() + at % (seg.size() - q::kSegmentMagic.size());
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
        const size_t keep = q::kSegmentMagic.size() + in.U16();
        if (keep < seg.size()) {
          seg.resize(keep);
          clean = false;
        }
        break;
      }
      case 9:  // a lone record magic, a false resynchronisation point
        seg += "RMXQ";
        clean = false;
        break;
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
  const uint64_t segment = 1 + (mode >> 1) % 4;

  q::Index index;
  uint64_t pos = q::kSegmentMagic.size();
  size_t visits = 0;
  std::vector<std::pair<uint64_t, uint64_t>> visited;  // offset, size
  const q::ScanResult r = q::ScanSegment(seg, [&](const q::Frame& frame, uint64_t offset) {
    ++visits;
    RINGMX_CHECK(offset + frame.size <= seg.size());
    RINGMX_CHECK(frame.payload.data() == seg.data() + offset + q::kRecordHeaderSize);
    q::Frame again;
    RINGMX_CHECK(q::DecodeFrame(std::string_view(seg).substr(offset), again) ==
                 q::FrameResult::kOk);
    RINGMX_CHECK(again.size == frame.size);
    visited.emplace_back(offset, frame.size);
    index.Apply(frame, q::Location{segment, offset, frame.size});
  });
  index.FinishReplay();

  RINGMX_CHECK(!r.bad_segment_magic);  // the magic is always there
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
  const std::string_view tail = std::string_view(seg).substr(r.good_end);
  for (size_t at = tail.find("RMXQ"); at != std::string_view::npos;
       at = tail.find("RMXQ", at + 1)) {
    q::Frame f;
    RINGMX_CHECK(q::DecodeFrame(tail.substr(at), f) != q::FrameResult::kOk);
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

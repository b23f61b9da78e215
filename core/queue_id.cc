#include "core/queue_id.h"

namespace ringmx::core {
namespace {

constexpr uint32_t kSequenceLimit = uint32_t{1} << 30;          // 6 base-32 digits
constexpr char kDigits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";  // base 32

void AppendBase32(std::string& out, uint64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out.push_back(kDigits[(value >> (5 * i)) & 31]);
  }
}

}  // namespace

void QueueIdGenerator::SetSequenceForTest(absl::Time now, uint32_t sequence) {
  last_usec_ = absl::ToUnixMicros(now);
  sequence_ = sequence;
}

std::string QueueIdGenerator::Next(absl::Time now) {
  int64_t usec = absl::ToUnixMicros(now);
  // Never go backwards within a process, so (usec, sequence) stays unique if the clock steps back.
  if (usec < last_usec_) usec = last_usec_;
  if (usec != last_usec_) sequence_ = 0;
  // The sequence has 30 bits. Should one microsecond run out (it can when the clock stepped back
  // and stays pinned to `last_usec_` for a long while), borrow the next microsecond rather than
  // wrap around onto ids already handed out.
  if (sequence_ >= kSequenceLimit) {
    ++usec;
    sequence_ = 0;
  }
  last_usec_ = usec;
  std::string id;
  id.reserve(20);
  AppendBase32(id, static_cast<uint64_t>(usec), 11);  // 55 bits: good until year 3111
  AppendBase32(id, shard_index_, 3);                  // up to 32768 shards
  AppendBase32(id, sequence_++, 6);                   // 2^30 ids per shard per microsecond
  return id;
}

}  // namespace ringmx::core

// Client input that waits for the session: the rest of a receive that the session could not take
// yet (it waits for the store to write a piece of a message, for a check or a milter, or reading
// is paused). Where those bytes lie in one of the shard's receive buffers they stay there: the
// buffer is kept out of the ring until the session has taken them, so a held body byte is still
// copied only once, by the session's decoder. Where they do not (TLS in userspace hands over
// OpenSSL's plaintext), or the caps are reached, they are copied here once, as before.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "net/buffer_ring.h"

namespace ringmx::net {

// Shard-local. Owned by one Connection; gives every buffer it holds back to `ring` when cleared
// or destroyed, so it must not outlive the ring (the Shard destroys its connections first).
class HeldInput {
 public:
  // Receive buffers one connection may hold at once (besides the ring's shard-wide cap, which is
  // what keeps the other connections supplied): 32 x 16 KiB. While a message streams in the
  // connection reads one receive at a time, so one buffer is the usual case; the rest covers the
  // burst a multishot receive can deliver in one batch before its cancel lands, when the client
  // did not announce SIZE= (512 KiB held by one kernel-TLS session in the VM count, RESULTS.md).
  static constexpr size_t kMaxBuffers = 32;

  explicit HeldInput(BufferRing& ring) : ring_(ring) {}
  ~HeldInput() { Clear(); }
  HeldInput(const HeldInput&) = delete;
  HeldInput& operator=(const HeldInput&) = delete;

  // Keeps `bytes` after whatever is held already. `buffer` is the receive buffer of the completion
  // being handled, if any. When `bytes` lie inside it, this object holds fewer than kMaxBuffers
  // buffers, does not hold that one already and the ring allows another (BufferRing::TryHold),
  // the buffer is kept out of the ring and true is returned: the caller must not recycle it.
  // Otherwise the bytes are copied and false is returned.
  bool Hold(std::string_view bytes, std::optional<uint16_t> buffer);

  bool empty() const { return size_ == 0; }
  // Bytes held now.
  size_t size() const { return size_; }
  // The oldest held bytes: one piece (more may follow). Valid until the next call that changes
  // this object. Empty when nothing is held.
  std::string_view Front() const;
  // Drops the first `n` bytes of Front() (n <= Front().size()); a buffer whose bytes are all
  // taken goes back to the ring.
  void Consume(size_t n);
  // Drops everything and gives every buffer back to the ring.
  void Clear();

  // Receive buffers held now.
  size_t buffers() const { return buffers_; }
  // Totals since construction: bytes kept in their receive buffer, and bytes copied.
  uint64_t held_in_place_bytes() const { return in_place_bytes_; }
  uint64_t copied_bytes() const { return copied_bytes_; }

 private:
  struct Piece {
    // The receive buffer `bytes` lie in; none: `bytes` lie in `copy`, from `copy_offset` on.
    std::optional<uint16_t> buffer;
    std::string_view bytes;
    std::string copy;
    size_t copy_offset = 0;
  };

  BufferRing& ring_;
  // Oldest first. Invariant: no piece is empty; at most kMaxBuffers have a buffer.
  std::deque<Piece> pieces_;
  size_t size_ = 0;
  size_t buffers_ = 0;
  uint64_t in_place_bytes_ = 0;
  uint64_t copied_bytes_ = 0;
};

}  // namespace ringmx::net

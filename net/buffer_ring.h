// A provided-buffer ring (IORING_REGISTER_PBUF_RING): the kernel picks a free buffer for each
// multishot recv completion, so idle connections hold no receive buffer at all. A buffer whose
// bytes must wait (the session cannot take them yet) may be kept out of the ring instead of being
// copied (net/held_input.h); the ring bounds how many are kept so, so that the kernel always has
// buffers left for the other connections.
#pragma once

#include <stdint.h>

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include <liburing.h>

namespace ringmx::net {

// Shard-local. Lives as long as its ring.
class BufferRing {
 public:
  // `count` must be a power of two. At most a quarter of the buffers may be held at once
  // (TryHold).
  static absl::StatusOr<std::unique_ptr<BufferRing>> Create(io_uring* ring, uint16_t group_id,
                                                            uint32_t count, uint32_t buffer_size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  uint16_t group_id() const { return group_id_; }
  // The bytes of buffer `id` as filled by a completion of `length` bytes.
  std::string_view View(uint16_t id, uint32_t length) const {
    return std::string_view(base_ + static_cast<size_t>(id) * buffer_size_, length);
  }
  // Gives buffer `id` back to the kernel. Call once the bytes have been consumed.
  void Recycle(uint16_t id);

  // Holding: a buffer kept out of the ring after its completion, because part of its bytes
  // waits for the session. TryHold() counts one more held buffer and says true, or says false
  // when max_held() are held already (the caller copies the bytes and recycles the buffer).
  // ReleaseHeld() gives a held buffer back to the kernel and counts it off.
  bool TryHold();
  void ReleaseHeld(uint16_t id);
  // Buffers held now, and the shard-wide cap (a quarter of the ring: connections waiting for the
  // store can never take the buffers the others receive into).
  uint32_t held() const { return held_; }
  uint32_t max_held() const { return max_held_; }
  uint32_t count() const { return count_; }
  uint32_t buffer_size() const { return buffer_size_; }
  // True when `bytes` lie inside buffer `id`.
  bool Contains(uint16_t id, std::string_view bytes) const {
    const char* begin = base_ + static_cast<size_t>(id) * buffer_size_;
    return id < count_ && bytes.data() >= begin &&
           bytes.data() + bytes.size() <= begin + buffer_size_;
  }

 private:
  BufferRing() = default;
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  char* base_ = nullptr;
  uint16_t group_id_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_size_ = 0;
  size_t ring_bytes_ = 0;
  // Buffers out of the ring by TryHold(), not yet ReleaseHeld(); at most max_held_.
  uint32_t held_ = 0;
  uint32_t max_held_ = 0;
};

}  // namespace ringmx::net

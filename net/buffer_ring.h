// A provided-buffer ring (IORING_REGISTER_PBUF_RING): the kernel picks a free buffer for each
// multishot recv completion, so idle connections hold no receive buffer at all.
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
  // `count` must be a power of two.
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

 private:
  BufferRing() = default;
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  char* base_ = nullptr;
  uint16_t group_id_ = 0;
  uint32_t count_ = 0;
  uint32_t buffer_size_ = 0;
  size_t ring_bytes_ = 0;
};

}  // namespace ringmx::net

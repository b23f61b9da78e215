#include "net/buffer_ring.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/status.h"

namespace ringmx::net {

absl::StatusOr<std::unique_ptr<BufferRing>> BufferRing::Create(io_uring* ring, uint16_t group_id,
                                                               uint32_t count,
                                                               uint32_t buffer_size) {
  std::unique_ptr<BufferRing> br(new BufferRing());
  br->ring_ = ring;
  br->group_id_ = group_id;
  br->count_ = count;
  br->buffer_size_ = buffer_size;
  br->max_held_ = count / 4;
  br->ring_bytes_ = count * sizeof(io_uring_buf);
  void* mem =
      mmap(nullptr, br->ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) return core::ErrnoStatus(errno, "mmap buffer ring");
  br->br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg;
  memset(&reg, 0, sizeof(reg));
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {
    munmap(mem, br->ring_bytes_);
    br->br_ = nullptr;
    return core::ErrnoStatus(-rc, "io_uring_register_buf_ring");
  }
  // Buffers are touched only when the kernel fills them, so unused ones cost no resident memory.
  void* buffers = mmap(nullptr, static_cast<size_t>(count) * buffer_size, PROT_READ | PROT_WRITE,
                       MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (buffers == MAP_FAILED) return core::ErrnoStatus(errno, "mmap receive buffers");
  br->base_ = static_cast<char*>(buffers);
  io_uring_buf_ring_init(br->br_);
  const int mask = io_uring_buf_ring_mask(count);
  for (uint32_t i = 0; i < count; ++i) {
    io_uring_buf_ring_add(br->br_, br->base_ + static_cast<size_t>(i) * buffer_size, buffer_size,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(br->br_, static_cast<int>(count));
  return br;
}

BufferRing::~BufferRing() {
  if (br_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
    munmap(br_, ring_bytes_);
  }
  if (base_ != nullptr) munmap(base_, static_cast<size_t>(count_) * buffer_size_);
}

void BufferRing::Recycle(uint16_t id) {
  io_uring_buf_ring_add(br_, base_ + static_cast<size_t>(id) * buffer_size_, buffer_size_, id,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(br_, 1);
}

bool BufferRing::TryHold() {
  if (held_ >= max_held_) return false;
  ++held_;
  return true;
}

void BufferRing::ReleaseHeld(uint16_t id) {
  --held_;
  Recycle(id);
}

}  // namespace ringmx::net

// A message body, or one piece of it, as a chain of blocks. The DATA/BDAT decoder copies each body
// octet once into the last block; a block is allocated once at its final size and never moved or
// regrown, so a body that grows past its first block gets a new block instead of a bigger buffer
// (which would copy everything received so far again). The store writes the blocks with one iovec
// each and computes the record's CRC across them (core/queue/log_format.h), so the bytes on disk
// are the same as for one contiguous buffer.
#pragma once

#include <stddef.h>

#include <string>
#include <string_view>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace ringmx::core {

// Shard-local (a plain value, moved between the session and the store on one shard).
class BodyBlocks {
 public:
  // Views of the blocks in order; no allocation for up to four blocks.
  using Views = absl::InlinedVector<std::string_view, 4>;

  BodyBlocks() = default;
  // One block holding `bytes` (moved, not copied): a body made in one piece (a DSN, a milter's
  // replacement body, a test).
  BodyBlocks(std::string bytes);  // NOLINT(google-explicit-constructor): a body is its bytes
  BodyBlocks& operator=(std::string bytes);
  BodyBlocks(BodyBlocks&&) noexcept = default;
  BodyBlocks& operator=(BodyBlocks&&) noexcept = default;
  BodyBlocks(const BodyBlocks&) = default;
  BodyBlocks& operator=(const BodyBlocks&) = default;

  // Octets in all blocks.
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t block_count() const { return blocks_.size(); }
  std::string_view block(size_t i) const { return blocks_[i]; }
  // The non-empty blocks in order. The views stay valid while this chain is not changed (moving
  // the chain keeps them valid only for blocks on the heap, which every block the decoder makes
  // is).
  Views views() const;

  // Octets the last block can still take without being moved; 0 without blocks.
  size_t room() const {
    return blocks_.empty() ? 0 : blocks_.back().capacity() - blocks_.back().size();
  }
  // Starts a new last block with room for exactly `capacity` octets (capacity > 0).
  void AddBlock(size_t capacity);
  // Copies `n` octets into the last block; `n` <= room() (checked).
  void AppendToLast(const char* data, size_t n);
  // Appends `bytes` as a new block of its own (moved, not copied); nothing if empty.
  void AppendBlock(std::string bytes);

  // The whole body in one string (a copy): for tests and readers that need it contiguous.
  std::string Flatten() const;
  // Drops every block and frees their memory.
  void clear();
  // Heap bytes held by the blocks (their capacities).
  size_t capacity() const;
  // Whether the blocks hold exactly `bytes`, wherever the block boundaries fall.
  friend bool operator==(const BodyBlocks& blocks, std::string_view bytes);

  // Capacity of the last block (0 without blocks).
  size_t last_block_capacity() const { return blocks_.empty() ? 0 : blocks_.back().capacity(); }

 private:
  absl::InlinedVector<std::string, 1> blocks_;
  size_t size_ = 0;
};

}  // namespace ringmx::core

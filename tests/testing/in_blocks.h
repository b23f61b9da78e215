// Test helper: a body cut into random blocks, as a session's decoder hands bodies over.
#pragma once

#include <algorithm>
#include <random>
#include <string_view>

#include "core/body_blocks.h"

namespace ringmx::testing {

// `bytes` cut into blocks of 1..max_block octets, each allocated with 0..2 octets to spare (as
// the decoder's last block often has).
inline core::BodyBlocks InBlocks(std::string_view bytes, std::mt19937& rng, size_t max_block) {
  core::BodyBlocks blocks;
  while (!bytes.empty()) {
    const size_t n = std::min(bytes.size(), 1 + rng() % max_block);
    blocks.AddBlock(n + rng() % 3);
    blocks.AppendToLast(bytes.data(), n);
    bytes.remove_prefix(n);
  }
  return blocks;
}

}  // namespace ringmx::testing

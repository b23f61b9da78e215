#include "core/body_blocks.h"

#include "core/check.h"

namespace ringmx::core {

BodyBlocks::BodyBlocks(std::string bytes) { AppendBlock(std::move(bytes)); }

BodyBlocks& BodyBlocks::operator=(std::string bytes) {
  blocks_.clear();
  size_ = 0;
  AppendBlock(std::move(bytes));
  return *this;
}

BodyBlocks::Views BodyBlocks::views() const {
  Views out;
  for (const std::string& b : blocks_) {
    if (!b.empty()) out.push_back(b);
  }
  return out;
}

void BodyBlocks::AddBlock(size_t capacity) {
  RINGMX_CHECK(capacity > 0);
  std::string& block = blocks_.emplace_back();
  if (capacity < 2 * block.capacity()) {
    // libstdc++'s reserve() rounds a request below twice the inline capacity up to twice it; a
    // string constructed at a size is allocated exactly.
    block = std::string(capacity, '\0');
    block.clear();
  } else {
    block.reserve(capacity);
  }
}

void BodyBlocks::AppendToLast(const char* data, size_t n) {
  RINGMX_CHECK(n <= room());
  if (n == 0) return;
  blocks_.back().append(data, n);  // within its capacity: never moves
  size_ += n;
}

void BodyBlocks::AppendBlock(std::string bytes) {
  if (bytes.empty()) return;
  size_ += bytes.size();
  blocks_.push_back(std::move(bytes));
}

std::string BodyBlocks::Flatten() const {
  std::string out;
  out.reserve(size_);
  for (const std::string& b : blocks_) out.append(b);
  return out;
}

bool operator==(const BodyBlocks& blocks, std::string_view bytes) {
  if (blocks.size_ != bytes.size()) return false;
  for (const std::string& b : blocks.blocks_) {
    if (bytes.substr(0, b.size()) != std::string_view(b)) return false;
    bytes.remove_prefix(b.size());
  }
  return true;
}

void BodyBlocks::clear() {
  decltype(blocks_)().swap(blocks_);
  size_ = 0;
}

size_t BodyBlocks::capacity() const {
  const size_t inline_capacity = std::string().capacity();
  size_t bytes = 0;
  for (const std::string& b : blocks_) {
    if (b.capacity() > inline_capacity) bytes += b.capacity();
  }
  return bytes;
}

}  // namespace ringmx::core

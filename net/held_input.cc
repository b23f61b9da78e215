#include "net/held_input.h"

namespace ringmx::net {

bool HeldInput::Hold(std::string_view bytes, std::optional<uint16_t> buffer) {
  if (bytes.empty()) return false;
  size_ += bytes.size();
  bool in_place = buffer.has_value() && buffers_ < kMaxBuffers && ring_.Contains(*buffer, bytes);
  for (const Piece& piece : pieces_) {
    if (in_place && piece.buffer == buffer) in_place = false;  // one reference per buffer
  }
  if (in_place && ring_.TryHold()) {
    Piece& piece = pieces_.emplace_back();
    piece.buffer = buffer;
    piece.bytes = bytes;
    ++buffers_;
    in_place_bytes_ += bytes.size();
    return true;
  }
  // A copy: appended to the last piece when that is a copy too, so that many small pieces of
  // pipelined commands do not each cost a piece.
  copied_bytes_ += bytes.size();
  if (pieces_.empty() || pieces_.back().buffer.has_value()) pieces_.emplace_back();
  pieces_.back().copy.append(bytes);
  return false;
}

std::string_view HeldInput::Front() const {
  if (pieces_.empty()) return {};
  const Piece& piece = pieces_.front();
  if (piece.buffer.has_value()) return piece.bytes;
  return std::string_view(piece.copy).substr(piece.copy_offset);
}

void HeldInput::Consume(size_t n) {
  if (n == 0 || pieces_.empty()) return;
  Piece& piece = pieces_.front();
  size_ -= n;
  if (piece.buffer.has_value()) {
    piece.bytes.remove_prefix(n);
    if (!piece.bytes.empty()) return;
    ring_.ReleaseHeld(*piece.buffer);
    --buffers_;
  } else {
    piece.copy_offset += n;
    if (piece.copy_offset < piece.copy.size()) return;
  }
  pieces_.pop_front();
}

void HeldInput::Clear() {
  for (const Piece& piece : pieces_) {
    if (piece.buffer.has_value()) ring_.ReleaseHeld(*piece.buffer);
  }
  pieces_.clear();
  size_ = 0;
  buffers_ = 0;
}

}  // namespace ringmx::net

// Helpers shared by the fuzz targets in tests/fuzz/: a reader that turns the fuzzer's bytes into
// decisions and data, and reference implementations written independently of the code under test
// (RFC 3629 UTF-8), so a target can compare the two.
//
// Each target defines LLVMFuzzerTestOneInput. With RINGMX_FUZZ=ON it is linked with libFuzzer;
// in the normal build with replay_main.cc, which runs every file of the target's corpus through it
// (ctest fuzz_replay_<target>). A target reports a broken promise of the code under test with
// RINGMX_CHECK (core/check.h), which aborts: libFuzzer then saves the input as a crash.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

namespace ringmx::fuzz {

// Reads the fuzzer's input front to back. Past the end every read gives zeros or empty views, so a
// target never has to check the length. Stack-local.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const { return rest_.empty(); }
  size_t remaining() const { return rest_.size(); }

  uint8_t Byte() {
    if (rest_.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return b;
  }
  uint16_t U16() {
    const uint16_t hi = Byte();
    return static_cast<uint16_t>((hi << 8) | Byte());
  }
  bool Bool() { return (Byte() & 1) != 0; }

  // Up to `n` bytes (fewer at the end of the input).
  std::string_view Bytes(size_t n) {
    const std::string_view out = rest_.substr(0, n);
    rest_.remove_prefix(out.size());
    return out;
  }
  // A string of 0..255 bytes, its length in the first byte.
  std::string_view ShortString() { return Bytes(Byte()); }
  // Everything not read yet.
  std::string_view Rest() { return Bytes(rest_.size()); }

 private:
  std::string_view rest_;
};

// Length of the well-formed UTF-8 sequence at the start of `s` by the table of RFC 3629 section 4
// (the ranges of each byte, not a decoded code point), or 0 when it is not one.
size_t ReferenceUtf8Length(std::string_view s);

// True if all of `s` is well-formed UTF-8 (RFC 3629).
bool ReferenceIsUtf8(std::string_view s);

// `s` with every byte that does not start a well-formed UTF-8 sequence replaced by U+FFFD: the
// documented behaviour of core::AppendJsonString.
std::string ReferenceReplaceInvalidUtf8(std::string_view s);

}  // namespace ringmx::fuzz

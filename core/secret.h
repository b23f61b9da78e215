// Bytes that must not outlive their use: passwords on their way from the SASL codec
// (smtp/sasl.h) to the hash check (net/credentials.h). Every copy this file makes is zeroed when
// it is dropped, with explicit_bzero(3) so that the compiler cannot remove the wipe.
#pragma once

#include <stddef.h>

#include <memory>
#include <string>
#include <string_view>

namespace ringmx::core {

// Zeroes every byte `s` owns (its whole capacity, not only its size, so that the tail of a longer
// value it once held goes too), then empties it. The capacity is kept.
void WipeString(std::string& s);

// Zeroes `size` bytes at `data`; the compiler may not elide it.
void WipeBytes(void* data, size_t size);

// An owned, NUL-terminated byte string that is zeroed when destroyed or overwritten. Move-only:
// a move hands over the heap block itself, so no second copy is ever left behind (a moved
// std::string keeps short values in the source's inline buffer). Not thread-safe; a plain value
// that may move between threads.
class SecretString {
 public:
  SecretString() = default;
  // Copies `value` (which may hold NUL octets; c_str() then stops at the first one).
  explicit SecretString(std::string_view value);
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  SecretString(SecretString&& other) noexcept;
  SecretString& operator=(SecretString&& other) noexcept;
  ~SecretString() { Wipe(); }

  std::string_view view() const { return std::string_view(data_ ? data_.get() : "", size_); }
  // The bytes followed by a NUL (for C interfaces such as crypt(3)).
  const char* c_str() const { return data_ ? data_.get() : ""; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Zeroes and frees the bytes now; the value becomes empty.
  void Wipe();

 private:
  std::unique_ptr<char[]> data_;  // size_ + 1 bytes, the last one NUL; null when empty
  size_t size_ = 0;
};

}  // namespace ringmx::core

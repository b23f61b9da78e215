#include "core/secret.h"

#include <string.h>

#include <utility>

namespace ringmx::core {

void WipeBytes(void* data, size_t size) {
  if (data != nullptr && size > 0) explicit_bzero(data, size);
}

void WipeString(std::string& s) {
  // Writing up to capacity() through data() is allowed only within size(): grow the size first
  // (this never reallocates, the capacity is already there).
  s.resize(s.capacity());
  WipeBytes(s.data(), s.size());
  s.clear();
}

SecretString::SecretString(std::string_view value) : size_(value.size()) {
  if (value.empty()) return;
  data_ = std::make_unique<char[]>(value.size() + 1);
  memcpy(data_.get(), value.data(), value.size());
  data_[value.size()] = '\0';
}

SecretString::SecretString(SecretString&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

SecretString& SecretString::operator=(SecretString&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void SecretString::Wipe() {
  if (data_) WipeBytes(data_.get(), size_ + 1);
  data_.reset();
  size_ = 0;
}

}  // namespace ringmx::core

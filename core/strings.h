// Bridges std::string_view and absl::string_view. Debian 12's abseil is built with its own
// absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so absl::StrCat, absl::SimpleAtoi,
// Status messages and heterogeneous flat_hash_set lookups do not take a std::string_view directly.
#pragma once

#include <stddef.h>

#include <string_view>

#include "absl/strings/string_view.h"

namespace ringmx::core {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// ASCII-lower-cases `text` into `buffer` and returns the copy: the allocation-free key for a lookup
// in a table of lower-cased names (domains, local parts). At most `N` octets are copied; callers
// check lengths first, so a longer `text` (never expected) is cut, not overflowed.
template <size_t N>
std::string_view AsciiLowerInto(std::string_view text, char (&buffer)[N]) {
  const size_t n = text.size() < N ? text.size() : N;
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    buffer[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
  }
  return std::string_view(buffer, n);
}

}  // namespace ringmx::core

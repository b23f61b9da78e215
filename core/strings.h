// Bridges std::string_view and absl::string_view. Debian 12's abseil is built with its own
// absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so absl::StrCat, absl::SimpleAtoi,
// Status messages and heterogeneous flat_hash_set lookups do not take a std::string_view directly.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace ringmx::core {

inline absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view Sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace ringmx::core

// Reading a whole small file (a config, a passwd or recipients table) into memory, bounded.
#pragma once

#include <stddef.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ringmx::core {

// The bytes of the file at `path`. Errors: the ErrnoStatus of open/read, with `operation` (e.g.
// `read config file "/etc/ringmx.toml"`) as its message's start; kInvalidArgument
// "<operation>: larger than <max_bytes> bytes; is it the right file?" once the file passes
// `max_bytes`.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, std::string_view operation,
                                          size_t max_bytes);

}  // namespace ringmx::core

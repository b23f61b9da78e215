// Status helpers shared by every module: errno-to-Status mapping.
// Part of core/: no I/O here, only the translation of error values.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace ringmx::core {

// Returns a Status for the positive errno value `err`, with the canonical code that fits it best
// (ENOSPC -> kResourceExhausted, ENOENT -> kNotFound, EACCES -> kPermissionDenied, ...) and a
// message "<operation>: <strerror>". `err` == 0 gives OkStatus().
absl::Status ErrnoStatus(int err, std::string_view operation);

}  // namespace ringmx::core

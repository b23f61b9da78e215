// JSON for people: `ringmx ctl CMD` prints a command's JSON reply this way unless given --json.
// Pure.
#pragma once

#include <string>

#include "core/json.h"

namespace ringmx::core {

// One "key: value" line per scalar member, nested objects indented by two spaces under their key,
// arrays of scalars joined with ", " on one line, arrays of objects as "- " items; strings
// unquoted, empty objects and arrays as "-". A scalar at the top prints alone. Ends with "\n".
//   generation: 1
//   replies:
//     2xx: 12
//     by_enhanced_code:
//       2.0.0: 10
//   per_shard:
//     - shard: 0
//       connections_open: 0
std::string JsonToText(const JsonValue& value);

}  // namespace ringmx::core

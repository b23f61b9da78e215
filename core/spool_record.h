// What a session hands to the spool (DESIGN.md section 6): the bytes of `<id>.eml` and
// `<id>.json`. A plain value so that any store (local directory now, a replicated one later) takes
// the same record without knowing SMTP.
#pragma once

#include <string>

namespace ringmx::core {

struct SpoolRecord {
  std::string id;             // queue id; names the files
  std::string trace_headers;  // "Received: ...\r\n", written first in <id>.eml
  std::string body;           // the message exactly as received (after dot-unstuffing), CRLF kept
  std::string envelope_json;  // the whole <id>.json file
};

}  // namespace ringmx::core

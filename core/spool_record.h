// What a session hands to the store (DESIGN.md section 6): the message and its envelope. A plain
// value so that any store (the embedded queue now, a replicated one later) takes the same record
// without knowing SMTP.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

namespace ringmx::core {

struct SpoolRecord {
  std::string id;             // queue id
  std::string trace_headers;  // "Received: ...\r\n", stored before the body
  std::string body;           // the message exactly as received (after dot-unstuffing), CRLF kept
  std::string envelope_json;  // the envelope and session facts (`ringmx queue export`: <id>.json)
  std::string sender;         // MAIL FROM address ("" for the null sender)
  std::vector<std::string> recipients;  // RCPT TO addresses, in order
  int64_t received_unix_us = 0;         // when the end of data was received
};

}  // namespace ringmx::core

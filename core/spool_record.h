// What a session hands to the store (DESIGN.md section 6): the message and its envelope. A plain
// value so that any store (the embedded queue now, a replicated one later) takes the same record
// without knowing SMTP.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

#include "core/body_blocks.h"

namespace ringmx::core {

struct SpoolRecord {
  std::string id;             // queue id
  std::string trace_headers;  // "Received: ...\r\n", stored before the body
  // The message exactly as received (after dot-unstuffing), CRLF kept; with `fragments` > 0 only
  // what follows the streamed fragments (the store computes the body size: fragments + this). In
  // the blocks the decoder filled (written from there, never joined).
  BodyBlocks body;
  std::string envelope_json;  // the envelope and session facts (`ringmx queue export`: <id>.json)
  std::string sender;         // MAIL FROM address ("" for the null sender)
  std::vector<std::string> recipients;  // RCPT TO addresses, in order
  int64_t received_unix_us = 0;         // when the end of data was received
  // How many fragments of this message were streamed to the store before (Spool::SubmitFragment(),
  // net/spool.h); 0 when the whole body is in `body`.
  uint32_t fragments = 0;
  // A DSN ringmx made (core/queue kMessageFlagBounce): delivered through [delivery]
  // bounce_next_hop, never bounced itself.
  bool bounce = false;
  // Quarantined by a milter (docs/milter.md): stored on hold (core/queue kMessageFlagHeld), not
  // delivered until an operator releases it; the reason is in the envelope JSON.
  bool held = false;
};

// A piece of a message body handed to the store while the client still sends (streaming).
struct SpoolFragment {
  std::string id;      // the message's queue id
  uint32_t index = 0;  // 0, 1, ... in order
  BodyBlocks bytes;    // the decoder's blocks (written from there, never joined)
};

}  // namespace ringmx::core

// Scripts of hostile SMTP clients, and of the well-behaved client that runs beside them, for
// ConnSwarm: the hostile-client end-to-end test (tests/e2e/hostile_e2e_test.cc) and the
// benchmark bench/hostile share them so both measure the same abuse. Test-only.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

#include "tests/testing/conn_swarm.h"

namespace ringmx::testing {

enum class HostileKind : uint8_t {
  kLongLines,      // command lines of 100 KB, one after the other
  kEndlessData,    // DATA whose end never comes, far past max_message_size
  kTrickle,        // a command at one octet per `trickle_interval`
  kRcptFlood,      // thousands of pipelined RCPT, far past max_recipients
  kNulBytes,       // NUL octets inside commands
  kBadUtf8,        // invalid UTF-8 in MAIL/RCPT addresses with SMTPUTF8
  kBadParameters,  // malformed MAIL and RCPT parameters
  kNoRead,         // pipelines commands and never reads a reply
};
inline constexpr HostileKind kAllHostileKinds[] = {
    HostileKind::kLongLines,     HostileKind::kEndlessData, HostileKind::kTrickle,
    HostileKind::kRcptFlood,     HostileKind::kNulBytes,    HostileKind::kBadUtf8,
    HostileKind::kBadParameters, HostileKind::kNoRead,
};

std::string_view HostileKindName(HostileKind kind);

// What the hostile scripts size their abuse by (the server's limits).
struct HostileParams {
  uint64_t max_message_size = 1024 * 1024;
  int max_recipients = 100;
  size_t long_line_bytes = 100 * 1024;
  size_t long_lines = 25;                     // more than the server's 20-error limit
  uint64_t endless_factor = 4;                // endless DATA sends this many times max_message_size
  size_t rcpt_flood = 3000;                   // RCPT commands in the flood
  size_t repeats = 25;                        // bad commands of the NUL, UTF-8 and parameter kinds
  uint64_t no_read_bytes = 24 * 1024 * 1024;  // NOOP commands the no-read kind sends
  absl::Duration trickle_interval = absl::Seconds(1);
  // What the trickling kind sends, one octet per `trickle_interval`. A test that moves the
  // server's clock instead of waiting for the idle timeout makes it longer (at most 512 octets,
  // RFC 5321 section 4.5.3.1.4), so that it cannot end before the clock has moved.
  std::string trickle_command = "EHLO slow.hostile.test\r\n";
};

// The whole session of one hostile client, from the greeting on; it ends waiting for the server
// to close the connection (every kind ends in a 421 from the server: too many errors, or a
// timeout); kNoRead reads nothing after the greeting, so it sees only the close (or a reset).
std::vector<SwarmStep> HostileScript(HostileKind kind, const HostileParams& params);

// A well-behaved client on one connection: greeting, EHLO, then `messages` transactions (MAIL,
// RCPT, DATA, the message, each waiting for its reply), then QUIT. Message `i` is addressed from
// s`first + i`@remote.test to u`first + i`@example.test. Replies: 1 + 1 + 4 * messages + 1.
std::vector<SwarmStep> GoodClientScript(size_t messages, size_t first = 0);
// Index of the end-of-data reply of message `i` in a GoodClientScript connection's replies.
inline size_t GoodClientDataReply(size_t i) { return 2 + 4 * i + 3; }

}  // namespace ringmx::testing

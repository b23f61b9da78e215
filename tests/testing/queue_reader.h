// Reads a stopped or running server's queue straight from its directories, as recovery does:
// every `<spool>/queue/<n>/` replayed read-only into a fresh core::queue::Index. The e2e tests
// check what was stored this way, independently of the server's own queue commands.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/queue/index.h"

namespace ringmx::testing {

struct StoredMessage {
  std::string eml;   // our Received header first, then the client's bytes
  std::string json;  // the envelope
  core::queue::QueuedMessage entry;
  std::string directory;  // the shard directory that holds it
};

struct QueueContents {
  std::map<std::string, StoredMessage> messages;  // by id
  // What replay reported (damaged stretches, torn tails) and read errors, one line each.
  std::vector<std::string> problems;
  uint64_t segments = 0;
};

// Never fails: a missing queue directory is an empty queue; errors go into `problems`.
QueueContents ReadQueue(const std::string& spool);

// Ids in the queue, sorted (ids sort by arrival).
std::vector<std::string> QueuedIds(const std::string& spool);

}  // namespace ringmx::testing

// The operator's view of the queue (`ringmx queue ...`, DESIGN.md section 6), served by the
// control plane on the main thread. Each command asks every shard for its part through the
// shard's mailbox (the index is shard-local) and waits, bounded; message bytes are read from the
// segment files on the main thread, never on a shard's ring.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ringmx::net {

class Shard;

// Runs one queue command (the words after "queue"): `list [--json]`, `show ID [--json]`,
// `export-data ID`, `hold ID`, `release ID`, `delete ID`, `flush`. Returns the reply: "error ..."
// on failure; otherwise the command's output (several lines for list and show). `export-data`
// answers "ok EML_BYTES JSON_BYTES\n" followed by the .eml bytes and the .json bytes, which the
// command-line client writes to <id>.eml and <id>.json. `now_us`: for ages and "next attempt in".
std::string QueueCommand(const std::vector<std::unique_ptr<Shard>>& shards, std::string_view args,
                         int64_t now_us);

// The server is not running: `list`, `show` and `export-data` on the queue directories under
// `spool_path` (read-only; the numbers in the output name directories, not running shards).
// Other commands are refused.
std::string QueueCommandOffline(const std::string& spool_path, std::string_view args,
                                int64_t now_us);

}  // namespace ringmx::net

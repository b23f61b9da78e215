#include "net/queue_control.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"

#include "core/json.h"
#include "core/queue/index.h"
#include "core/queue/store_files.h"
#include "core/strings.h"
#include "net/queue_log.h"
#include "net/shard.h"

namespace ringmx::net {
namespace {

namespace q = core::queue;

// Below the command-line client's 30 s read timeout.
constexpr auto kShardWait = std::chrono::seconds(20);

// One shard's answer: copies made on the shard's thread, read on the main thread.
struct ShardPart {
  bool has_queue = false;  // false: spool.mode = "discard"
  std::string directory;
  std::vector<q::QueuedMessage> messages;
};

// Runs `task` on every shard's thread with its queue (nullptr without one) and waits for each
// shard's answer. Returns an error line if a shard did not answer in time.
template <typename Result>
std::optional<std::string> AskShards(const std::vector<std::unique_ptr<Shard>>& shards,
                                     std::function<void(QueueLog*, Result&)> task,
                                     std::vector<Result>& results) {
  std::vector<std::shared_ptr<std::promise<Result>>> promises;
  for (const auto& shard : shards) {
    auto promise = std::make_shared<std::promise<Result>>();
    promises.push_back(promise);
    ShardMessage message;
    message.kind = ShardMessage::Kind::kQueueTask;
    message.queue_task = [promise, task](QueueLog* queue) {
      Result result;
      task(queue, result);
      promise->set_value(std::move(result));
    };
    shard->mailbox().Post(std::move(message));
  }
  results.clear();
  for (size_t s = 0; s < promises.size(); ++s) {
    std::future<Result> future = promises[s]->get_future();
    if (future.wait_for(kShardWait) != std::future_status::ready) {
      return absl::StrCat("error shard ", s, " did not answer within 20 s (draining?)");
    }
    results.push_back(future.get());
  }
  return std::nullopt;
}

std::string FormatAge(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 120) return absl::StrCat(seconds, "s");
  if (seconds < 7200) return absl::StrCat(seconds / 60, "m");
  if (seconds < 2 * 86400) return absl::StrCat(seconds / 3600, "h");
  return absl::StrCat(seconds / 86400, "d");
}

std::string FormatTime(int64_t unix_us) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(unix_us), absl::UTCTimeZone());
}

void WriteMessageJson(core::JsonWriter& json, const q::QueuedMessage& m, uint32_t shard,
                      int64_t now_us) {
  json.BeginObject()
      .Key("id")
      .String(m.id)
      .Key("shard")
      .Uint(shard)
      .Key("size")
      .Uint(m.body_size)
      .Key("received")
      .String(FormatTime(m.received_us))
      .Key("age_s")
      .Int((now_us - m.received_us) / 1000000)
      .Key("sender")
      .String(m.sender)
      .Key("held")
      .Bool(m.held)
      .Key("recipients")
      .BeginArray();
  for (const q::QueuedRecipient& r : m.recipients) {
    json.BeginObject()
        .Key("address")
        .String(r.address)
        .Key("state")
        .String(q::RecipientStateName(r.status.state))
        .Key("attempts")
        .Uint(r.status.attempts);
    if (r.status.state == q::RecipientState::kDeferred) {
      json.Key("next_attempt").String(FormatTime(r.status.next_attempt_us));
    }
    if (!r.status.reply.empty()) json.Key("reply").String(r.status.reply);
    json.EndObject();
  }
  json.EndArray().EndObject();
}

// The mailq-like text form of one message: a line for the message, one per recipient.
void AppendMessageText(std::string& out, const q::QueuedMessage& m, int64_t now_us) {
  absl::StrAppendFormat(&out, "%-20s %10u %6s  <%s>%s\n", m.id, m.body_size,
                        FormatAge((now_us - m.received_us) / 1000000), m.sender,
                        m.held ? "  (held)" : "");
  for (const q::QueuedRecipient& r : m.recipients) {
    absl::StrAppend(&out, "    <", r.address, "> ",
                    core::Av(q::RecipientStateName(r.status.state)));
    if (r.status.state == q::RecipientState::kDeferred) {
      absl::StrAppend(&out, " (", r.status.attempts, " attempts, next in ",
                      FormatAge((r.status.next_attempt_us - now_us) / 1000000), ")");
    }
    if (!r.status.reply.empty()) absl::StrAppend(&out, ": ", r.status.reply);
    out.push_back('\n');
  }
}

// Where list, show and export read the index from: the running shards, or the directories.
// Fills one ShardPart per shard with every message, or only `id` when it is not null.
using Gather =
    std::function<std::optional<std::string>(const std::string* id, std::vector<ShardPart>&)>;

Gather FromShards(const std::vector<std::unique_ptr<Shard>>& shards) {
  return [&shards](const std::string* id, std::vector<ShardPart>& parts) {
    std::optional<std::string> wanted;
    if (id != nullptr) wanted = *id;
    std::function<void(QueueLog*, ShardPart&)> task = [wanted](QueueLog* queue, ShardPart& part) {
      if (queue == nullptr) return;
      part.has_queue = true;
      part.directory = queue->directory();
      if (wanted) {
        if (const q::QueuedMessage* m = queue->index().Find(*wanted)) part.messages.push_back(*m);
      } else {
        for (const q::QueuedMessage* m : queue->index().List()) part.messages.push_back(*m);
      }
    };
    return AskShards(shards, task, parts);
  };
}

// Offline: replays `<spool>/queue/<n>/` for every n, read-only, one part per directory.
std::optional<std::string> ReadQueueDirectories(const std::string& spool_path,
                                                const std::string* id,
                                                std::vector<ShardPart>& parts) {
  const std::string root = absl::StrCat(spool_path, "/queue");
  DIR* dir = opendir(root.c_str());
  if (dir == nullptr) {
    return absl::StrCat("error cannot read the queue directory ", root, ": ", strerror(errno));
  }
  std::vector<uint32_t> shard_dirs;
  while (const dirent* entry = readdir(dir)) {
    uint32_t n = 0;
    if (entry->d_name[0] != '.' && absl::SimpleAtoi(entry->d_name, &n)) shard_dirs.push_back(n);
  }
  closedir(dir);
  std::sort(shard_dirs.begin(), shard_dirs.end());
  for (uint32_t n : shard_dirs) {
    ShardPart& part = parts.emplace_back();
    part.has_queue = true;
    part.directory = absl::StrCat(root, "/", n);
    q::Index index;
    absl::StatusOr<q::ReplayReport> report = q::ReplayDirectory(part.directory, index);
    if (!report.ok()) return absl::StrCat("error ", report.status().message());
    if (id != nullptr) {
      if (const q::QueuedMessage* m = index.Find(*id)) part.messages.push_back(*m);
    } else {
      for (const q::QueuedMessage* m : index.List()) part.messages.push_back(*m);
    }
  }
  return std::nullopt;
}

std::string List(const Gather& gather, bool as_json, int64_t now_us) {
  std::vector<ShardPart> parts;
  if (auto error = gather(nullptr, parts)) return *error;
  if (!parts.empty() && !parts[0].has_queue) {
    return "error the queue is off (spool.mode = \"discard\")";
  }
  // Ids sort by arrival time across shards.
  std::vector<std::pair<const q::QueuedMessage*, uint32_t>> all;
  for (uint32_t s = 0; s < parts.size(); ++s) {
    for (const q::QueuedMessage& m : parts[s].messages) all.emplace_back(&m, s);
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first->id < b.first->id; });
  std::string out;
  if (as_json) {
    core::JsonWriter json(out);
    json.BeginObject().Key("count").Uint(all.size()).Key("messages").BeginArray();
    for (const auto& [m, shard] : all) WriteMessageJson(json, *m, shard, now_us);
    json.EndArray().EndObject();
    return out;
  }
  if (all.empty()) return "queue is empty";
  uint64_t bytes = 0;
  absl::StrAppendFormat(&out, "%-20s %10s %6s  %s\n", "ID", "SIZE", "AGE", "SENDER / RECIPIENTS");
  for (const auto& [m, shard] : all) {
    AppendMessageText(out, *m, now_us);
    bytes += m->body_size;
  }
  absl::StrAppend(&out, "-- ", all.size(), all.size() == 1 ? " message, " : " messages, ", bytes,
                  " bytes");
  return out;
}

// Finds `id` on whichever shard holds it: a copy of its index entry and that shard's directory.
struct Found {
  std::optional<std::string> error;  // set: the reply
  uint32_t shard = 0;
  std::string directory;
  q::QueuedMessage message;
};

Found Find(const Gather& gather, const std::string& id) {
  std::vector<ShardPart> parts;
  Found found;
  if (auto error = gather(&id, parts)) {
    found.error = *error;
    return found;
  }
  for (uint32_t s = 0; s < parts.size(); ++s) {
    if (!parts[s].messages.empty()) {
      found.shard = s;
      found.directory = parts[s].directory;
      found.message = std::move(parts[s].messages[0]);
      return found;
    }
  }
  found.error = absl::StrCat("error no message ", id, " in the queue");
  return found;
}

// A message found and read: its index entry, its bytes and its envelope; or the error reply.
struct Loaded {
  std::optional<std::string> error;
  Found found;
  std::string eml;
  std::string envelope;
};

Loaded Load(const Gather& gather, const std::string& id) {
  Loaded loaded;
  loaded.found = Find(gather, id);
  if (loaded.found.error) {
    loaded.error = loaded.found.error;
    return loaded;
  }
  absl::StatusOr<std::string> eml =
      q::ReadMessageBytes(loaded.found.directory, loaded.found.message);
  absl::StatusOr<std::string> envelope =
      eml.ok() ? q::ReadEnvelopeJson(loaded.found.directory, loaded.found.message) : eml.status();
  if (!envelope.ok()) {
    loaded.error = absl::StrCat("error ", envelope.status().message());
    return loaded;
  }
  loaded.eml = *std::move(eml);
  loaded.envelope = *std::move(envelope);
  return loaded;
}

std::string Show(const Gather& gather, const std::string& id, bool as_json, int64_t now_us) {
  const Loaded loaded = Load(gather, id);
  if (loaded.error) return *loaded.error;
  std::string out;
  if (as_json) {
    // The envelope is a JSON object already: embed it as is.
    out = "{\"message\":";
    core::JsonWriter json(out);
    WriteMessageJson(json, loaded.found.message, loaded.found.shard, now_us);
    absl::StrAppend(&out, ",\"envelope\":", loaded.envelope, ",\"eml\":");
    core::AppendJsonString(out, loaded.eml);
    out.push_back('}');
    return out;
  }
  AppendMessageText(out, loaded.found.message, now_us);
  absl::StrAppend(&out, "-- envelope\n", loaded.envelope, "\n-- message\n", loaded.eml);
  return out;
}

std::string ExportData(const Gather& gather, const std::string& id) {
  const Loaded loaded = Load(gather, id);
  if (loaded.error) return *loaded.error;
  return absl::StrCat("ok ", loaded.eml.size(), " ", loaded.envelope.size(), "\n", loaded.eml,
                      loaded.envelope);
}

std::string ApplyOp(const std::vector<std::unique_ptr<Shard>>& shards, const std::string& id,
                    q::MessageOp op, std::string_view verb) {
  // Every shard is asked; the one holding the message appends the record and answers once it is
  // durable, the others answer NotFound at once.
  std::vector<std::shared_ptr<std::promise<absl::Status>>> promises;
  for (const auto& shard : shards) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    promises.push_back(promise);
    ShardMessage message;
    message.kind = ShardMessage::Kind::kQueueTask;
    message.queue_task = [promise, id, op](QueueLog* queue) {
      if (queue == nullptr) {
        promise->set_value(absl::FailedPreconditionError("the queue is off"));
        return;
      }
      queue->Apply(id, op, [promise](absl::Status status) { promise->set_value(status); });
    };
    shard->mailbox().Post(std::move(message));
  }
  absl::Status first_error;
  for (size_t s = 0; s < promises.size(); ++s) {
    std::future<absl::Status> future = promises[s]->get_future();
    if (future.wait_for(kShardWait) != std::future_status::ready) {
      return absl::StrCat("error shard ", s, " did not answer within 20 s (draining?)");
    }
    absl::Status status = future.get();
    if (status.ok()) return absl::StrCat("ok ", core::Av(verb), " ", id);
    if (!absl::IsNotFound(status) && first_error.ok()) first_error = status;
  }
  if (!first_error.ok()) return absl::StrCat("error ", first_error.message());
  return absl::StrCat("error no message ", id, " in the queue");
}

std::string Flush(const std::vector<std::unique_ptr<Shard>>& shards, int64_t now_us) {
  std::vector<size_t> counts;
  std::function<void(QueueLog*, size_t&)> task = [now_us](QueueLog* queue, size_t& n) {
    n = queue == nullptr ? 0 : queue->FlushDeferred(now_us);
  };
  if (auto error = AskShards(shards, task, counts)) return *error;
  size_t total = 0;
  for (size_t n : counts) total += n;
  return absl::StrCat("ok ", total, " deferred recipients due now");
}

constexpr char kQueueUsage[] =
    "error usage: queue list [--json] | show ID [--json] | export-data ID | hold ID | release ID "
    "| delete ID | flush";

// The words of a queue command, "--json" taken out.
struct Words {
  std::vector<std::string> plain;
  bool as_json = false;
};

Words Split(std::string_view args) {
  Words result;
  for (absl::string_view w : absl::StrSplit(core::Av(args), ' ', absl::SkipEmpty())) {
    if (w == "--json") {
      result.as_json = true;
    } else {
      result.plain.emplace_back(w);
    }
  }
  return result;
}

// list, show and export-data, from either source; nullopt for the other commands.
std::optional<std::string> ReadCommand(const Gather& gather, const Words& words, int64_t now_us) {
  const std::vector<std::string>& plain = words.plain;
  if (plain.empty()) return kQueueUsage;
  if (plain[0] == "list" && plain.size() == 1) return List(gather, words.as_json, now_us);
  if (plain.size() == 2 && plain[0] == "show") {
    return Show(gather, plain[1], words.as_json, now_us);
  }
  if (plain.size() == 2 && plain[0] == "export-data") return ExportData(gather, plain[1]);
  return std::nullopt;
}

}  // namespace

std::string QueueCommand(const std::vector<std::unique_ptr<Shard>>& shards, std::string_view args,
                         int64_t now_us) {
  const Words words = Split(args);
  if (auto reply = ReadCommand(FromShards(shards), words, now_us)) return *reply;
  const std::vector<std::string>& plain = words.plain;
  if (plain[0] == "flush" && plain.size() == 1) return Flush(shards, now_us);
  if (plain.size() != 2) return kQueueUsage;
  const std::string& id = plain[1];
  if (plain[0] == "hold") return ApplyOp(shards, id, q::MessageOp::kHold, "held");
  if (plain[0] == "release") return ApplyOp(shards, id, q::MessageOp::kRelease, "released");
  if (plain[0] == "delete") return ApplyOp(shards, id, q::MessageOp::kDelete, "deleted");
  return kQueueUsage;
}

std::string QueueCommandOffline(const std::string& spool_path, std::string_view args,
                                int64_t now_us) {
  const Words words = Split(args);
  Gather from_disk = [&spool_path](const std::string* id, std::vector<ShardPart>& parts) {
    return ReadQueueDirectories(spool_path, id, parts);
  };
  if (auto reply = ReadCommand(from_disk, words, now_us)) return *reply;
  return "error the server is not running: hold, release, delete and flush need it";
}

}  // namespace ringmx::net

#include "tests/testing/queue_reader.h"

#include <algorithm>
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "core/queue/store_files.h"

namespace ringmx::testing {

QueueContents ReadQueue(const std::string& spool) {
  QueueContents contents;
  const std::filesystem::path root = std::filesystem::path(spool) / "queue";
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    uint32_t n = 0;
    if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &n)) {
      dirs.push_back(entry.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  for (const std::string& dir : dirs) {
    core::queue::Index index;
    absl::StatusOr<core::queue::ReplayReport> report = core::queue::ReplayDirectory(dir, index);
    if (!report.ok()) {
      contents.problems.push_back(std::string(report.status().message()));
      continue;
    }
    contents.segments += report->segments;
    for (const std::string& p : report->problems) contents.problems.push_back(p);
    for (const core::queue::QueuedMessage* m : index.List()) {
      StoredMessage stored;
      stored.entry = *m;
      stored.directory = dir;
      absl::StatusOr<std::string> eml = core::queue::ReadMessageBytes(dir, *m);
      absl::StatusOr<std::string> json = core::queue::ReadEnvelopeJson(dir, *m);
      if (!eml.ok() || !json.ok()) {
        contents.problems.push_back(absl::StrCat(
            "read ", m->id, ": ", (eml.ok() ? json.status() : eml.status()).message()));
        continue;
      }
      stored.eml = *std::move(eml);
      stored.json = *std::move(json);
      contents.messages.emplace(m->id, std::move(stored));
    }
  }
  return contents;
}

std::vector<std::string> QueuedIds(const std::string& spool) {
  std::vector<std::string> ids;
  for (const auto& [id, message] : ReadQueue(spool).messages) ids.push_back(id);
  return ids;
}

}  // namespace ringmx::testing

// Shared helpers for the end-to-end tests: a fixture that runs one server, and queue inspection.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

#include "tests/testing/queue_reader.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {

// One real server per test, in its own temporary directory.
class ServerTest : public ::testing::Test {
 protected:
  void StartServer(const std::string& config) {
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error);
    ASSERT_NE(server_, nullptr) << error;
  }
  // Connects to the "mx" listener and reads the 220 greeting.
  std::unique_ptr<SmtpClient> Connect() {
    auto client = SmtpClient::Connect("127.0.0.1", server_->port());
    EXPECT_NE(client, nullptr);
    if (client) {
      EXPECT_EQ(client->ReadReply().code, 220);
    }
    return client;
  }
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Names in `dir` (not paths), sorted; empty if the directory does not exist.
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Ids of the messages in the queue under `spool`, sorted, read from the segment files as
// recovery would read them.
inline std::vector<std::string> CommittedIds(const std::string& spool) { return QueuedIds(spool); }

// The stored message (`ringmx queue export`'s <id>.eml) and its envelope (<id>.json); "" if the
// queue does not hold `id`.
inline std::string StoredEml(const std::string& spool, const std::string& id) {
  QueueContents queue = ReadQueue(spool);
  auto it = queue.messages.find(id);
  return it == queue.messages.end() ? "" : it->second.eml;
}
inline std::string StoredJson(const std::string& spool, const std::string& id) {
  QueueContents queue = ReadQueue(spool);
  auto it = queue.messages.find(id);
  return it == queue.messages.end() ? "" : it->second.json;
}

// "250 2.0.0 Ok: queued as ABC\r\n" -> "ABC".
inline std::string QueuedId(const std::string& reply_text) {
  const std::string marker = "queued as ";
  size_t pos = reply_text.find(marker);
  if (pos == std::string::npos) return "";
  size_t end = reply_text.find_first_of(" \r\n", pos + marker.size());
  return reply_text.substr(pos + marker.size(), end - pos - marker.size());
}

}  // namespace ringmx::testing

// Helpers shared by the spool tests in tests/net: a throw-away directory, file helpers, a waiter
// that records its calls, and a driver loop that runs a reactor the way a shard does.
#pragma once

#include <stdlib.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

#include "net/reactor.h"
#include "net/spool.h"

namespace ringmx::net::testing {

// A fresh directory under `base` (mkdtemp), removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& base = "/tmp");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Sorted names in `dir` (without "." and ".."); empty if `dir` cannot be read.
std::vector<std::string> ListDir(const std::string& dir);
// The whole file; "<missing>" if it cannot be opened.
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);
// Permission bits of `path`, or -1.
int FileMode(const std::string& path);
// The process umask (read without changing it for longer than the call).
int CurrentUmask();

// Records what the spool tells it. `on_stored`, if set, runs inside OnStored().
class RecordingWaiter final : public SpoolWaiter {
 public:
  void OnStored(const absl::Status& result) override {
    ++calls;
    this->result = result;
    if (on_stored) on_stored(result);
  }
  int calls = 0;
  absl::Status result;
  std::function<void(const absl::Status&)> on_stored;
};

// Runs `reactor` like a shard runs its loop (RunOnce, then Flush) until `done()` holds; gives up
// after `max_idle_rounds` rounds in a row without a completion (each waits at most 50 ms, so the
// default is about 10 s of no progress). Returns whether `done()` held.
bool Drive(Reactor& reactor, Spool& spool, const std::function<bool()>& done,
           int max_idle_rounds = 200);

}  // namespace ringmx::net::testing

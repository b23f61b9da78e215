// Starts the real `ringmx serve` binary for end-to-end tests: writes the config into a temporary
// directory, sends the server's log to a file there, waits (with a deadline) for it to report
// ready, and reads back the ports it bound. Stops only the process it started, by PID. Test-only.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

#include "tests/testing/temp_dir.h"

namespace ringmx::testing {

// Path of the built `ringmx` binary (set by CMake).
std::string RingmxBinary();

// A config for tests: one plain listener "mx" on 127.0.0.1:0, spool in `dir`/spool, control
// socket in `dir`, local domain example.test, relay from 127.0.0.0/8 unless `relay` is false.
// `extra` is appended verbatim (more tables); `overrides` replace whole sections when their key
// (e.g. "[timeouts]") is present in `extra` — keep it simple: pass sections not used by default.
std::string BasicConfig(const TempDir& dir, const std::string& policy_extra = "",
                        const std::string& extra = "", bool relay = true, int workers = 2);

// Runs a command (argv[0] is the program) and returns its exit status and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout);

// Waits for the child `pid` until `deadline` (absl::Now() polls once, absl::InfiniteFuture()
// blocks); its exit code (or -signal, or -1 when it is not our child), or nullopt if it still runs.
std::optional<int> WaitPid(pid_t pid, absl::Time deadline);

class ServerProcess {
 public:
  // Writes `config_toml` to `dir`/ringmx.toml and starts the server. nullptr (and a gtest
  // failure message in `error`) if it does not report ready within `timeout`. `test_clock`
  // starts it with `--test-clock`, so that AdvanceClock() can move its deadlines.
  static std::unique_ptr<ServerProcess> Start(const TempDir& dir, const std::string& config_toml,
                                              std::string* error = nullptr,
                                              absl::Duration timeout = absl::Seconds(20),
                                              bool test_clock = false);
  ~ServerProcess();  // SIGKILL if still running

  pid_t pid() const { return pid_; }
  // The port the named listener bound ("mx" by default).
  uint16_t port(const std::string& listener = "mx") const;
  std::string config_path() const { return config_path_; }
  std::string spool() const { return spool_; }
  // Everything the server has logged so far.
  std::string Log() const;
  // Waits until the log contains `needle` (deadline). True if it did.
  bool WaitForLog(const std::string& needle, absl::Duration timeout = absl::Seconds(10)) const;
  void Signal(int signo) const;
  // Sends one control command through `ringmx ctl -c <config>` (so the config must set
  // control.socket, as BasicConfig does) and returns what it printed; "" if it failed to run.
  std::string Control(const std::string& command) const;
  // Test clock only: moves the server's clock forward by `by` (whole milliseconds). Returns once
  // every shard has checked its deadlines against the new time (or, while draining, once the
  // clock has moved: shards see it at their next tick). False if the server refused.
  bool AdvanceClock(absl::Duration by) const;
  // One counter of the control command `stats` (e.g. "connections_open", a total); -1 if
  // unavailable.
  int64_t Stat(const std::string& key) const;
  // Waits for the process to exit; its exit code, or nullopt on timeout (or death by signal: -sig).
  std::optional<int> WaitExit(absl::Duration timeout);

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string config_path_;
  std::string log_path_;
  std::string spool_;
  std::map<std::string, uint16_t> ports_;
};

}  // namespace ringmx::testing

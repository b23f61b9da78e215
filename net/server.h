// The process: opens the listeners, starts one Shard per worker thread, and runs the control plane
// on the calling thread (signals and the control socket, DESIGN.md section 8). Reloads publish a
// new Snapshot to every shard's mailbox; nothing else crosses threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "core/clock.h"
#include "core/metrics.h"
#include "core/snapshot.h"
#include "net/runtime.h"

namespace ringmx::net {

class CheckWorkers;

class Shard;

struct ServerOptions {
  // `ringmx serve --test-clock`: the shards read an OffsetClock (real time plus an offset) that
  // the control command `advance-clock-for-test MS` moves forward, so end-to-end tests reach
  // deadlines without waiting for them. Off: core::RealClock, and the command is refused.
  bool test_clock_for_test = false;
};

// Control-plane object; lives on the main thread. Not thread-safe, except CollectStats(), which
// the metrics thread also calls (it reads only atomics and the fixed set of shards).
class Server {
 public:
  // `config_path` is re-read on reload. The config must already be validated.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const std::string& config_path,
                                                       core::Config config,
                                                       const ServerOptions& options = {});
  ~Server();

  // Blocks handling SIGTERM/SIGINT (drain and exit), SIGHUP (reload) and control-socket commands
  // until every shard has drained. Returns OK on a clean shutdown.
  absl::Status Run();

  // Control commands, also used by the control socket. Each returns one reply line. Under
  // systemd (NOTIFY_SOCKET), Run() says READY=1, Reload() RELOADING=1 then READY=1, and Drain()
  // STOPPING=1, each with a STATUS= line (net/systemd_notify.h).
  std::string Reload();
  // `stats`: core::RenderStatsJson of CollectStats(), with the queue by state that each shard
  // counts on its own thread (not while draining). `version` and `certs` are built by
  // net/control_commands.h.
  std::string Stats() const;
  // The counters of every shard (the snapshot `stats` and `metrics` are made from). Thread-safe.
  core::StatsSnapshot CollectStats() const;
  // `ringmx ctl metrics`: the Prometheus text that GET /metrics serves.
  std::string Metrics() const;
  std::string Drain();
  // Test clock only (ServerOptions::test_clock_for_test): moves the clock forward by `by`, then,
  // unless draining, has every shard check its deadlines against the new time and waits (bounded)
  // until each has. "ok offset_ms=N" or "error ...".
  std::string AdvanceClockForTest(absl::Duration by);

 private:
  Server() = default;
  // Reload() without telling systemd: "ok generation=N" or "error ...".
  std::string ReloadNow();
  absl::Status OpenControlSocket();
  void HandleControlClient(int fd);
  // `[metrics] address`: binds it and starts metrics_thread_, which serves one request per
  // connection, one connection at a time, until metrics_stop_fd_ is written (~Server).
  absl::Status StartMetrics();
  void ServeMetrics();
  void HandleMetricsClient(int fd);
  void StopMetrics();

  std::string config_path_;
  // Set only with ServerOptions::test_clock_for_test; `clock_` points to it then.
  std::unique_ptr<core::OffsetClock> test_clock_;
  // What every shard reads the time from; outlives the shards (they are joined in ~Server()).
  const core::Clock* clock_ = &core::RealClock::Get();
  Runtime runtime_;  // the published config and TLS contexts
  // The listening sockets, by listener index in runtime_'s config, then by shard (each shard owns
  // and closes its own; a reload reuses a kept listener's and the shards close a removed one's).
  std::vector<std::vector<int>> listener_fds_;
  std::vector<std::unique_ptr<Shard>> shards_;
  // Password hashes and other checks that must not run on a shard. Declared after shards_ so it is
  // destroyed first (its threads post answers into the shards' mailboxes).
  std::unique_ptr<CheckWorkers> check_workers_;
  std::vector<std::thread> threads_;
  int signal_fd_ = -1;
  int control_fd_ = -1;
  std::string control_path_;
  // Atomic for the metrics thread; written only on the main thread.
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> generation_{0};
  int metrics_fd_ = -1;
  int metrics_stop_fd_ = -1;  // an eventfd
  std::thread metrics_thread_;
};

// Client side of the control socket: sends `command` and returns the reply (one line, or several
// for `queue list` and `queue show`). `strip_newlines`: drop the line ends at the end of the reply
// (not for replies that carry bytes, like `queue export-data`).
absl::StatusOr<std::string> ControlRequest(const std::string& socket_path,
                                           const std::string& command, bool strip_newlines = true);

}  // namespace ringmx::net

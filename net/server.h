// The process: opens the listeners, starts one Shard per worker thread, and runs the control plane
// on the calling thread (signals and the control socket, DESIGN.md section 8). Reloads publish a
// new Snapshot to every shard's mailbox; nothing else crosses threads.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "core/snapshot.h"
#include "net/runtime.h"

namespace ringmx::net {

class Shard;

// Control-plane object; lives on the main thread. Not thread-safe.
class Server {
 public:
  // `config_path` is re-read on reload. The config must already be validated.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const std::string& config_path,
                                                       core::Config config);
  ~Server();

  // Blocks handling SIGTERM/SIGINT (drain and exit), SIGHUP (reload) and control-socket commands
  // until every shard has drained. Returns OK on a clean shutdown.
  absl::Status Run();

  // Control commands, also used by the control socket. Each returns one reply line.
  std::string Reload();
  std::string Stats() const;
  std::string Drain();

 private:
  Server() = default;
  absl::Status OpenControlSocket();
  void HandleControlClient(int fd);

  std::string config_path_;
  Runtime runtime_;  // the published config and TLS contexts
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::thread> threads_;
  int signal_fd_ = -1;
  int control_fd_ = -1;
  std::string control_path_;
  bool draining_ = false;
};

// Client side of the control socket: sends `command` and returns the reply line.
absl::StatusOr<std::string> ControlRequest(const std::string& socket_path,
                                           const std::string& command);

}  // namespace ringmx::net

#include "net/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "core/json.h"
#include "core/log.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"
#include "net/check_workers.h"
#include "net/control_commands.h"
#include "net/control_socket.h"
#include "net/ktls.h"
#include "net/listener.h"
#include "net/queue_control.h"
#include "net/queue_log.h"
#include "net/shard.h"
#include "net/spool.h"
#include "net/systemd_notify.h"

namespace ringmx::net {
namespace {

int WorkerCount(const core::Config& config) {
  if (config.workers > 0) return config.workers;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// The CPUs this process may run on, in ascending order; empty (and `error` set) if the kernel
// does not say.
std::vector<int> AllowedCpus(std::string& error) {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    error = std::string(core::ErrnoStatus(errno, "sched_getaffinity").message());
    return cpus;
  }
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  if (cpus.empty()) error = "sched_getaffinity: no CPU in the set";
  return cpus;
}

// The keys a running server cannot change (its threads, its queue directories, the sockets it
// serves the control plane on, its log file): a reload that changes one is refused, naming it.
absl::Status CheckRestartOnlyKeys(const core::Config& running, const core::Config& next) {
  const auto refuse = [](const std::string& key, const std::string& was, const std::string& now) {
    return absl::FailedPreconditionError(absl::StrCat(
        key, ": changed from ", was, " to ", now,
        "; a reload cannot apply this key (restart ringmx for it), nothing was changed"));
  };
  const auto quoted = [](const std::string& text) { return absl::StrCat("\"", text, "\""); };
  const auto metrics = [](const core::Config& c) {
    return c.metrics.address ? c.metrics.address->ToString() : std::string("off");
  };
  if (running.workers != next.workers) {
    return refuse("workers", absl::StrCat(running.workers), absl::StrCat(next.workers));
  }
  if (running.pin_threads != next.pin_threads) {
    return refuse("pin_threads", running.pin_threads ? "true" : "false",
                  next.pin_threads ? "true" : "false");
  }
  if (running.spool.path != next.spool.path) {
    return refuse("spool.path", quoted(running.spool.path), quoted(next.spool.path));
  }
  if (running.spool.mode != next.spool.mode) {
    const auto mode = [](core::SpoolMode m) {
      return std::string(m == core::SpoolMode::kDiscard ? "\"discard\"" : "\"durable\"");
    };
    return refuse("spool.mode", mode(running.spool.mode), mode(next.spool.mode));
  }
  if (running.spool.segment_size != next.spool.segment_size) {
    return refuse("spool.segment_size", absl::StrCat(running.spool.segment_size),
                  absl::StrCat(next.spool.segment_size));
  }
  if (running.control.socket != next.control.socket) {
    return refuse("control.socket", quoted(running.control.socket), quoted(next.control.socket));
  }
  if (running.log.file != next.log.file) {
    return refuse("log.file", quoted(running.log.file), quoted(next.log.file));
  }
  if (metrics(running) != metrics(next)) {
    return refuse("metrics.address", metrics(running), metrics(next));
  }
  return absl::OkStatus();
}

// Whether the new config's listener `next` is served by the running listener `running` (whose
// address holds the port actually bound): the same address, or, for a configured port 0 ("any
// port"), the same name on the same IP address.
bool SameListenerSocket(const core::ListenerConfig& running, const core::ListenerConfig& next) {
  if (!(running.address.address == next.address.address)) return false;
  if (next.address.port == 0) return running.name == next.name;
  return running.address.port == next.address.port;
}

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const std::string& config_path,
                                                      core::Config config,
                                                      const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server());
  server->config_path_ = config_path;
  if (options.test_clock_for_test) {
    server->test_clock_ = std::make_unique<core::OffsetClock>();
    server->clock_ = server->test_clock_.get();
    core::LogWarning(
        "test clock: deadlines follow a clock that the control command advance-clock-for-test "
        "moves forward (ringmx serve --test-clock is for tests only)");
  }
  const int workers = WorkerCount(config);

  if (config.spool.mode == core::SpoolMode::kDurable) {
    RINGMX_RETURN_IF_ERROR(PrepareSpoolDirectory(config.spool.path));
    // Queues of shards this run no longer has (workers reduced) move to the remaining ones.
    RINGMX_RETURN_IF_ERROR(AdoptRetiredShardQueues(config.spool.path, workers));
  }

  // Signals are taken through a signalfd; block them before any thread starts so every thread
  // inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  server->signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC);
  if (server->signal_fd_ < 0) return core::ErrnoStatus(errno, "signalfd");
  // The control socket before anything else that could clash with another server on this config
  // (its checks refuse a socket another server answers on; net/control_socket.h).
  server->control_path_ = config.control.socket;
  RINGMX_RETURN_IF_ERROR(server->OpenControlSocket());

  // Listening sockets first: a bad address fails start-up before any thread exists.
  std::vector<std::vector<ShardListener>> per_shard(workers);
  std::vector<core::Endpoint> bound;
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    absl::StatusOr<ListenerSockets> sockets = OpenListenerSockets(config.listeners[i], workers);
    if (!sockets.ok()) {
      for (auto& listeners : per_shard) {
        for (auto& l : listeners) close(l.fd);
      }
      return sockets.status();
    }
    bound.push_back(sockets->bound);
    server->listener_fds_.push_back(sockets->fds);
    for (int s = 0; s < workers; ++s) per_shard[s].push_back(ShardListener{i, sockets->fds[s]});
  }
  // Record the bound ports (port 0 resolved) so sessions and reloads see the real address.
  for (size_t i = 0; i < bound.size(); ++i) config.listeners[i].address = bound[i];

  absl::StatusOr<Runtime> runtime = BuildRuntime(std::move(config), 1);
  if (!runtime.ok()) {
    for (auto& listeners : per_shard) {
      for (auto& l : listeners) close(l.fd);
    }
    return runtime.status();
  }
  server->runtime_ = *std::move(runtime);
  const core::Config& cfg = server->runtime_.snapshot->config;

  // Kernel TLS is probed once, before any connection exists; a reload cannot change the kernel.
  bool any_tls = false;
  for (const core::ListenerConfig& listener : cfg.listeners) {
    any_tls = any_tls || listener.tls != core::TlsMode::kNone;
  }
  KernelTlsSupport ktls;
  if (any_tls) ktls = ProbeKernelTls();

  // Shard i runs on the i-th CPU the process may use (DESIGN.md section 1), wrapping around when
  // there are more shards than CPUs.
  std::vector<int> cpus;
  if (cfg.pin_threads) {
    std::string error;
    cpus = AllowedCpus(error);
    if (cpus.empty()) {
      core::LogWarning(absl::StrCat("cannot pin shard threads, running them unpinned: ", error));
    }
  }
  std::vector<std::future<absl::Status>> ready;
  server->check_workers_ = std::make_unique<CheckWorkers>(CheckWorkers::DefaultThreads());
  for (int s = 0; s < workers; ++s) {
    const int cpu = cpus.empty() ? -1 : cpus[static_cast<size_t>(s) % cpus.size()];
    server->shards_.push_back(std::make_unique<Shard>(s, server->runtime_, std::move(per_shard[s]),
                                                      ktls, *server->clock_, cpu,
                                                      static_cast<uint32_t>(workers)));
    server->shards_.back()->set_check_workers(server->check_workers_.get());
  }
  for (auto& shard : server->shards_) {
    std::vector<Shard*> peers;
    for (auto& other : server->shards_) {
      if (other != shard) peers.push_back(other.get());
    }
    shard->set_peers(std::move(peers));
  }
  for (int s = 0; s < workers; ++s) {
    auto promise = std::make_shared<std::promise<absl::Status>>();
    ready.push_back(promise->get_future());
    Shard* shard = server->shards_[s].get();
    server->threads_.emplace_back([shard, promise] {
      shard->Run([promise](absl::Status status) { promise->set_value(std::move(status)); });
    });
  }
  absl::Status start_status;
  for (auto& f : ready) {
    absl::Status status = f.get();
    if (!status.ok() && start_status.ok()) start_status = status;
  }
  if (!start_status.ok()) {
    for (auto& shard : server->shards_) shard->mailbox().Post(ShardMessage::Drain());
    for (auto& t : server->threads_) t.join();
    server->threads_.clear();
    return start_status;
  }
  server->generation_.store(server->runtime_.snapshot->generation, std::memory_order_relaxed);
  RINGMX_RETURN_IF_ERROR(server->StartMetrics());
  for (size_t i = 0; i < cfg.listeners.size(); ++i) {
    core::LogInfo(absl::StrCat("listening name=", cfg.listeners[i].name, " address=",
                               cfg.listeners[i].address.ToString(), " shards=", workers));
  }
  if (any_tls) {
    core::LogInfo(!ktls.available ? absl::StrCat("kernel TLS: unavailable (", ktls.reason,
                                                 "); record layer in OpenSSL (userspace)")
                  : cfg.tls.ktls && ktls.rekey
                      ? std::string("kernel TLS: available; TLS connections move their record "
                                    "layer to the kernel after the handshake (TLS 1.2 and 1.3, "
                                    "KeyUpdate followed)")
                  : cfg.tls.ktls
                      ? std::string("kernel TLS: available; TLS connections move their record "
                                    "layer to the kernel after the handshake (TLS 1.2 only: this "
                                    "kernel cannot rekey, so TLS 1.3 stays in OpenSSL, which "
                                    "follows KeyUpdates)")
                      : std::string("kernel TLS: available but off (tls.ktls = false); record "
                                    "layer in OpenSSL (userspace)"));
  }
  core::LogInfo(absl::StrCat("ringmx ready hostname=", cfg.hostname, " workers=", workers,
                             " spool=", cfg.spool.path,
                             cfg.spool.mode == core::SpoolMode::kDiscard ? " (discard mode)" : ""));
  return server;
}

Server::~Server() {
  StopMetrics();  // before the shards it reads go away
  if (!threads_.empty()) {
    for (auto& shard : shards_) shard->mailbox().Post(ShardMessage::Drain());
    for (auto& t : threads_) t.join();
  }
  if (signal_fd_ >= 0) close(signal_fd_);
  if (control_fd_ >= 0) {
    close(control_fd_);
    unlink(control_path_.c_str());
  }
}

absl::Status Server::OpenControlSocket() {
  if (control_path_.empty()) return absl::OkStatus();
  absl::StatusOr<int> fd = ListenControlSocket(control_path_);
  if (!fd.ok()) {
    control_path_.clear();  // not ours: ~Server must not unlink it
    return fd.status();
  }
  control_fd_ = *fd;
  return absl::OkStatus();
}

absl::Status Server::Run() {
  {
    const core::Config& cfg = runtime_.snapshot->config;
    std::string status = absl::StrCat("serving: ", shards_.size(), " shards, generation ",
                                      runtime_.snapshot->generation);
    for (const core::ListenerConfig& listener : cfg.listeners) {
      absl::StrAppend(&status, ", ", listener.name, " ", listener.address.ToString());
    }
    NotifyService(ServiceState::kReady, status);
  }
  while (true) {
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {control_fd_, POLLIN, 0}};
    const int nfds = control_fd_ >= 0 ? 2 : 1;
    // Wake up now and then to notice shards that have finished draining.
    int rc = poll(fds, nfds, 200);
    if (rc < 0 && errno != EINTR) return core::ErrnoStatus(errno, "poll");
    if (rc > 0 && (fds[0].revents & POLLIN)) {
      signalfd_siginfo info;
      if (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGHUP) {
          core::LogInfo(absl::StrCat("SIGHUP: ", Reload()));
        } else if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) {
          core::LogInfo(
              absl::StrCat(info.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT", ": ", Drain()));
        }
      }
    }
    if (rc > 0 && nfds == 2 && (fds[1].revents & POLLIN)) {
      int client = accept4(control_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        HandleControlClient(client);
        close(client);
      }
    }
    if (draining_.load(std::memory_order_relaxed)) {
      // Shards return from Run() once drained; join them as they finish.
      bool all_done = true;
      for (auto& shard : shards_) {
        if (shard->counters().connections_open.load(std::memory_order_relaxed) != 0) {
          all_done = false;
        }
      }
      if (all_done) {
        for (auto& t : threads_) t.join();
        threads_.clear();
        core::LogInfo("ringmx stopped");
        return absl::OkStatus();
      }
    }
  }
}

void Server::HandleControlClient(int fd) {
  // One command per line; a short, bounded read (the client is local and trusted by file mode).
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string line;
  char buf[256];
  while (line.find('\n') == std::string::npos && line.size() < 1024) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  std::string command(core::Sv(absl::StripAsciiWhitespace(line.substr(0, line.find('\n')))));
  std::string reply;
  if (command == "reload") {
    reply = Reload();
  } else if (command == "stats") {
    reply = Stats();
  } else if (command == "metrics") {
    reply = Metrics();
  } else if (command == "version") {
    reply = VersionJson(VersionFacts::ForThisProcess(runtime_.snapshot->config.tls.ktls));
  } else if (command == "certs") {
    reply = CertsJson(runtime_, clock_->Now());
  } else if (command == "drain") {
    reply = Drain();
  } else if (command == "queue" || absl::StartsWith(command, "queue ")) {
    reply = QueueCommand(shards_, std::string_view(command).substr(strlen("queue")),
                         absl::ToUnixMicros(clock_->Now()));
  } else if (command == "advance-clock-for-test" ||
             absl::StartsWith(command, "advance-clock-for-test ")) {
    // Hidden: only for servers started with --test-clock (AdvanceClockForTest refuses otherwise).
    std::string_view ms_text = command;
    ms_text.remove_prefix(strlen("advance-clock-for-test"));
    int64_t ms = 0;
    if (!absl::SimpleAtoi(core::Av(ms_text), &ms) || ms <= 0) {
      reply = "error usage: advance-clock-for-test MILLISECONDS (a positive integer)";
    } else {
      reply = AdvanceClockForTest(absl::Milliseconds(ms));
    }
  } else {
    reply = absl::StrCat("error unknown command \"", command,
                         "\" (commands: reload, stats, metrics, version, certs, drain, queue)");
  }
  if (reply.empty() || reply.back() != '\n') reply.push_back('\n');
  WriteAll(fd, reply);
}

std::string Server::Reload() {
  NotifyService(ServiceState::kReloading, "reloading the config");
  std::string reply = ReloadNow();
  NotifyService(
      ServiceState::kReady,
      absl::StartsWith(reply, "ok ")
          ? absl::StrCat("serving: ", shards_.size(), " shards, reloaded ", reply.substr(3))
          : absl::StrCat("serving the previous config; reload failed: ", reply));
  return reply;
}

std::string Server::ReloadNow() {
  // Everything is built and checked here, on the control thread, before any shard sees it: the
  // config, every certificate and table it names, and the sockets of added listeners. Any failure
  // leaves the running generation as it is; success is published to every shard in one step.
  const auto refuse = [](const std::string& why) {
    core::LogError(absl::StrCat("reload failed, keeping the running config: ", why));
    return absl::StrCat("error ", why);
  };
  absl::StatusOr<core::Config> config = core::LoadConfigFile(config_path_);
  if (!config.ok()) return refuse(std::string(config.status().message()));
  const core::Config& running = runtime_.snapshot->config;
  if (absl::Status live = CheckRestartOnlyKeys(running, *config); !live.ok()) {
    return refuse(std::string(live.message()));
  }

  // Listeners: kept (same socket), added (bound now), removed (closed by the shards once they
  // have the new generation). listener_fds_ is by index in the running config.
  const size_t workers = shards_.size();
  std::vector<std::vector<int>> fds(config->listeners.size());
  std::vector<bool> kept(running.listeners.size(), false);
  std::vector<size_t> added;
  const auto close_added = [&] {
    for (size_t i : added) CloseAll(fds[i]);
  };
  for (size_t i = 0; i < config->listeners.size(); ++i) {
    core::ListenerConfig& next = config->listeners[i];
    size_t j = 0;
    while (j < running.listeners.size() &&
           (kept[j] || !SameListenerSocket(running.listeners[j], next))) {
      ++j;
    }
    if (j < running.listeners.size()) {
      kept[j] = true;
      fds[i] = listener_fds_[j];
      next.address = running.listeners[j].address;  // the port actually bound
      continue;
    }
    absl::StatusOr<ListenerSockets> sockets = OpenListenerSockets(next, static_cast<int>(workers));
    if (!sockets.ok()) {
      close_added();
      return refuse(absl::StrCat("listener[", i, "]: ", sockets.status().message()));
    }
    fds[i] = std::move(sockets->fds);
    next.address = sockets->bound;
    added.push_back(i);
  }

  absl::StatusOr<Runtime> runtime =
      BuildRuntime(*std::move(config), runtime_.snapshot->generation + 1);
  if (!runtime.ok()) {
    close_added();
    return refuse(std::string(runtime.status().message()));
  }

  // Publish.
  std::vector<std::string> removed;
  for (size_t j = 0; j < running.listeners.size(); ++j) {
    if (!kept[j]) {
      removed.push_back(
          absl::StrCat(running.listeners[j].name, " ", running.listeners[j].address.ToString()));
    }
  }
  runtime_ = *std::move(runtime);
  listener_fds_ = std::move(fds);
  generation_.store(runtime_.snapshot->generation, std::memory_order_relaxed);
  for (size_t s = 0; s < workers; ++s) {
    std::vector<ShardListener> listeners;
    for (size_t i = 0; i < listener_fds_.size(); ++i) {
      listeners.push_back(ShardListener{i, listener_fds_[i][s]});
    }
    shards_[s]->mailbox().Post(ShardMessage::Snapshot(runtime_, std::move(listeners)));
  }
  const core::Config& cfg = runtime_.snapshot->config;
  for (size_t i : added) {
    core::LogInfo(absl::StrCat("listening name=", cfg.listeners[i].name,
                               " address=", cfg.listeners[i].address.ToString(),
                               " shards=", workers, " (added by reload)"));
  }
  for (const std::string& listener : removed) {
    core::LogInfo(absl::StrCat("listener removed by reload: ", listener,
                               " (no new connections; its sessions finish)"));
  }
  core::LogInfo(absl::StrCat("reloaded config generation=", runtime_.snapshot->generation));
  return absl::StrCat("ok generation=", runtime_.snapshot->generation);
}

core::StatsSnapshot Server::CollectStats() const {
  core::StatsSnapshot stats;
  stats.generation = generation_.load(std::memory_order_relaxed);
  stats.draining = draining_.load(std::memory_order_relaxed);
  stats.config_snapshots_live = core::Snapshot::LiveCount();
  stats.shards.reserve(shards_.size());
  for (const auto& shard : shards_) stats.shards.push_back(ReadShardStats(*shard));
  return stats;
}

std::string Server::Metrics() const { return core::RenderPrometheus(CollectStats()); }

std::string Server::Stats() const {
  core::StatsSnapshot stats = CollectStats();
  // The queue by state comes from the shards' own threads; a draining shard no longer answers.
  if (!stats.draining) CollectQueueSizes(shards_, absl::Seconds(5), stats);
  return core::RenderStatsJson(stats);
}

absl::Status Server::StartMetrics() {
  const std::optional<core::Endpoint>& address = runtime_.snapshot->config.metrics.address;
  if (!address.has_value()) return absl::OkStatus();
  sockaddr_storage storage;
  const socklen_t len = ToSockaddr(*address, storage);
  metrics_fd_ = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (metrics_fd_ < 0) return core::ErrnoStatus(errno, "metrics socket");
  const int one = 1;
  setsockopt(metrics_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const std::string where = address->ToString();
  if (bind(metrics_fd_, reinterpret_cast<sockaddr*>(&storage), len) < 0) {
    return core::ErrnoStatus(errno, absl::StrCat("metrics.address: bind ", where));
  }
  if (listen(metrics_fd_, 16) < 0) return core::ErrnoStatus(errno, "listen metrics socket");
  // Port 0 (tests) asks the kernel for one: log the address actually bound.
  core::Endpoint bound = *address;
  sockaddr_storage local;
  socklen_t local_len = sizeof(local);
  if (getsockname(metrics_fd_, reinterpret_cast<sockaddr*>(&local), &local_len) == 0) {
    EndpointFromSockaddr(&local, bound);
  }
  metrics_stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (metrics_stop_fd_ < 0) return core::ErrnoStatus(errno, "eventfd");
  metrics_thread_ = std::thread([this] { ServeMetrics(); });
  core::LogInfo(absl::StrCat("metrics listening address=", bound.ToString(), " path=/metrics"));
  return absl::OkStatus();
}

void Server::ServeMetrics() {
  while (true) {
    pollfd fds[2] = {{metrics_stop_fd_, POLLIN, 0}, {metrics_fd_, POLLIN, 0}};
    const int rc = poll(fds, 2, -1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      core::LogError(absl::StrCat("metrics: poll: ", strerror(errno), "; metrics off"));
      return;
    }
    if (fds[0].revents & POLLIN) return;
    if (fds[1].revents & POLLIN) {
      const int client = accept4(metrics_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        HandleMetricsClient(client);
        close(client);
      }
    }
  }
}

void Server::HandleMetricsClient(int fd) {
  // A scraper sends a short head at once; a client that dawdles or sends too much gets at most
  // 2 s of this thread (never the shards' or the control loop's).
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string head;
  char buf[1024];
  while (head.size() < core::kMaxMetricsRequestHead && head.find("\r\n\r\n") == std::string::npos &&
         head.find("\n\n") == std::string::npos) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    head.append(buf, static_cast<size_t>(n));
  }
  const bool complete =
      head.find("\r\n\r\n") != std::string::npos || head.find("\n\n") != std::string::npos;
  const core::MetricsRequest request =
      complete ? core::ParseMetricsRequest(head) : core::MetricsRequest::kBadRequest;
  std::string response;
  switch (request) {
    case core::MetricsRequest::kMetrics:
      response = core::HttpResponse(200, Metrics());
      break;
    case core::MetricsRequest::kNotFound:
      response = core::HttpResponse(404, "not found: the metrics are at /metrics\n");
      break;
    case core::MetricsRequest::kMethodNotAllowed:
      response = core::HttpResponse(405, "only GET\n");
      break;
    case core::MetricsRequest::kBadRequest:
      response = core::HttpResponse(400, "bad request\n");
      break;
  }
  WriteAll(fd, response);
  shutdown(fd, SHUT_WR);
}

void Server::StopMetrics() {
  if (metrics_thread_.joinable()) {
    const uint64_t one = 1;
    if (write(metrics_stop_fd_, &one, sizeof(one)) != sizeof(one)) {
      core::LogError("metrics: cannot stop the metrics thread");
    }
    metrics_thread_.join();
  }
  if (metrics_fd_ >= 0) close(metrics_fd_);
  if (metrics_stop_fd_ >= 0) close(metrics_stop_fd_);
  metrics_fd_ = metrics_stop_fd_ = -1;
}

std::string Server::Drain() {
  if (!draining_.load(std::memory_order_relaxed)) {
    draining_.store(true, std::memory_order_relaxed);
    NotifyService(ServiceState::kStopping, "draining: finishing the sessions in progress");
    for (auto& shard : shards_) shard->mailbox().Post(ShardMessage::Drain());
  }
  return "ok draining";
}

std::string Server::AdvanceClockForTest(absl::Duration by) {
  if (test_clock_ == nullptr) {
    return "error advance-clock-for-test: the server was not started with --test-clock";
  }
  test_clock_->AdvanceForTest(by);
  const std::string offset =
      absl::StrCat("offset_ms=", absl::ToInt64Milliseconds(test_clock_->offset()));
  core::LogInfo(absl::StrCat("test clock advanced by ", absl::FormatDuration(by), " ", offset));
  if (draining_.load(std::memory_order_relaxed)) {
    // A draining shard no longer reads its mailbox; its next tick (within 100 ms) sees the time.
    return absl::StrCat("ok ", offset, " (draining: shards see it at their next tick)");
  }
  std::vector<std::future<void>> ticked;
  for (auto& shard : shards_) {
    auto promise = std::make_shared<std::promise<void>>();
    ticked.push_back(promise->get_future());
    ShardMessage message;
    message.kind = ShardMessage::Kind::kTickForTest;
    message.done = [promise] { promise->set_value(); };
    shard->mailbox().Post(std::move(message));
  }
  for (size_t s = 0; s < ticked.size(); ++s) {
    // Bounded below the control client's 30 s read timeout.
    if (ticked[s].wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      return absl::StrCat("error shard ", s, " did not check its deadlines within 20 s");
    }
  }
  return absl::StrCat("ok ", offset);
}

absl::StatusOr<std::string> ControlRequest(const std::string& socket_path,
                                           const std::string& command, bool strip_newlines) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError("control socket path too long");
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return core::ErrnoStatus(errno, "socket");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    const int err = errno;
    close(fd);
    return core::ErrnoStatus(err, absl::StrCat("connect ", socket_path));
  }
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (!WriteAll(fd, absl::StrCat(command, "\n"))) {
    const int err = errno;
    close(fd);
    return core::ErrnoStatus(err, "write control socket");
  }
  std::string reply;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  while (strip_newlines && !reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) {
    reply.pop_back();
  }
  if (reply.empty()) return absl::UnavailableError("no reply from the control socket");
  return reply;
}

}  // namespace ringmx::net

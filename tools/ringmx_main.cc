// ringmx: the server and its command-line tools.
//   ringmx serve -c FILE          run the server
//   ringmx check -c FILE          validate a config file and exit
//   ringmx ctl [-c FILE | -s SOCKET] reload|stats|drain
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <vector>

#ifdef RINGMX_WITH_MIMALLOC
#include <mimalloc.h>
#endif

#include "absl/strings/str_cat.h"
#include "core/config.h"
#include "core/log.h"
#include "net/server.h"

namespace {

using ringmx::core::Config;

constexpr char kUsage[] =
    "usage:\n"
    "  ringmx serve -c FILE\n"
    "  ringmx check -c FILE\n"
    "  ringmx ctl [-c FILE | -s SOCKET] reload|stats|drain\n";

struct Args {
  std::string command;
  std::string config = "/etc/ringmx/ringmx.toml";
  std::string socket;
  std::vector<std::string> rest;
};

bool ParseArgs(int argc, char** argv, Args& args) {
  if (argc < 2) return false;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) {
      args.config = argv[++i];
    } else if ((a == "-s" || a == "--socket") && i + 1 < argc) {
      args.socket = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      fprintf(stderr, "ringmx: unknown option %s\n", a.c_str());
      return false;
    } else {
      args.rest.push_back(a);
    }
  }
  return true;
}

// Room for many connections: take the hard limit of open files.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Check(const Args& args) {
  absl::StatusOr<Config> config = ringmx::core::LoadConfigFile(args.config);
  if (!config.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  printf("ringmx: %s: ok (%zu listener%s, hostname %s)\n", args.config.c_str(),
         config->listeners.size(), config->listeners.size() == 1 ? "" : "s",
         config->hostname.c_str());
  return 0;
}

int Serve(const Args& args) {
  absl::StatusOr<Config> config = ringmx::core::LoadConfigFile(args.config);
  if (!config.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (!config->log.file.empty()) {
    int fd = open(config->log.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      fprintf(stderr, "ringmx: log.file: cannot open %s: %s\n", config->log.file.c_str(),
              strerror(errno));
      return 1;
    }
    ringmx::core::SetLogFd(fd);
  }
  RaiseFileLimit();
#ifdef RINGMX_WITH_MIMALLOC
  ringmx::core::LogInfo(absl::StrCat("allocator mimalloc ", mi_version()));
#endif
  auto server = ringmx::net::Server::Start(args.config, *std::move(config));
  if (!server.ok()) {
    ringmx::core::LogError(absl::StrCat("start failed: ", server.status().ToString()));
    fprintf(stderr, "ringmx: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  absl::Status status = (*server)->Run();
  server->reset();
  if (!status.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

int Ctl(const Args& args) {
  if (args.rest.size() != 1) {
    fputs(kUsage, stderr);
    return 2;
  }
  std::string socket = args.socket;
  if (socket.empty()) {
    absl::StatusOr<Config> config = ringmx::core::LoadConfigFile(args.config);
    if (!config.ok()) {
      fprintf(stderr, "ringmx: %s\n", std::string(config.status().message()).c_str());
      return 1;
    }
    socket = config->control.socket;
    if (socket.empty()) {
      fprintf(stderr, "ringmx: control.socket is not set in %s\n", args.config.c_str());
      return 1;
    }
  }
  absl::StatusOr<std::string> reply = ringmx::net::ControlRequest(socket, args.rest[0]);
  if (!reply.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(reply.status().message()).c_str());
    return 1;
  }
  printf("%s\n", reply->c_str());
  return reply->rfind("error", 0) == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    fputs(kUsage, stderr);
    return 2;
  }
  if (args.command == "serve") return Serve(args);
  if (args.command == "check") return Check(args);
  if (args.command == "ctl") return Ctl(args);
  if (args.command == "help" || args.command == "--help" || args.command == "-h") {
    fputs(kUsage, stdout);
    return 0;
  }
  fprintf(stderr, "ringmx: unknown command \"%s\"\n%s", args.command.c_str(), kUsage);
  return 2;
}

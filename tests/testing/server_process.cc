#include "tests/testing/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace ringmx::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<int> WaitPid(pid_t pid, absl::Time deadline) {
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return -WTERMSIG(status);
      return -1;
    }
    if (r < 0) return -1;
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

namespace {

pid_t Spawn(const std::vector<std::string>& argv, int out_fd) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

}  // namespace

std::string RingmxBinary() { return RINGMX_BINARY_PATH; }

std::string BasicConfig(const TempDir& dir, const std::string& policy_extra,
                        const std::string& extra, bool relay, int workers) {
  return absl::StrCat("hostname = \"mx.example.test\"\nworkers = ", workers,
                      "\n\n[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\n\n"
                      "[policy]\nlocal_domains = [\"example.test\"]\nrelay_networks = [",
                      relay ? "\"127.0.0.0/8\"" : "", "]\n", policy_extra, "\n[spool]\npath = \"",
                      dir.path(), "/spool\"\n\n[control]\nsocket = \"", dir.path(),
                      "/control.sock\"\n\n", extra);
}

CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  CommandResult result;
  char tmpl[] = "/tmp/ringmx-cmd-XXXXXX";
  int fd = mkstemp(tmpl);
  if (fd < 0) return result;
  pid_t pid = Spawn(argv, fd);
  std::optional<int> code = WaitPid(pid, absl::Now() + timeout);
  if (!code) {
    kill(pid, SIGKILL);
    WaitPid(pid, absl::InfiniteFuture());
  }
  close(fd);
  result.exit_code = code.value_or(-1);
  result.output = ReadFile(tmpl);
  unlink(tmpl);
  return result;
}

std::unique_ptr<ServerProcess> ServerProcess::Start(const TempDir& dir,
                                                    const std::string& config_toml,
                                                    std::string* error, absl::Duration timeout,
                                                    bool test_clock) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  server->config_path_ = dir / "ringmx.toml";
  server->log_path_ = dir / "ringmx.log";
  server->spool_ = dir / "spool";
  {
    std::ofstream out(server->config_path_, std::ios::binary | std::ios::trunc);
    out << config_toml;
  }
  int log_fd = open(server->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    if (error) *error = "cannot create log file";
    return nullptr;
  }
  std::vector<std::string> argv = {RingmxBinary(), "serve", "-c", server->config_path_};
  if (test_clock) argv.push_back("--test-clock");
  server->pid_ = Spawn(argv, log_fd);
  close(log_fd);
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const std::string log = server->Log();
    if (log.find("ringmx ready") != std::string::npos) {
      // "listening name=mx address=127.0.0.1:40123 shards=2"
      size_t pos = 0;
      while ((pos = log.find("listening name=", pos)) != std::string::npos) {
        size_t name_start = pos + strlen("listening name=");
        size_t name_end = log.find(' ', name_start);
        size_t addr_start = log.find("address=", name_end) + strlen("address=");
        size_t addr_end = log.find(' ', addr_start);
        std::string address = log.substr(addr_start, addr_end - addr_start);
        int port = 0;
        absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port);
        server->ports_[log.substr(name_start, name_end - name_start)] = static_cast<uint16_t>(port);
        pos = addr_end;
      }
      return server;
    }
    std::optional<int> exited = WaitPid(server->pid_, absl::Now());
    if (exited.has_value()) {
      server->exited_ = true;
      if (error) *error = absl::StrCat("ringmx exited with ", *exited, ":\n", log);
      return nullptr;
    }
    if (absl::Now() >= deadline) {
      if (error) *error = absl::StrCat("ringmx not ready in time:\n", log);
      return nullptr;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGKILL);
    WaitPid(pid_, absl::InfiniteFuture());
  }
}

uint16_t ServerProcess::port(const std::string& listener) const {
  auto it = ports_.find(listener);
  return it == ports_.end() ? 0 : it->second;
}

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

bool ServerProcess::WaitForLog(const std::string& needle, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (Log().find(needle) == std::string::npos) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

void ServerProcess::Signal(int signo) const {
  if (pid_ > 0 && !exited_) kill(pid_, signo);
}

std::string ServerProcess::Control(const std::string& command) const {
  std::vector<std::string> argv = {RingmxBinary(), "ctl", "-c", config_path_};
  for (absl::string_view word : absl::StrSplit(command, ' ', absl::SkipEmpty())) {
    argv.emplace_back(word.data(), word.size());
  }
  // Generous: the command itself waits up to 20 s for the shards (advance-clock-for-test).
  return RunCommand(argv, absl::Seconds(60)).output;
}

bool ServerProcess::AdvanceClock(absl::Duration by) const {
  const std::string reply =
      Control(absl::StrCat("advance-clock-for-test ", absl::ToInt64Milliseconds(by)));
  return reply.rfind("ok ", 0) == 0;
}

int64_t ServerProcess::Stat(const std::string& key) const {
  const std::string reply = Control("--json stats");
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t pos = reply.find(needle);
  if (pos == std::string::npos) return -1;
  const size_t start = pos + needle.size();
  const size_t end = reply.find_first_not_of("0123456789", start);
  int64_t value = -1;
  if (!absl::SimpleAtoi(reply.substr(start, end - start), &value)) return -1;
  return value;
}

std::optional<int> ServerProcess::WaitExit(absl::Duration timeout) {
  if (exited_) return std::nullopt;
  std::optional<int> code = WaitPid(pid_, absl::Now() + timeout);
  if (code.has_value()) exited_ = true;
  return code;
}

}  // namespace ringmx::testing

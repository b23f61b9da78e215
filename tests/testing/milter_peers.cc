#include "tests/testing/milter_peers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

#include "core/json.h"
#include "smtp/milter/codec.h"
#include "tests/testing/next_hops.h"
#include "tests/testing/server_process.h"

namespace ringmx::testing {
namespace {

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kRspamd[] = "/usr/bin/rspamd";

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A blocking TCP connection to 127.0.0.1:`port`; -1 if refused.
int ConnectLoopback(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One attempt: connects, sends OPTNEG (version 6, every action and protocol flag we offer) and
// reads replies until an OPTNEG packet decodes (true) or the time is up or the peer errs.
bool OptNegAnswered(uint16_t port, absl::Duration timeout) {
  const int fd = ConnectLoopback(port);
  if (fd < 0) return false;
  std::string out;
  smtp::milter::AppendOptNeg(smtp::milter::kProtocolVersion, smtp::milter::action::kAll,
                             smtp::milter::proto::kAllV6, out);
  bool answered = false;
  if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size())) {
    smtp::milter::ReplyDecoder decoder;
    const absl::Time deadline = absl::Now() + timeout;
    char buf[4096];
    while (!answered && absl::Now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      const int ms =
          static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now())));
      if (poll(&p, 1, ms) <= 0) break;
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      std::string_view input(buf, static_cast<size_t>(n));
      while (!input.empty()) {
        auto reply = decoder.Next(input);
        if (!reply.ok()) break;
        if (!reply->has_value()) continue;
        if ((*reply)->kind == smtp::milter::MilterReply::Kind::kOptNeg) answered = true;
      }
      if (decoder.failed()) break;
    }
  }
  close(fd);
  return answered;
}

std::vector<std::string> StringsOf(const core::JsonValue* array) {
  std::vector<std::string> out;
  if (array == nullptr) return out;
  for (const core::JsonValue& v : array->elements()) out.push_back(v.text());
  return out;
}

std::optional<MilterEvent> ParseEvent(std::string_view line) {
  absl::StatusOr<core::JsonValue> json = core::ParseJson(line);
  if (!json.ok() || !json->is_object()) return std::nullopt;
  MilterEvent event;
  if (const core::JsonValue* conn = json->Find("conn"); conn != nullptr) {
    event.connection = static_cast<int>(conn->AsInt64().value_or(0));
  }
  if (const core::JsonValue* stage = json->Find("stage"); stage != nullptr) {
    event.stage = stage->text();
  }
  if (const core::JsonValue* result = json->Find("result"); result != nullptr) {
    event.result = result->text();
  }
  event.args = StringsOf(json->Find("args"));
  if (const core::JsonValue* macros = json->Find("macros"); macros != nullptr) {
    for (const auto& [name, value] : macros->members()) event.macros[name] = value.text();
  }
  if (const core::JsonValue* mods = json->Find("mods"); mods != nullptr) {
    for (const core::JsonValue& mod : mods->elements()) event.mods.push_back(StringsOf(&mod));
  }
  return event;
}

// Hands `path` (and everything below it) to `uid`:`gid`.
bool ChownTree(const std::string& path, uid_t uid, gid_t gid) {
  if (chown(path.c_str(), uid, gid) != 0) return false;
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(path, ec)) {
    if (chown(entry.path().c_str(), uid, gid) != 0) return false;
  }
  return !ec;
}

}  // namespace

bool WaitForMilter(uint16_t port, absl::Duration timeout) {
  return PollUntil([&] { return OptNegAnswered(port, std::min(absl::Seconds(10), timeout)); },
                   timeout);
}

// ---- PythonMilter -------------------------------------------------------------------------------

std::unique_ptr<PythonMilter> PythonMilter::Start(const std::string& dir, std::string* error,
                                                  const Options& options, absl::Duration timeout) {
  std::unique_ptr<PythonMilter> milter(new PythonMilter());
  milter->dir_ = std::filesystem::absolute(dir).string();
  milter->events_path_ = milter->dir_ + "/events.jsonl";
  std::error_code ec;
  std::filesystem::create_directories(milter->dir_, ec);
  if (ec) {
    if (error) *error = absl::StrCat("cannot create ", milter->dir_, ": ", ec.message());
    return nullptr;
  }
  const absl::Time deadline = absl::Now() + timeout;
  // The free port may be taken before the script binds it: then the script exits and we try
  // another (a few times).
  for (int attempt = 0; attempt < 5; ++attempt) {
    milter->port_ = FreeLoopbackPort();
    if (milter->port_ == 0) {
      if (error) *error = "no free port";
      return nullptr;
    }
    std::vector<std::string> argv = {kPython,
                                     RINGMX_TEST_MILTER_PATH,
                                     absl::StrCat(milter->port_),
                                     milter->events_path_,
                                     "--slow-seconds",
                                     absl::StrCat(options.slow_seconds)};
    if (options.symlist) argv.push_back("--symlist");
    if (!options.session_markers.empty()) {
      argv.push_back("--session-markers");
      argv.push_back(options.session_markers);
    }
    milter->pid_ = SpawnLogged(argv, milter->dir_ + "/milter.log");
    if (milter->pid_ < 0) {
      if (error) *error = "cannot start test_milter.py";
      return nullptr;
    }
    bool exited = false;
    const bool ready = PollUntil(
        [&] {
          if (WaitPid(milter->pid_, absl::Now()).has_value()) {
            exited = true;
            return true;
          }
          const int fd = ConnectLoopback(milter->port_);
          if (fd < 0) return false;
          close(fd);
          return true;
        },
        deadline - absl::Now());
    if (ready && !exited) return milter;
    if (!exited) {
      if (error) *error = absl::StrCat("test_milter.py not ready in time:\n", milter->Log());
      return nullptr;  // the destructor stops it
    }
    milter->pid_ = -1;
    if (absl::Now() >= deadline) break;
  }
  if (error) *error = absl::StrCat("test_milter.py exited at start:\n", milter->Log());
  return nullptr;
}

PythonMilter::~PythonMilter() { Stop(); }

std::string PythonMilter::address() const { return absl::StrCat("inet:127.0.0.1:", port_); }

std::vector<MilterEvent> PythonMilter::Events() const {
  std::vector<MilterEvent> events;
  const std::string text = ReadText(events_path_);
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::optional<MilterEvent> event = ParseEvent(std::string_view(line.data(), line.size()));
    if (event.has_value()) events.push_back(std::move(*event));
  }
  return events;
}

std::vector<MilterEvent> PythonMilter::EventsOf(int connection) const {
  std::vector<MilterEvent> events = Events();
  std::erase_if(events, [&](const MilterEvent& e) { return e.connection != connection; });
  return events;
}

int PythonMilter::LastConnection() const {
  int last = 0;
  for (const MilterEvent& e : Events()) last = std::max(last, e.connection);
  return last;
}

std::optional<MilterEvent> PythonMilter::WaitForEvent(
    const std::function<bool(const MilterEvent&)>& match, absl::Duration timeout) const {
  std::optional<MilterEvent> found;
  PollUntil(
      [&] {
        for (MilterEvent& e : Events()) {
          if (match(e)) {
            found = std::move(e);
            return true;
          }
        }
        return false;
      },
      timeout);
  return found;
}

std::string PythonMilter::Log() const { return ReadText(dir_ + "/milter.log"); }

bool PythonMilter::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return true;
  // SIGKILL: libmilter notices SIGTERM only when its listener's 5-second poll ends, and the
  // script has nothing to save (every log line is flushed as it is written).
  kill(pid_, SIGKILL);
  const bool in_time = WaitPid(pid_, absl::Now() + timeout).has_value();
  if (!in_time) WaitPid(pid_, absl::InfiniteFuture());  // SIGKILL cannot be refused
  pid_ = -1;
  return in_time;
}

// ---- Rspamd -------------------------------------------------------------------------------------

std::unique_ptr<Rspamd> Rspamd::Start(const std::string& dir, std::string* error,
                                      absl::Duration timeout) {
  if (geteuid() != 0) {
    if (error) *error = "Rspamd needs root (it hands its directory to an unprivileged user)";
    return nullptr;
  }
  if (access(kRspamd, X_OK) != 0) {
    if (error) *error = "rspamd is not installed (bash tools/install-deps.sh)";
    return nullptr;
  }
  std::unique_ptr<Rspamd> rspamd(new Rspamd());
  rspamd->dir_ = std::filesystem::absolute(dir).string();
  const std::string& d = rspamd->dir_;
  if (!MakeReachableDir(d, error) || !MakeReachableDir(d + "/local.d", error) ||
      !MakeReachableDir(d + "/db", error) || !MakeReachableDir(d + "/run", error) ||
      !MakeReachableDir(d + "/log", error)) {
    return nullptr;
  }
  rspamd->port_ = FreeLoopbackPort();
  // Debian's stock rules and modules (common.conf, whose modules.d/*.conf read our local.d via
  // $LOCAL_CONFDIR); our own options, logging and workers. One worker: the milter proxy, which
  // scans by itself. hs_helper is forked by rspamd anyway (it compiles the hyperscan cache into
  // db/ in the background; the scanner does not wait for it).
  const std::string config = absl::StrReplaceAll(
      R"(.include "$CONFDIR/common.conf"
options {
  pidfile = "$DIR/run/rspamd.pid";
  filters = "chartable,regexp";
  cache_file = "$DIR/db/symbols.cache";
  dynamic_conf = "$DIR/db/rspamd_dynamic";
  history_file = "$DIR/db/rspamd.history";
  control_socket = "$DIR/db/rspamd.sock mode=0600";
  hs_cache_dir = "$DIR/db/";
  tempdir = "$DIR/db";
  url_tld = "$DIR/tld.dat";
  local_addrs = [];
  task_timeout = 8s;
  dns {
    nameserver = ["127.0.0.1:1"];
    timeout = 0.1s;
    retransmits = 1;
    sockets = 1;
  }
}
logging {
  type = "file";
  filename = "$DIR/log/rspamd.log";
  level = "info";
}
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:$PORT";
  milter = yes;
  # Scans in the proxy itself: the default upstream is the proxy's own scanner.
  upstream "local" {
    default = yes;
    self_scan = yes;
  }
  timeout = 120s;
  count = 1;
  spam_header = "X-Spam";
  reject_message = "Spam message rejected";
  discard_on_reject = false;
  quarantine_on_reject = false;
}
)",
      {{"$DIR", d}, {"$PORT", absl::StrCat(rspamd->port_)}});
  // Modules that need the network (DNS, HTTP maps) or redis: off. dkim (the C module) is left out
  // of options.filters instead.
  static constexpr const char* kOff[] = {
      "rbl",
      "fuzzy_check",
      "spf",
      "dmarc",
      "asn",
      "phishing",
      "multimap",
      "whitelist",
      "mime_types",
      "mid",
      "rspamd_update",
      "hfilter",
      "arc",
      "emails",
      "url_redirector",
      "reputation",
      "neural",
      "greylist",
      "ratelimit",
      "replies",
      "history_redis",
      "bimi",
      "dcc",
      "mx_check",
      "once_received",
      "dkim_signing",
      "spamtrap",
      "metadata_exporter",
      "clickhouse",
      "elastic",
  };
  bool written = rspamd->port_ != 0 && WriteFileAtomic(d + "/rspamd.conf", config) &&
                 WriteFileAtomic(d + "/tld.dat", "com\norg\nnet\ntest\nexample\n") &&
                 WriteFileAtomic(d + "/local.d/milter_headers.conf",
                                 "extended_spam_headers = true;\nskip_local = false;\n"
                                 "skip_authenticated = false;\n");
  for (const char* module : kOff) {
    written = written &&
              WriteFileAtomic(absl::StrCat(d, "/local.d/", module, ".conf"), "enabled = false;\n");
  }
  if (!written) {
    if (error) *error = "cannot write rspamd's files or find a free port";
    return nullptr;
  }
  if (!rspamd->Launch(error, timeout)) return nullptr;
  return rspamd;
}

bool Rspamd::Launch(std::string* error, absl::Duration timeout) {
  // rspamd refuses to run its workers as root.
  std::string user = "_rspamd";
  const passwd* pw = getpwnam(user.c_str());
  if (pw == nullptr) {
    user = "nobody";
    pw = getpwnam(user.c_str());
  }
  if (pw == nullptr) {
    if (error) *error = "neither _rspamd nor nobody exists";
    return false;
  }
  const group* gr = getgrgid(pw->pw_gid);
  const std::string group_name = gr != nullptr ? gr->gr_name : "nogroup";
  if (!ChownTree(dir_, pw->pw_uid, pw->pw_gid)) {
    if (error) *error = absl::StrCat("cannot hand ", dir_, " to ", user);
    return false;
  }
  const absl::Time start = absl::Now();
  pid_ = SpawnLogged({kRspamd, "-f", "-u", user, "-g", group_name, "-c", dir_ + "/rspamd.conf",
                      "--var", "LOCAL_CONFDIR=" + dir_, "--var", "DBDIR=" + dir_ + "/db", "--var",
                      "RUNDIR=" + dir_ + "/run", "--var", "LOGDIR=" + dir_ + "/log"},
                     dir_ + "/rspamd.out", /*own_process_group=*/true);
  if (pid_ < 0) {
    if (error) *error = "cannot start rspamd";
    return false;
  }
  bool exited = false;
  const bool ready = PollUntil(
      [&] {
        if (WaitPid(pid_, absl::Now()).has_value()) {
          exited = true;
          return true;
        }
        return OptNegAnswered(port_, absl::Seconds(5));
      },
      timeout);
  startup_time_ = absl::Now() - start;
  if (ready && !exited) return true;
  if (exited) {
    pid_ = -1;
    if (error) *error = absl::StrCat("rspamd exited at start:\n", Log());
  } else if (error) {
    *error = absl::StrCat("rspamd not ready in ", absl::FormatDuration(timeout), ":\n", Log());
  }
  return false;
}

Rspamd::~Rspamd() { Stop(); }

std::string Rspamd::address() const { return absl::StrCat("inet:127.0.0.1:", port_); }

bool Rspamd::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return true;
  const pid_t main = pid_;
  pid_ = -1;
  // SIGTERM: the main process ends its workers and exits. Now and then (about 1 run in 10 here)
  // a worker does not end and the main process waits 16 s for it before killing it: after a
  // short grace, SIGKILL to rspamd's process group (the main process and the workers it forked,
  // nothing else: the group was made for it at spawn).
  kill(main, SIGTERM);
  if (WaitPid(main, absl::Now() + std::min(timeout, absl::Seconds(3))).has_value()) return true;
  kill(-main, SIGKILL);
  return WaitPid(main, absl::Now() + timeout).has_value();
}

bool Rspamd::Restart(std::string* error, absl::Duration timeout) {
  if (pid_ > 0) return true;
  return Launch(error, timeout);
}

std::string Rspamd::Log() const {
  return absl::StrCat(ReadText(dir_ + "/rspamd.out"), ReadText(dir_ + "/log/rspamd.log"));
}

}  // namespace ringmx::testing

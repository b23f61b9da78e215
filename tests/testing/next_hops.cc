#include "tests/testing/next_hops.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"

namespace ringmx::testing {
namespace {

// The owner of stored mail when the test runs as root: Dovecot refuses uid 0 (first_valid_uid)
// and Postfix's virtual(8) too (virtual_minimum_uid). Debian's nobody/nogroup.
constexpr uid_t kMailUid = 65534;
constexpr gid_t kMailGid = 65534;

constexpr char kDovecot[] = "/usr/sbin/dovecot";
constexpr char kPostfix[] = "/usr/sbin/postfix";
constexpr char kPython[] = "/usr/bin/python3";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool MakeMailDir(const std::string& dir, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || chown(dir.c_str(), kMailUid, kMailGid) != 0 || chmod(dir.c_str(), 0700) != 0) {
    if (error) *error = absl::StrCat("cannot prepare ", dir);
    return false;
  }
  return true;
}

// Runs `argv` to its end (SpawnLogged, so that a daemon it starts inherits nothing of the test);
// its exit code, or -1 if it did not end within `timeout` (then it is killed).
int RunLogged(const std::vector<std::string>& argv, const std::string& log_path,
              absl::Duration timeout) {
  const pid_t pid = SpawnLogged(argv, log_path);
  if (pid < 0) return -1;
  std::optional<int> code = WaitPid(pid, absl::Now() + timeout);
  if (code.has_value()) return *code;
  kill(pid, SIGKILL);
  WaitPid(pid, absl::InfiniteFuture());
  return -1;
}

// True once `pid` no longer exists or is a zombie (a process that is not our child, like
// Postfix's master, is reaped by someone else, maybe late).
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// One attempt: connects and reads a whole reply; its code (-1 if none).
int GreetingCode(uint16_t port, absl::Duration timeout) {
  auto client = SmtpClient::Connect("127.0.0.1", port);
  if (client == nullptr) return -1;
  return client->ReadReply(timeout).code;
}

bool IsSocket(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::vector<std::string> LinesOf(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// The path inside the first <...> of a MAIL or RCPT command line, without the brackets.
std::string PathOf(const std::string& command) {
  const size_t open = command.find('<');
  const size_t close = command.find('>', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos) return "";
  return command.substr(open + 1, close - open - 1);
}

}  // namespace

bool WriteFileAtomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) return false;
  }
  return rename(tmp.c_str(), path.c_str()) == 0;
}

bool MakeReachableDir(const std::string& dir, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || chmod(dir.c_str(), 0711) != 0) {
    if (error) *error = absl::StrCat("cannot create ", dir, ": ", ec.message());
    return false;
  }
  std::filesystem::path p = std::filesystem::absolute(dir).parent_path();
  for (int depth = 0; depth < 64 && !p.empty() && p != p.root_path(); ++depth) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0) break;
    if ((st.st_mode & S_IXOTH) != 0) break;  // this one and (normally) those above are reachable
    chmod(p.c_str(), (st.st_mode & 07777) | S_IXOTH);
    p = p.parent_path();
  }
  return true;
}

pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log_path,
                  bool own_process_group) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    if (own_process_group) setpgid(0, 0);
    const int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    close_range(3, ~0U, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    execv(args[0], args.data());
    _exit(127);
  }
  // Also here, so that the group exists before the caller may signal it.
  if (pid > 0 && own_process_group) setpgid(pid, pid);
  close(log_fd);
  return pid;
}

bool StopChild(pid_t pid, absl::Duration timeout) {
  kill(pid, SIGTERM);
  if (WaitPid(pid, absl::Now() + timeout).has_value()) return true;
  kill(pid, SIGKILL);
  WaitPid(pid, absl::InfiniteFuture());
  return false;
}

bool PollUntil(const std::function<bool()>& done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

namespace {

// A TCP socket bound to 127.0.0.1 on a port the kernel chose, that port in `port`; -1 on failure.
int BindLoopback(uint16_t& port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

uint16_t FreeLoopbackPort() {
  uint16_t port = 0;
  const int fd = BindLoopback(port);
  if (fd < 0) return 0;
  close(fd);
  return port;
}

int ListenOnLoopback(uint16_t& port, int backlog) {
  const int fd = BindLoopback(port);
  if (fd < 0) return -1;
  if (listen(fd, backlog) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WaitForGreeting(uint16_t port, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (int attempt = 0; attempt < 100000; ++attempt) {
    if (GreetingCode(port, std::min(absl::Seconds(5), timeout)) == 220) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

std::string LfToCrlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) out.push_back('\r');
    out.push_back(text[i]);
  }
  return out;
}

std::string WithoutReturnPath(std::string_view stored) {
  if (!stored.starts_with("Return-Path:")) return std::string(stored);
  const size_t eol = stored.find('\n');
  if (eol == std::string_view::npos) return std::string(stored);
  return std::string(stored.substr(eol + 1));
}

std::vector<std::string> ReadMaildir(const std::string& maildir) {
  std::vector<std::pair<std::string, std::string>> files;
  for (const char* sub : {"new", "cur"}) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(maildir + "/" + sub, ec)) {
      if (!entry.is_regular_file()) continue;
      files.emplace_back(entry.path().filename().string(), ReadFile(entry.path().string()));
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> messages;
  for (auto& [name, content] : files) messages.push_back(std::move(content));
  return messages;
}

// ---- DovecotLmtp --------------------------------------------------------------------------------

std::unique_ptr<DovecotLmtp> DovecotLmtp::Start(const std::string& dir,
                                                const std::vector<std::string>& users,
                                                std::string* error, absl::Duration timeout) {
  if (geteuid() != 0) {
    if (error) *error = "DovecotLmtp needs root (it runs Dovecot's master and its users)";
    return nullptr;
  }
  if (access(kDovecot, X_OK) != 0) {
    if (error) *error = "dovecot is not installed (bash tools/install-deps.sh)";
    return nullptr;
  }
  std::unique_ptr<DovecotLmtp> hop(new DovecotLmtp());
  hop->dir_ = std::filesystem::absolute(dir).string();
  const std::string& d = hop->dir_;
  if (!MakeReachableDir(d, error) || !MakeReachableDir(d + "/run", error) ||
      !MakeReachableDir(d + "/state", error) || !MakeMailDir(d + "/mail", error)) {
    return nullptr;
  }
  std::string passwd;
  for (const std::string& user : users) absl::StrAppend(&passwd, user, "::::::\n");
  hop->port_ = FreeLoopbackPort();
  hop->socket_path_ = d + "/lmtp.sock";
  hop->config_path_ = d + "/dovecot.conf";
  // A private instance: its own base_dir, state_dir and log, LMTP only, no SSL. The userdb drops
  // the domain (%n) and gives every user the mail uid; mail is saved with CRLF so that it is
  // byte-exact, and LMTP adds no Received or Delivered-To header (only Return-Path).
  const std::string config = absl::StrReplaceAll(
      R"(instance_name = ringmx-test-$PORT
base_dir = $DIR/run
state_dir = $DIR/state
log_path = $DIR/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:$DIR/mail/%n
mail_save_crlf = yes
lmtp_add_received_header = no
lmtp_hdr_delivery_address = none
passdb {
  driver = passwd-file
  args = username_format=%n $DIR/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $DIR/users
  default_fields = uid=$UID gid=$GID home=$DIR/mail/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $PORT
  }
  unix_listener $SOCKET {
    mode = 0666
  }
}
)",
      {{"$DIR", d},
       {"$PORT", absl::StrCat(hop->port_)},
       {"$SOCKET", hop->socket_path_},
       {"$UID", absl::StrCat(kMailUid)},
       {"$GID", absl::StrCat(kMailGid)}});
  if (hop->port_ == 0 || !WriteFileAtomic(d + "/users", passwd) ||
      !WriteFileAtomic(hop->config_path_, config)) {
    if (error) *error = "cannot write Dovecot's files or find a free port";
    return nullptr;
  }
  if (!hop->Launch(error, timeout)) return nullptr;
  return hop;
}

bool DovecotLmtp::Launch(std::string* error, absl::Duration timeout) {
  pid_ = SpawnLogged({kDovecot, "-F", "-c", config_path_}, dir_ + "/dovecot.out");
  if (pid_ < 0) {
    if (error) *error = "cannot start dovecot";
    return false;
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (WaitPid(pid_, absl::Now()).has_value()) {
      pid_ = -1;
      if (error) *error = absl::StrCat("dovecot exited at start:\n", Log());
      return false;
    }
    if (IsSocket(socket_path_) && GreetingCode(port_, absl::Seconds(5)) == 220) return true;
    if (absl::Now() >= deadline) {
      if (error) *error = absl::StrCat("dovecot not ready in time:\n", Log());
      Stop();
      return false;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

DovecotLmtp::~DovecotLmtp() { Stop(); }

bool DovecotLmtp::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return true;
  const bool in_time = StopChild(pid_, timeout);
  pid_ = -1;
  return in_time;
}

bool DovecotLmtp::Restart(std::string* error, absl::Duration timeout) {
  Stop();
  return Launch(error, timeout);
}

std::vector<std::string> DovecotLmtp::Messages(const std::string& user) const {
  return ReadMaildir(maildir(user));
}

bool DovecotLmtp::WaitForMessages(const std::string& user, size_t count,
                                  absl::Duration timeout) const {
  return PollUntil([&] { return Messages(user).size() >= count; }, timeout);
}

std::string DovecotLmtp::Log() const {
  return absl::StrCat(ReadFile(dir_ + "/dovecot.log"), ReadFile(dir_ + "/dovecot.out"));
}

// ---- PostfixHop ---------------------------------------------------------------------------------

std::unique_ptr<PostfixHop> PostfixHop::Start(const std::string& dir, const std::string& domain,
                                              const std::vector<std::string>& users,
                                              std::string* error, absl::Duration timeout,
                                              const std::string& tls_cert_chain,
                                              const std::string& tls_key) {
  if (geteuid() != 0) {
    if (error) *error = "PostfixHop needs root (postfix start)";
    return nullptr;
  }
  if (access(kPostfix, X_OK) != 0) {
    if (error) *error = "postfix is not installed (bash tools/install-deps.sh)";
    return nullptr;
  }
  std::unique_ptr<PostfixHop> hop(new PostfixHop());
  hop->dir_ = std::filesystem::absolute(dir).string();
  hop->domain_ = absl::AsciiStrToLower(domain);
  hop->users_ = users;
  const std::string& d = hop->dir_;
  if (!MakeReachableDir(d, error) || !MakeReachableDir(d + "/etc", error) ||
      !MakeReachableDir(d + "/queue", error) || !MakeReachableDir(d + "/data", error) ||
      !MakeMailDir(d + "/mail", error)) {
    return nullptr;
  }
  // data_directory belongs to mail_owner (Postfix checks it).
  const struct passwd* postfix_user = getpwnam("postfix");
  if (postfix_user == nullptr || chown((d + "/data").c_str(), postfix_user->pw_uid, -1) != 0) {
    if (error) *error = "no postfix user, or cannot give it the data directory";
    return nullptr;
  }
  hop->port_ = FreeLoopbackPort();
  std::string mailboxes;
  for (const std::string& user : users) {
    absl::StrAppend(&mailboxes, absl::AsciiStrToLower(user), "@", hop->domain_, " ", hop->domain_,
                    "/", user, "/\n");
  }
  // Only what a private, self-contained next hop needs; see the class comment.
  const std::string main_cf = absl::StrReplaceAll(
      R"(compatibility_level = 3.6
queue_directory = $DIR/queue
data_directory = $DIR/data
mail_owner = postfix
setgid_group = postdrop
myhostname = hop.postfix.test
mydomain = postfix.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
# mail from 127.0.0.1 is not rewritten: no Message-Id, Date or From added
local_header_rewrite_clients =
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_base = $DIR/mail
virtual_mailbox_maps = texthash:$DIR/etc/vmailbox
virtual_uid_maps = static:$UID
virtual_gid_maps = static:$GID
# nothing leaves the machine: every other transport is the error transport
default_transport = error:this test hop delivers nothing off the machine
local_transport = error:this test hop has no local delivery
relay_transport = error:this test hop relays nothing
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access texthash:$DIR/etc/recipient_access
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR
$TLS)",
      {{"$DIR", d},
       {"$TLS", tls_cert_chain.empty()
                    ? std::string()
                    : absl::StrCat("smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ",
                                   tls_cert_chain, "\nsmtpd_tls_key_file = ", tls_key, "\n")},
       {"$DOMAIN", hop->domain_},
       {"$UID", absl::StrCat(kMailUid)},
       {"$GID", absl::StrCat(kMailGid)}});
  // No port 25, no pickup, no local(8), no SMTP client; chroot off.
  const std::string master_cf = absl::StrCat("127.0.0.1:", hop->port_,
                                             " inet n - n - - smtpd\n"
                                             "cleanup    unix  n - n - 0 cleanup\n"
                                             "qmgr       unix  n - n 300 1 qmgr\n"
                                             "rewrite    unix  - - n - - trivial-rewrite\n"
                                             "bounce     unix  - - n - 0 bounce\n"
                                             "defer      unix  - - n - 0 bounce\n"
                                             "trace      unix  - - n - 0 bounce\n"
                                             "verify     unix  - - n - 1 verify\n"
                                             "flush      unix  n - n 1000? 0 flush\n"
                                             "proxymap   unix  - - n - - proxymap\n"
                                             "proxywrite unix  - - n - 1 proxymap\n"
                                             "showq      unix  n - n - - showq\n"
                                             "error      unix  - - n - - error\n"
                                             "retry      unix  - - n - - error\n"
                                             "discard    unix  - - n - - discard\n"
                                             "virtual    unix  - n n - - virtual\n"
                                             "anvil      unix  - - n - 1 anvil\n"
                                             "scache     unix  - - n - 1 scache\n"
                                             "postlog    unix-dgram n - n - 1 postlogd\n"
                                             "tlsmgr     unix  - - n 1000? 1 tlsmgr\n");
  if (hop->port_ == 0 || !WriteFileAtomic(d + "/etc/main.cf", main_cf) ||
      !WriteFileAtomic(d + "/etc/master.cf", master_cf) ||
      !WriteFileAtomic(d + "/etc/vmailbox", mailboxes) || !hop->WriteAccessTable(error) ||
      !WriteFileAtomic(d + "/maillog", "")) {
    if (error && error->empty()) *error = "cannot write Postfix's files or find a free port";
    return nullptr;
  }
  const int start = RunLogged({kPostfix, "-c", d + "/etc", "start"}, d + "/control.log", timeout);
  int master = -1;
  absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(d + "/queue/pid/master.pid")), &master);
  if (start != 0 || master <= 0) {
    if (error) *error = absl::StrCat("postfix start failed (", start, "):\n", hop->Log());
    if (master > 0) hop->pid_ = master;
    return nullptr;  // the destructor stops what did start
  }
  hop->pid_ = master;
  if (!WaitForGreeting(hop->port_, timeout)) {
    if (error) *error = absl::StrCat("postfix not ready in time:\n", hop->Log());
    return nullptr;
  }
  return hop;
}

PostfixHop::~PostfixHop() { Stop(); }

bool PostfixHop::WriteAccessTable(std::string* error) const {
  std::string table;
  for (const auto& [address, reply] : replies_) absl::StrAppend(&table, address, " ", reply, "\n");
  if (WriteFileAtomic(dir_ + "/etc/recipient_access", table)) return true;
  if (error) *error = "cannot write the recipient access table";
  return false;
}

bool PostfixHop::ReloadAndProbe(const std::string& address, int want_code, absl::Duration timeout) {
  if (!WriteAccessTable(nullptr)) return false;
  if (RunLogged({kPostfix, "-c", dir_ + "/etc", "reload"}, dir_ + "/control.log", timeout) != 0) {
    return false;
  }
  // The reload is asynchronous: smtpd processes that read the old table exit when they are next
  // idle. Probe until a new session answers with the new code.
  const absl::Time deadline = absl::Now() + timeout;
  for (int attempt = 0; attempt < 100000; ++attempt) {
    auto client = SmtpClient::Connect("127.0.0.1", port_);
    if (client != nullptr && client->ReadReply().code == 220 &&
        client->Command("EHLO probe.test").code == 250 &&
        client->Command("MAIL FROM:<>").code == 250) {
      const int code = client->Command(absl::StrCat("RCPT TO:<", address, ">")).code;
      client->Command("QUIT");
      if (code == want_code) return true;
    }
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

bool PostfixHop::SetRecipientReply(const std::string& address, const std::string& reply,
                                   absl::Duration timeout) {
  int code = 0;
  if (reply.size() < 3 || !absl::SimpleAtoi(reply.substr(0, 3), &code) || code < 400 ||
      code > 599) {
    return false;  // Postfix's access table would take anything else as a different action
  }
  const std::string key = absl::AsciiStrToLower(address);
  std::erase_if(replies_, [&](const auto& entry) { return entry.first == key; });
  replies_.emplace_back(key, reply);
  return ReloadAndProbe(address, code, timeout);
}

bool PostfixHop::ClearRecipientReply(const std::string& address, absl::Duration timeout) {
  const std::string key = absl::AsciiStrToLower(address);
  std::erase_if(replies_, [&](const auto& entry) { return entry.first == key; });
  bool known = false;
  for (const std::string& user : users_) {
    known = known || absl::AsciiStrToLower(absl::StrCat(user, "@", domain_)) == key;
  }
  return ReloadAndProbe(address, known ? 250 : 550, timeout);
}

std::vector<std::string> PostfixHop::Messages(const std::string& user) const {
  return ReadMaildir(absl::StrCat(dir_, "/mail/", domain_, "/", user));
}

bool PostfixHop::WaitForMessages(const std::string& user, size_t count,
                                 absl::Duration timeout) const {
  return PollUntil([&] { return Messages(user).size() >= count; }, timeout);
}

std::string PostfixHop::Log() const {
  return absl::StrCat(ReadFile(dir_ + "/control.log"), ReadFile(dir_ + "/maillog"));
}

bool PostfixHop::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return true;
  const pid_t master = pid_;
  pid_ = -1;
  RunLogged({kPostfix, "-c", dir_ + "/etc", "stop"}, dir_ + "/control.log", timeout);
  const absl::Time deadline = absl::Now() + timeout;
  while (!ProcessGone(master)) {
    if (absl::Now() >= deadline) {
      kill(master, SIGKILL);  // our private instance's master, by the PID it recorded
      return false;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

// ---- CaptureSmtp --------------------------------------------------------------------------------

std::unique_ptr<CaptureSmtp> CaptureSmtp::Start(const std::string& dir, std::string* error,
                                                const std::vector<std::string>& extensions,
                                                absl::Duration timeout) {
  std::unique_ptr<CaptureSmtp> hop(new CaptureSmtp());
  hop->dir_ = std::filesystem::absolute(dir).string();
  std::error_code ec;
  std::filesystem::create_directories(hop->dir_, ec);
  if (ec) {
    if (error) *error = absl::StrCat("cannot create ", hop->dir_, ": ", ec.message());
    return nullptr;
  }
  hop->pid_ = SpawnLogged({kPython, RINGMX_CAPTURE_SMTP_PATH, "--dir", hop->dir_, "--extensions",
                           absl::StrJoin(extensions, ",")},
                          hop->dir_ + "/capture.log");
  if (hop->pid_ < 0) {
    if (error) *error = "cannot start capture_smtp.py";
    return nullptr;
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (WaitPid(hop->pid_, absl::Now()).has_value()) {
      hop->pid_ = -1;
      if (error) *error = absl::StrCat("capture_smtp.py exited at start:\n", hop->Log());
      return nullptr;
    }
    int port = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(hop->dir_ + "/port")), &port) &&
        port > 0 && port < 65536) {
      hop->port_ = static_cast<uint16_t>(port);
      if (WaitForGreeting(hop->port_, deadline - absl::Now())) return hop;
    }
    if (absl::Now() >= deadline) {
      if (error) *error = absl::StrCat("capture_smtp.py not ready in time:\n", hop->Log());
      return nullptr;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

CaptureSmtp::~CaptureSmtp() { Stop(); }

void CaptureSmtp::WriteReplies() const {
  std::string table;
  for (const auto& [address, reply] : replies_) absl::StrAppend(&table, address, "\t", reply, "\n");
  WriteFileAtomic(dir_ + "/replies", table);
}

void CaptureSmtp::SetRecipientReply(const std::string& address, const std::string& reply) {
  std::erase_if(replies_, [&](const auto& entry) { return entry.first == address; });
  replies_.emplace_back(address, reply);
  WriteReplies();
}

void CaptureSmtp::ClearRecipientReply(const std::string& address) {
  std::erase_if(replies_, [&](const auto& entry) { return entry.first == address; });
  WriteReplies();
}

std::vector<CapturedMessage> CaptureSmtp::Messages() const {
  std::vector<CapturedMessage> messages;
  for (int n = 1; n < 1000000; ++n) {
    const std::string base = absl::StrCat(dir_, "/", n);
    if (access((base + ".env").c_str(), F_OK) != 0) break;
    CapturedMessage m;
    std::vector<std::string> lines = LinesOf(ReadFile(base + ".env"));
    if (!lines.empty()) {
      m.mail_command = lines[0];
      m.sender = PathOf(lines[0]);
      for (size_t i = 1; i < lines.size(); ++i) {
        m.rcpt_commands.push_back(lines[i]);
        m.recipients.push_back(PathOf(lines[i]));
      }
    }
    m.data = ReadFile(base + ".eml");
    messages.push_back(std::move(m));
  }
  return messages;
}

bool CaptureSmtp::WaitForMessages(size_t count, absl::Duration timeout) const {
  return PollUntil([&] { return Messages().size() >= count; }, timeout);
}

size_t CaptureSmtp::Sessions() const {
  size_t n = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(dir_ + "/sessions")), &n)) return 0;
  return n;
}

std::string CaptureSmtp::Log() const { return ReadFile(dir_ + "/capture.log"); }

bool CaptureSmtp::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return true;
  const bool in_time = StopChild(pid_, timeout);
  pid_ = -1;
  return in_time;
}

}  // namespace ringmx::testing

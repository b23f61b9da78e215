// End-to-end: reload proven under load (issue 15, item 2; docs/operations.md, "Reload").
//  - 200 concurrent sessions send mail continuously while the config is reloaded 50 times, each
//    reload a new hostname and, alternately, the other certificate: no session fails, no message
//    is lost (every 250 is in the queue), every session keeps the generation it started with (its
//    greeting, its EHLO and the Received header of each of its messages name the same hostname),
//    new sessions get the new one, and an old Snapshot is freed when its last session ends.
//  - A session opened before a certificate rotation does its STARTTLS with the old certificate;
//    a new one gets the new certificate.
//  - 1,000 reloads without load: the server's RSS stays flat and one Snapshot is left.
//  - Listeners at reload: an added one serves, a removed one refuses new connections at once
//    while a session it accepted finishes its message; restart-only keys, a bad certificate and
//    an address in use are refused by name, and the running config serves on.
// The reloads go straight to the control socket (no `ringmx ctl` process per reload).
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/conn_swarm.h"
#include "tests/testing/next_hops.h"
#include "tests/testing/proc_stats.h"
#include "tests/testing/sanitizers.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/tls_client.h"

namespace ringmx::testing {
namespace {

constexpr size_t kConcurrent = 200;
constexpr int kLoadReloads = 50;
constexpr int kMessagesPerSession = 3;
// Bounds of the load phase: connections in all, and time.
constexpr size_t kMaxSessions = 100000;
// Sessions opened between two reloads, at least.
constexpr size_t kSessionsPerGeneration = 100;
constexpr absl::Duration kLoadDeadline = absl::Minutes(8);
constexpr int kIdleReloads = 1000;
constexpr int kIdleWarmup = 100;

// One command to the control socket at `path`; the reply without its line end ("" on failure).
std::string Control(const std::string& path, const std::string& command) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  timeval tv{60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string line = command + "\n";
    if (write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) reply.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
  return reply;
}

// A number of the `stats` reply ("key":N), or -1.
int64_t StatOf(const std::string& stats, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t at = stats.find(needle);
  if (at == std::string::npos) return -1;
  size_t end = at + needle.size();
  while (end < stats.size() && isdigit(static_cast<unsigned char>(stats[end]))) ++end;
  int64_t value = -1;
  if (!absl::SimpleAtoi(stats.substr(at + needle.size(), end - at - needle.size()), &value)) {
    return -1;
  }
  return value;
}

// The hostname a greeting ("220 host ESMTP ringmx") or EHLO reply ("250-host ...") names.
std::string HostOf(const std::string& reply_text) {
  if (reply_text.size() < 5) return "";
  const size_t end = reply_text.find_first_of(" \r\n", 4);
  return reply_text.substr(4, end == std::string::npos ? std::string::npos : end - 4);
}

std::string GenHost(int generation) { return absl::StrCat("gen", generation, ".example.test"); }

class ReloadLoadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_dir_ = new TempDir();
    absl::StatusOr<TestPki> pki = CreateTestPki(pki_dir_->path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = new TestPki(*pki);
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
    delete pki_dir_;
    pki_dir_ = nullptr;
  }

  static std::string Listener(const std::string& name, const std::string& address) {
    return absl::StrCat("[[listener]]\nname = \"", name, "\"\naddress = \"", address,
                        "\"\ntls = \"starttls\"\n\n");
  }

  // The config of generation `generation`: hostname gen<N>.example.test, the RSA certificate on
  // odd generations and the ECDSA one on even ones (same names), `listeners` (TOML), and
  // `extra` appended.
  std::string Config(int generation, const std::string& listeners, const std::string& extra = "",
                     int workers = 2) const {
    const bool ecdsa = generation % 2 == 0;
    return absl::StrCat("hostname = \"", GenHost(generation), "\"\nworkers = ", workers, "\n\n",
                        listeners, "[tls]\ncert = \"", ecdsa ? pki_->mx_ecdsa_cert : pki_->mx_cert,
                        "\"\nkey = \"", ecdsa ? pki_->mx_ecdsa_key : pki_->mx_key,
                        "\"\n\n[policy]\nlocal_domains = [\"example.test\"]\n"
                        "relay_networks = [\"127.0.0.0/8\"]\n\n[spool]\npath = \"",
                        dir_.path(), "/spool\"\n\n[control]\nsocket = \"", socket_path(), "\"\n\n",
                        extra);
  }
  std::string Config(int generation) const {
    return Config(generation, Listener("mx", "127.0.0.1:0"));
  }

  std::string socket_path() const { return dir_.path() + "/control.sock"; }

  void Start(const std::string& config) {
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error);
    ASSERT_NE(server_, nullptr) << error;
  }

  // Writes `config` over the server's config file (whole, by rename) and reloads.
  std::string Reload(const std::string& config) const {
    const std::string tmp = server_->config_path() + ".new";
    { std::ofstream(tmp, std::ios::trunc) << config; }
    std::filesystem::rename(tmp, server_->config_path());
    return Control(socket_path(), "reload");
  }

  int64_t LiveSnapshots() const {
    return StatOf(Control(socket_path(), "stats"), "config_snapshots_live");
  }

  // Polls (bounded) until the live Snapshot count is `want`; the last value read.
  int64_t WaitLiveSnapshots(int64_t want) const {
    int64_t live = -1;
    for (int i = 0; i < 500; ++i) {
      live = LiveSnapshots();
      if (live == want) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return live;
  }

  // Connects to `port` until the greeting names `host` (the shards take a published reload at
  // their next batch); bounded. The client, greeted, or nullptr.
  static std::unique_ptr<SmtpClient> ConnectToHost(uint16_t port, const std::string& host,
                                                   std::string* last) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      auto client = SmtpClient::Connect("127.0.0.1", port);
      if (client == nullptr) return nullptr;
      const SmtpReply greeting = client->ReadReply();
      *last = greeting.text;
      if (greeting.code == 220 && HostOf(greeting.text) == host) return client;
      client->Command("QUIT");
      absl::SleepFor(absl::Milliseconds(10));
    }
    return nullptr;
  }

  // Sends one message (EHLO first) on a greeted plain session; the 250's text, or "".
  static std::string SendOne(SmtpClient& client, const std::string& subject) {
    const SmtpReply r = client.SendMail("a@remote.test", {"u@example.test"},
                                        absl::StrCat("Subject: ", subject, "\r\n\r\nbody\r\n"));
    return r.code == 250 ? r.text : "";
  }

  static TempDir* pki_dir_;
  static TestPki* pki_;
  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
};

TempDir* ReloadLoadTest::pki_dir_ = nullptr;
TestPki* ReloadLoadTest::pki_ = nullptr;

// The script of load session `i`: greeting, EHLO, kMessagesPerSession messages (MAIL, RCPT and
// DATA pipelined), QUIT.
std::vector<SwarmStep> LoadScript(size_t i) {
  std::vector<SwarmStep> steps = {SwarmStep::AwaitReplies(1), SwarmStep::Send("EHLO load.test\r\n"),
                                  SwarmStep::AwaitReplies(2)};
  size_t replies = 2;
  for (int k = 0; k < kMessagesPerSession; ++k) {
    steps.push_back(SwarmStep::Send(absl::StrCat("MAIL FROM:<s", i, "@remote.test>\r\nRCPT TO:<u",
                                                 i, "@example.test>\r\nDATA\r\n")));
    replies += 3;
    steps.push_back(SwarmStep::AwaitReplies(replies));
    steps.push_back(SwarmStep::Send(
        absl::StrCat("Subject: load ", i, "-", k, "\r\n\r\nmessage ", k, " of ", i, "\r\n.\r\n")));
    replies += 1;
    steps.push_back(SwarmStep::AwaitReplies(replies));
  }
  steps.push_back(SwarmStep::Send("QUIT\r\n"));
  steps.push_back(SwarmStep::AwaitReplies(replies + 1));
  steps.push_back(SwarmStep::AwaitClose());
  return steps;
}

TEST_F(ReloadLoadTest, FiftyReloadsUnderTwoHundredSessions) {
  Start(Config(1));
  if (HasFatalFailure()) return;
  const uint16_t port = server_->port();
  ASSERT_EQ(LiveSnapshots(), 1);

  // A session of generation 1 held open across every reload.
  auto old_session = SmtpClient::Connect("127.0.0.1", port);
  ASSERT_NE(old_session, nullptr);
  const SmtpReply old_greeting = old_session->ReadReply();
  ASSERT_EQ(old_greeting.code, 220);
  ASSERT_EQ(HostOf(old_greeting.text), GenHost(1));

  // The reloads run beside the swarm. After each, a fresh session must (eventually, bounded) be
  // greeted with the new hostname.
  std::atomic<bool> reloads_done{false};
  std::atomic<size_t> added{0};  // sessions the swarm has been given
  std::vector<std::string> reload_errors;
  std::thread reloader([&] {
    for (int g = 2; g <= kLoadReloads + 1; ++g) {
      const std::string reply = Reload(Config(g));
      if (reply != absl::StrCat("ok generation=", g)) {
        reload_errors.push_back(absl::StrCat("reload to generation ", g, ": ", reply));
        break;
      }
      std::string last;
      auto fresh = ConnectToHost(port, GenHost(g), &last);
      if (fresh == nullptr) {
        reload_errors.push_back(
            absl::StrCat("no new session greeted as ", GenHost(g), "; last greeting: ", last));
        break;
      }
      fresh->Command("QUIT");
      // The next reload waits until the swarm has opened kSessionsPerGeneration more sessions
      // (bounded), so that every generation serves load.
      const size_t target = added.load() + kSessionsPerGeneration;
      const absl::Time wait_until = absl::Now() + absl::Seconds(60);
      while (added.load() < target && absl::Now() < wait_until) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (added.load() < target) {
        reload_errors.push_back(absl::StrCat("the swarm stalled after reload ", g));
        break;
      }
    }
    reloads_done.store(true);
  });

  ConnSwarm swarm(port);
  size_t next = 0;
  const auto top_up = [&] {
    size_t active = 0;
    for (size_t i = 0; i < swarm.size(); ++i) active += swarm.conn(i).Done() ? 0 : 1;
    while (active < kConcurrent && next < kMaxSessions) {
      swarm.Add("load", LoadScript(next++));
      ++active;
    }
    added.store(next);
  };
  top_up();
  const absl::Time deadline = absl::Now() + kLoadDeadline;
  bool stopped_adding = false;
  swarm.Run(
      deadline, /*max_unanswered=*/256,
      [&] {
        if (!reloads_done.load()) {
          swarm.CloseDone();
          top_up();
          return true;
        }
        stopped_adding = true;
        return swarm.done_count() < swarm.size();  // let the last ones finish
      },
      absl::Milliseconds(20));
  reloader.join();
  ASSERT_TRUE(reload_errors.empty()) << reload_errors.front();
  ASSERT_TRUE(stopped_adding) << "the load phase hit its deadline";
  ASSERT_EQ(swarm.done_count(), swarm.size());

  // Every session: greeted, every reply as scripted, one hostname throughout.
  std::map<std::string, std::string> host_of_message;  // "i-k" -> hostname of its session
  std::set<std::string> generations_seen;
  size_t failed = 0;
  std::string first_failure;
  std::vector<int> want = {220, 250};  // the codes of a session, in order
  for (int k = 0; k < kMessagesPerSession; ++k) {
    for (int code : {250, 250, 354, 250}) want.push_back(code);
  }
  want.push_back(221);
  for (size_t i = 0; i < swarm.size(); ++i) {
    const SwarmConn& c = swarm.conn(i);
    std::vector<int> codes;
    for (const SmtpReply& r : c.replies) codes.push_back(r.code);
    const std::string host = c.replies.empty() ? "" : HostOf(c.replies[0].text);
    const bool ok = c.error.empty() && !c.reset && codes == want &&
                    HostOf(c.replies[1].text) == host && absl::StartsWith(host, "gen");
    if (!ok) {
      if (failed++ == 0) {
        first_failure =
            absl::StrCat("session ", i, " error=", c.error, " reset=", c.reset, " replies:");
        for (const SmtpReply& r : c.replies) absl::StrAppend(&first_failure, " ", r.text);
      }
      continue;
    }
    generations_seen.insert(host);
    for (int k = 0; k < kMessagesPerSession; ++k) host_of_message[absl::StrCat(i, "-", k)] = host;
  }
  EXPECT_EQ(failed, 0u) << first_failure;
  printf("reload under load: %zu sessions, %zu messages, %d reloads, %zu generations greeted\n",
         swarm.size(), host_of_message.size(), kLoadReloads, generations_seen.size());
  // Both configs served sessions (the first and at least one reloaded one).
  EXPECT_GE(generations_seen.size(), 2u);

  // The generation-1 session, through all of it, still has its Snapshot.
  EXPECT_GE(LiveSnapshots(), 2);
  const std::string old_stored = SendOne(*old_session, "old session");
  EXPECT_FALSE(old_stored.empty());
  EXPECT_EQ(old_session->Command("QUIT").code, 221);
  old_session.reset();
  // With no session of an old generation left, only the current Snapshot is.
  EXPECT_EQ(WaitLiveSnapshots(1), 1);

  // Every 250 is in the queue, once, and its Received header names its session's hostname.
  server_->Signal(SIGTERM);
  ASSERT_EQ(server_->WaitExit(absl::Seconds(60)), 0);
  const QueueContents queue = ReadQueue(server_->spool());
  EXPECT_TRUE(queue.problems.empty()) << queue.problems.front();
  std::set<std::string> found;
  size_t wrong_host = 0;
  std::string first_wrong;
  bool old_found = false;
  for (const auto& [id, message] : queue.messages) {
    const size_t at = message.eml.find("Subject: ");
    ASSERT_NE(at, std::string::npos) << id;
    const std::string subject = message.eml.substr(at + 9, message.eml.find('\r', at) - at - 9);
    std::string host;
    if (subject == "old session") {
      old_found = true;
      host = GenHost(1);
    } else {
      ASSERT_TRUE(absl::StartsWith(subject, "load ")) << subject;
      const std::string key = subject.substr(5);
      EXPECT_TRUE(found.insert(key).second) << "stored twice: " << key;
      auto it = host_of_message.find(key);
      ASSERT_NE(it, host_of_message.end()) << "a message no session got a 250 for: " << key;
      host = it->second;
    }
    if (!absl::StrContains(message.eml, absl::StrCat("\tby ", host, " (ringmx)"))) {
      if (wrong_host++ == 0) first_wrong = absl::StrCat(subject, ": ", message.eml.substr(0, 300));
    }
  }
  EXPECT_TRUE(old_found);
  EXPECT_EQ(found.size(), host_of_message.size()) << "messages lost";
  EXPECT_EQ(wrong_host, 0u) << first_wrong;
}

TEST_F(ReloadLoadTest, CertificateRotationKeepsOldSessionsOnTheOldCertificate) {
  Start(Config(1));  // RSA
  if (HasFatalFailure()) return;
  const uint16_t port = server_->port();
  auto starttls = [&](SmtpClient& plain, std::unique_ptr<TlsSmtpClient>* tls) {
    ASSERT_EQ(plain.Command("EHLO tls.test").code, 250);
    ASSERT_EQ(plain.Command("STARTTLS").code, 220);
    std::string error;
    *tls = TlsSmtpClient::Handshake(plain, {.sni = "mx.example.test"}, &error);
    ASSERT_NE(*tls, nullptr) << error;
  };
  auto before = SmtpClient::Connect("127.0.0.1", port);
  ASSERT_NE(before, nullptr);
  ASSERT_EQ(before->ReadReply().code, 220);
  std::unique_ptr<TlsSmtpClient> reference;  // a handshake under generation 1
  auto first = SmtpClient::Connect("127.0.0.1", port);
  ASSERT_NE(first, nullptr);
  ASSERT_EQ(first->ReadReply().code, 220);
  starttls(*first, &reference);
  if (HasFatalFailure()) return;
  const std::string rsa_spki = reference->served_leaf_spki_sha256();

  ASSERT_EQ(Reload(Config(2)), "ok generation=2");  // ECDSA
  std::string last;
  auto after = ConnectToHost(port, GenHost(2), &last);
  ASSERT_NE(after, nullptr) << last;
  std::unique_ptr<TlsSmtpClient> fresh;
  starttls(*after, &fresh);
  if (HasFatalFailure()) return;
  EXPECT_NE(fresh->served_leaf_spki_sha256(), rsa_spki);

  // The session opened before the rotation: its handshake comes after it, on its own generation.
  std::unique_ptr<TlsSmtpClient> old_tls;
  starttls(*before, &old_tls);
  if (HasFatalFailure()) return;
  EXPECT_EQ(old_tls->served_leaf_spki_sha256(), rsa_spki);
  EXPECT_EQ(old_tls->Command("EHLO tls.test").code, 250);
  EXPECT_EQ(old_tls->Command("MAIL FROM:<a@remote.test>").code, 250);
  EXPECT_EQ(old_tls->Command("RCPT TO:<u@example.test>").code, 250);
  EXPECT_EQ(old_tls->Command("DATA").code, 354);
  old_tls->Send("Subject: rotated\r\n\r\nold certificate\r\n.\r\n");
  const SmtpReply stored = old_tls->ReadReply(absl::Seconds(60));
  EXPECT_EQ(stored.code, 250) << stored.text;
}

TEST_F(ReloadLoadTest, ThousandReloadsKeepMemoryFlat) {
#if defined(RINGMX_TESTING_ASAN)
  // ASan keeps freed memory in a quarantine (256 MiB by default) that would grow the RSS with
  // every reload's freed Snapshot; a small one lets the RSS show what is live.
  {
    const char* options = getenv("ASAN_OPTIONS");
    setenv("ASAN_OPTIONS",
           absl::StrCat(options != nullptr ? options : "", options != nullptr ? ":" : "",
                        "quarantine_size_mb=8:thread_local_quarantine_size_kb=64")
               .c_str(),
           1);
  }
#endif
  Start(Config(1));
  if (HasFatalFailure()) return;
  int64_t rss_warm = -1;
  for (int g = 2; g <= kIdleReloads + 1; ++g) {
    // Two configs in turn (hostname and certificate differ).
    const std::string reply = Reload(Config(g % 2 == 0 ? 2 : 3));
    ASSERT_EQ(reply, absl::StrCat("ok generation=", g));
    if (g == kIdleWarmup + 1) {
      ASSERT_EQ(WaitLiveSnapshots(1), 1);
      rss_warm = RssKib(server_->pid());
    }
  }
  ASSERT_EQ(WaitLiveSnapshots(1), 1);
  const int64_t rss_end = RssKib(server_->pid());
  ASSERT_GT(rss_warm, 0);
  ASSERT_GT(rss_end, 0);
  printf("RSS after %d reloads: %lld KiB; after %d: %lld KiB (%+lld KiB)\n", kIdleWarmup,
         static_cast<long long>(rss_warm), kIdleReloads, static_cast<long long>(rss_end),
         static_cast<long long>(rss_end - rss_warm));
  EXPECT_LE(rss_end - rss_warm, int64_t{10} * 1024 * kSanitizerMemoryFactor);
  // And it still serves, as the last config says.
  std::string last;
  EXPECT_NE(ConnectToHost(server_->port(), GenHost(kIdleReloads % 2 == 0 ? 3 : 2), &last), nullptr)
      << last;
}

// The port a listener added by a reload bound, from its log line; 0 if not (yet) logged.
uint16_t AddedPort(const std::string& log, const std::string& name) {
  const std::string needle = absl::StrCat("listening name=", name, " address=127.0.0.1:");
  const size_t at = log.find(needle);
  if (at == std::string::npos) return 0;
  const size_t end = log.find(' ', at + needle.size());
  int port = 0;
  if (!absl::SimpleAtoi(log.substr(at + needle.size(), end - at - needle.size()), &port)) return 0;
  return static_cast<uint16_t>(port);
}

TEST_F(ReloadLoadTest, ListenersAddedAndRemovedAtReload) {
  Start(Config(1));
  if (HasFatalFailure()) return;
  const uint16_t mx_port = server_->port();

  // A session on "mx" in the middle of its transaction.
  auto open = SmtpClient::Connect("127.0.0.1", mx_port);
  ASSERT_NE(open, nullptr);
  ASSERT_EQ(open->ReadReply().code, 220);
  ASSERT_EQ(open->Command("EHLO open.test").code, 250);
  ASSERT_EQ(open->Command("MAIL FROM:<a@remote.test>").code, 250);
  ASSERT_EQ(open->Command("RCPT TO:<u@example.test>").code, 250);

  // Refused, naming the key; the running config stays (generation 1).
  std::string reply = Reload(Config(2, Listener("mx", "127.0.0.1:0"), "", /*workers=*/3));
  EXPECT_TRUE(absl::StartsWith(reply, "error workers: changed from 2 to 3")) << reply;
  {
    std::string config = Config(2);
    const std::string good_key = pki_->mx_ecdsa_key;
    config.replace(config.find(good_key), good_key.size(), pki_->mx_key);  // not the cert's key
    reply = Reload(config);
    EXPECT_TRUE(absl::StartsWith(reply, "error ")) << reply;
    EXPECT_TRUE(absl::StrContains(reply, "tls")) << reply;
  }
  {
    // An address someone else holds: the reload is refused and names the listener.
    uint16_t busy_port = 0;
    const int blocker = ListenOnLoopback(busy_port, 1);
    ASSERT_GE(blocker, 0);
    reply = Reload(Config(2, Listener("mx", "127.0.0.1:0") +
                                 Listener("busy", absl::StrCat("127.0.0.1:", busy_port))));
    close(blocker);
    EXPECT_TRUE(absl::StartsWith(reply, "error listener[1]")) << reply;
  }
  EXPECT_TRUE(absl::StrContains(Control(socket_path(), "stats"), "\"generation\":1"));

  // "mx" goes, "sub" comes.
  ASSERT_EQ(Reload(Config(2, Listener("sub", "127.0.0.1:0"))), "ok generation=2");
  ASSERT_TRUE(server_->WaitForLog("listening name=sub")) << server_->Log();
  const uint16_t sub_port = AddedPort(server_->Log(), "sub");
  ASSERT_NE(sub_port, 0);
  ASSERT_NE(sub_port, mx_port);
  auto on_sub = SmtpClient::Connect("127.0.0.1", sub_port);
  ASSERT_NE(on_sub, nullptr);
  const SmtpReply sub_greeting = on_sub->ReadReply();
  EXPECT_EQ(sub_greeting.code, 220);
  EXPECT_EQ(HostOf(sub_greeting.text), GenHost(2));
  EXPECT_FALSE(SendOne(*on_sub, "on sub").empty());

  // The removed listener takes no connection once every shard has the new generation (bounded).
  bool refused = false;
  const absl::Time refuse_deadline = absl::Now() + absl::Seconds(30);
  for (int attempt = 0; attempt < 200 && !refused && absl::Now() < refuse_deadline; ++attempt) {
    auto late = SmtpClient::Connect("127.0.0.1", mx_port);
    if (late == nullptr) {
      refused = true;
      break;
    }
    // One that got in before a shard applied the reload is served or reset; either way it ends.
    late->ReadReply(absl::Seconds(2));
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(refused) << "connections to the removed listener's port still accepted";

  // The session it accepted finishes its transaction with its own generation.
  ASSERT_EQ(open->Command("DATA").code, 354);
  open->Send("Subject: finished\r\n\r\nafter its listener went\r\n.\r\n");
  const SmtpReply stored = open->ReadReply(absl::Seconds(60));
  EXPECT_EQ(stored.code, 250) << stored.text;
  EXPECT_EQ(open->Command("QUIT").code, 221);
  open.reset();
  EXPECT_EQ(on_sub->Command("QUIT").code, 221);
  on_sub.reset();
  EXPECT_EQ(WaitLiveSnapshots(1), 1);

  // A changed address is a removal and an addition; the same address with another name keeps
  // its socket.
  ASSERT_EQ(Reload(Config(3, Listener("renamed", absl::StrCat("127.0.0.1:", sub_port)))),
            "ok generation=3");
  std::string last;
  auto renamed = ConnectToHost(sub_port, GenHost(3), &last);
  ASSERT_NE(renamed, nullptr) << last;
  EXPECT_EQ(renamed->Command("QUIT").code, 221);

  server_->Signal(SIGTERM);
  ASSERT_EQ(server_->WaitExit(absl::Seconds(60)), 0);
  const QueueContents queue = ReadQueue(server_->spool());
  std::set<std::string> subjects;
  for (const auto& [id, message] : queue.messages) {
    const size_t at = message.eml.find("Subject: ");
    if (at != std::string::npos) {
      subjects.insert(message.eml.substr(at + 9, message.eml.find('\r', at) - at - 9));
    }
    if (absl::StrContains(message.eml, "Subject: finished")) {
      EXPECT_TRUE(absl::StrContains(message.eml, absl::StrCat("\tby ", GenHost(1), " (ringmx)")));
    }
  }
  EXPECT_EQ(subjects, (std::set<std::string>{"finished", "on sub"}));
}

}  // namespace
}  // namespace ringmx::testing

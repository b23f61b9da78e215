// Tests of smtp::Session with milters (docs/milter.md): the session driven like net/ drives it,
// against scripted milters that decode the packets and answer per script, without sockets. Every
// stage, every verdict, milters in order, the NR flags, milters_skip, the header hold-back limit,
// the end-of-message changes on the record, quarantine and failures.
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "core/queue_id.h"
#include "smtp/milter/codec.h"
#include "smtp/session.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp {
namespace {

using namespace std::string_literals;
using testing::Env;
using testing::kT0;
using testing::Lines;
using testing::TestConfig;

std::string Be32(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}
std::string Pkt(char command, std::string_view data) {
  return Be32(static_cast<uint32_t>(data.size() + 1)) + command + std::string(data);
}

constexpr uint32_t kAllNr =
    milter::proto::kNrConnect | milter::proto::kNrHelo | milter::proto::kNrMail |
    milter::proto::kNrRcpt | milter::proto::kNrData | milter::proto::kNrUnknown |
    milter::proto::kNrHeader | milter::proto::kNrEoh | milter::proto::kNrBody;

// A milter in a script: decodes what the session sends and answers each command with the next
// scripted reply for it ("c" when none), except what the protocol leaves unanswered (macros,
// ABORT, QUIT) and the stages its own NR flags exempt.
struct FakeMilter {
  uint32_t actions = milter::action::kAll;
  uint32_t protocol = 0;
  bool down = false;  // the connection is refused
  char hang_on = 0;   // never answers this command (the test times it out)
  std::map<char, std::deque<std::string>> script;
  std::vector<std::string> received;  // "C:data", every packet in order
  std::string buffer;
  bool closed = false;
  bool failed_reported = false;

  void Answer(char command, std::string reply) { script[command].push_back(std::move(reply)); }

  static uint32_t NrFlag(char command) {
    switch (command) {
      case 'C':
        return milter::proto::kNrConnect;
      case 'H':
        return milter::proto::kNrHelo;
      case 'M':
        return milter::proto::kNrMail;
      case 'R':
        return milter::proto::kNrRcpt;
      case 'T':
        return milter::proto::kNrData;
      case 'U':
        return milter::proto::kNrUnknown;
      case 'L':
        return milter::proto::kNrHeader;
      case 'N':
        return milter::proto::kNrEoh;
      case 'B':
        return milter::proto::kNrBody;
      default:
        return 0;
    }
  }

  std::string Feed(std::string_view bytes) {
    buffer.append(bytes);
    std::string reply;
    while (buffer.size() >= 4) {
      const uint32_t n = (uint32_t{static_cast<uint8_t>(buffer[0])} << 24) |
                         (uint32_t{static_cast<uint8_t>(buffer[1])} << 16) |
                         (uint32_t{static_cast<uint8_t>(buffer[2])} << 8) |
                         uint32_t{static_cast<uint8_t>(buffer[3])};
      if (buffer.size() < 4 + n) break;
      const char command = buffer[4];
      received.push_back(std::string(1, command) + ":" + buffer.substr(5, n - 1));
      buffer.erase(0, 4 + n);
      if (command == 'O') {
        reply += Pkt('O', Be32(6) + Be32(actions) + Be32(protocol));
        continue;
      }
      if (command == 'D' || command == 'A' || command == 'Q' || command == 'K') continue;
      if ((protocol & NrFlag(command)) != 0) continue;
      if (command == hang_on) continue;
      auto it = script.find(command);
      if (it != script.end() && !it->second.empty()) {
        reply += it->second.front();
        it->second.pop_front();
      } else {
        reply += Pkt('c', "");
      }
    }
    return reply;
  }

  // The commands received, as one string ("OCHMRT...").
  std::string Commands() const {
    std::string s;
    for (const std::string& p : received) s.push_back(p[0]);
    return s;
  }
  bool Got(const std::string& packet) const {
    for (const std::string& p : received) {
      if (p == packet) return true;
    }
    return false;
  }
};

core::Config MilterConfig(size_t milters,
                          core::MilterDefaultAction action = core::MilterDefaultAction::kTempfail) {
  core::Config config = TestConfig();
  config.policy.max_message_size = 4 << 20;
  for (size_t i = 0; i < milters; ++i) {
    core::MilterConfig m;
    m.name = absl::StrCat("m", i + 1);
    m.inet = *core::Endpoint::Parse("127.0.0.1:11332");
    m.default_action = action;
    config.milters.push_back(m);
    config.listeners[0].milters.push_back(m.name);
  }
  return config;
}

// Drives one session the way net/ does: milter bytes go to the fakes, their answers come back
// (whole, or one byte at a time), store requests are answered at once with success.
class Driver {
 public:
  explicit Driver(core::Config config, size_t milters, bool byte_by_byte = false)
      : env_(std::move(config)), milters_(milters), byte_by_byte_(byte_by_byte) {}

  FakeMilter& milter(size_t i) { return milters_[i]; }
  Env& env() { return env_; }
  Session& session() { return *session_; }

  void Start() {
    session_ = std::make_unique<Session>(env_.snapshot, env_.facts, ids_);
    if (env_.implicit_tls) session_->OnTlsEstablished(*env_.implicit_tls, kT0, out_);
    session_->Start(kT0, out_);
    Pump();
  }
  // In slices, pausing while the session cannot take input, as net/ does.
  void Send(std::string_view input) {
    while (!input.empty()) {
      if (session_->input_blocked() || session_->closed()) {
        ADD_FAILURE() << "the session stays blocked";
        return;
      }
      const size_t n = std::min<size_t>(input.size(), slice);
      session_->OnInput(input.substr(0, n), kT0, out_);
      input.remove_prefix(n);
      Pump();
    }
  }
  void Fail(uint32_t i, std::string_view why) {
    session_->OnMilterError(i, why, kT0, out_);
    Pump();
  }

  size_t slice = 64 * 1024;  // the most input handed over in one OnInput()
  std::string replies;
  std::vector<core::SpoolRecord> records;  // body = fragments + tail
  std::vector<std::string> stored;         // trace_headers + body of each record
  std::vector<std::string> aborted;
  std::vector<std::string> log;
  uint32_t fragments = 0;
  size_t max_memory = 0;

 private:
  void Pump() {
    std::deque<std::pair<uint32_t, std::string>> answers;
    for (int guard = 0; guard < 1000000; ++guard) {
      max_memory = std::max(max_memory, session_->MemoryUsageForTest());
      Output o = std::move(out_);
      out_.Clear();
      replies += o.replies;
      for (std::string& l : o.log) log.push_back(std::move(l));
      for (std::string& id : o.abort_streams) {
        streams_.erase(id);
        aborted.push_back(std::move(id));
      }
      bool progressed = false;
      for (MilterSend& send : o.milter_send) {
        FakeMilter& m = milters_[send.milter];
        if (m.down) {
          if (!m.failed_reported) {
            m.failed_reported = true;
            session_->OnMilterError(send.milter, "connect: Connection refused", kT0, out_);
            progressed = true;
          }
          continue;
        }
        std::string reply = m.Feed(send.bytes);
        if (!reply.empty()) answers.emplace_back(send.milter, std::move(reply));
      }
      for (uint32_t i : o.milter_close) milters_[i].closed = true;
      if (o.check) {
        // Checks (AUTH) pass.
        session_->OnCheckAnswer(o.check->token, CheckAnswer{CheckAnswer::Decision::kAccept, ""},
                                kT0, out_);
        progressed = true;
      }
      if (o.fragment) {
        ++fragments;
        streams_[o.fragment->id] += o.fragment->bytes.Flatten();
        session_->OnFragmentStored(absl::OkStatus(), kT0, out_);
        progressed = true;
      }
      if (o.deliver) {
        core::SpoolRecord r = std::move(*o.deliver);
        r.body = streams_[r.id] + r.body.Flatten();
        streams_.erase(r.id);
        stored.push_back(r.trace_headers + r.body.Flatten());
        records.push_back(std::move(r));
        session_->OnDelivered(absl::OkStatus(), kT0, out_);
        progressed = true;
      }
      if (!progressed && !answers.empty()) {
        auto [i, bytes] = std::move(answers.front());
        answers.pop_front();
        if (byte_by_byte_) {
          for (char c : bytes) session_->OnMilterInput(i, std::string_view(&c, 1), kT0, out_);
        } else {
          session_->OnMilterInput(i, bytes, kT0, out_);
        }
        progressed = true;
      }
      if (!progressed && out_.replies.empty() && out_.milter_send.empty() && !out_.fragment &&
          !out_.deliver && out_.log.empty()) {
        return;
      }
    }
    ADD_FAILURE() << "the session never settled";
  }

  Env env_;
  core::QueueIdGenerator ids_{0};
  std::vector<FakeMilter> milters_;
  bool byte_by_byte_;
  std::unique_ptr<Session> session_;
  Output out_;
  std::map<std::string, std::string> streams_;
};

const std::string kGreeting = testing::Greeting();
const std::string kHeaders = "From: a@example.org\r\nSubject: hello\r\n\r\n";

std::string Transaction(std::string_view body = "body\r\n", std::string_view rcpt = "b") {
  return "MAIL FROM:<a@example.org> SIZE=100\r\nRCPT TO:<" + std::string(rcpt) +
         "@example.test>\r\nDATA\r\n" + kHeaders + std::string(body) + ".\r\n";
}

TEST(SessionMilterTest, RspamdStyleMilterSeesEveryStageAndAddsAHeader) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).protocol = kAllNr | milter::proto::kSkip;
  d.milter(0).Answer('E', Pkt('h', "X-Spam\0No\0"s) + Pkt('a', ""));
  d.Start();
  d.Send("EHLO client.example.org\r\n" + Transaction() + "QUIT\r\n");
  EXPECT_EQ(d.replies.substr(0, kGreeting.size()), kGreeting);
  EXPECT_NE(d.replies.find("250 2.0.0 Ok: queued as "), std::string::npos) << d.replies;
  EXPECT_TRUE(d.replies.ends_with("221 2.0.0 Bye\r\n"));
  EXPECT_EQ(d.milter(0).Commands(), "ODCHDMDRDTLLDNBDEQ");
  EXPECT_TRUE(d.milter(0).Got("M:<a@example.org>\0SIZE=100\0"s));
  EXPECT_TRUE(d.milter(0).Got("R:<b@example.test>\0"s));
  EXPECT_TRUE(d.milter(0).Got("L:Subject\0hello\0"s));
  EXPECT_TRUE(d.milter(0).Got("B:body\r\n"s));
  ASSERT_EQ(d.records.size(), 1u);
  const std::string& stored = d.stored[0];
  EXPECT_TRUE(stored.starts_with("Received: from client.example.org")) << stored;
  // Our Received first, the client's headers, the milter's header last, then the body.
  EXPECT_NE(stored.find("\r\nFrom: a@example.org\r\nSubject: hello\r\nX-Spam: No\r\n\r\nbody\r\n"),
            std::string::npos)
      << stored;
  EXPECT_EQ(d.records[0].body, "body\r\n");
  EXPECT_FALSE(d.records[0].held);
  EXPECT_TRUE(d.milter(0).closed);
  // The macros of CONNECT carry our facts.
  ASSERT_GE(d.milter(0).received.size(), 2u);
  EXPECT_NE(d.milter(0).received[1].find("{client_addr}\0"
                                         "203.0.113.5\0"s),
            std::string::npos);
}

// A milter that answers every stage, its answers fed one byte at a time, the client pipelining
// everything: replies still come in order, each after its verdict.
TEST(SessionMilterTest, EveryStageWaitsForItsVerdictInOrder) {
  Driver d(MilterConfig(1), 1, /*byte_by_byte=*/true);
  d.Start();
  EXPECT_EQ(d.replies, kGreeting);
  d.Send("EHLO c\r\n" + Transaction() + "RSET\r\nXFOO bar\r\nQUIT\r\n");
  EXPECT_EQ(d.milter(0).Commands(), "ODCHDMDRDTLLDNBDEUQ");
  EXPECT_TRUE(d.milter(0).Got("U:XFOO bar\0"s));
  ASSERT_EQ(d.records.size(), 1u);
  const std::string r = d.replies;
  const size_t queued = r.find("250 2.0.0 Ok: queued as");
  const size_t unknown = r.find("500 5.5.2 Error: command not recognized");
  ASSERT_NE(queued, std::string::npos) << r;
  ASSERT_NE(unknown, std::string::npos) << r;
  EXPECT_LT(queued, unknown);
  EXPECT_NE(r.find("354 "), std::string::npos);
}

TEST(SessionMilterTest, RejectAtRcptRefusesThatRecipientOnly) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('R', Pkt('r', ""));
  d.Start();
  d.Send(
      "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@example.test>\r\n"
      "RCPT TO:<b@example.test>\r\nDATA\r\n" +
      kHeaders + "body\r\n.\r\n");
  EXPECT_NE(d.replies.find("550 5.7.1 Command rejected\r\n250 2.1.5 Ok\r\n"), std::string::npos)
      << d.replies;
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_EQ(d.records[0].recipients, std::vector<std::string>{"b@example.test"});
  bool logged = false;
  for (const std::string& l : d.log) {
    if (l.starts_with("milter=m1 id=") &&
        l.find(" stage=rcpt action=reject") != std::string::npos) {
      logged = true;
    }
  }
  EXPECT_TRUE(logged);
}

TEST(SessionMilterTest, VerdictsAtEndOfMessage) {
  struct Case {
    std::string answer;
    std::string reply;  // expected after the data
    bool stored;
  };
  const Case cases[] = {
      {Pkt('t', ""), "451 4.7.1 Service unavailable - try again later\r\n", false},
      {Pkt('r', ""), "550 5.7.1 Command rejected\r\n", false},
      {Pkt('y', "554 5.7.1 Gtube pattern\0"s), "554 5.7.1 Gtube pattern\r\n", false},
      {Pkt('d', ""), "250 2.0.0 Ok: queued as ", false},
      {Pkt('a', ""), "250 2.0.0 Ok: queued as ", true},
      {Pkt('c', ""), "250 2.0.0 Ok: queued as ", true},
  };
  for (const Case& c : cases) {
    Driver d(MilterConfig(1), 1);
    d.milter(0).Answer('E', c.answer);
    d.Start();
    d.Send("EHLO c\r\n" + Transaction());
    EXPECT_NE(d.replies.find("354 End data"), std::string::npos);
    EXPECT_NE(d.replies.substr(d.replies.find("354 ")).find(c.reply), std::string::npos)
        << d.replies;
    EXPECT_EQ(d.records.size(), c.stored ? 1u : 0u) << c.reply;
  }
}

TEST(SessionMilterTest, ShutdownClosesTheSession) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('M', Pkt('4', ""));
  d.Start();
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n");
  EXPECT_TRUE(d.replies.ends_with("421 4.7.0 Server closing connection\r\n")) << d.replies;
  EXPECT_TRUE(d.session().closed());
}

TEST(SessionMilterTest, ARefusalAtConnectHoldsForTheSession) {
  Driver d(MilterConfig(2), 2);
  d.milter(0).Answer('C', Pkt('y', "554 5.7.1 Go away\0"s));
  d.Start();
  EXPECT_EQ(d.replies, kGreeting);
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n");
  EXPECT_EQ(d.replies,
            kGreeting + Lines({"554 5.7.1 Go away", "554 5.7.1 Go away", "221 2.0.0 Bye"}));
  // The second milter never saw the connection.
  EXPECT_TRUE(d.milter(1).received.empty());
}

TEST(SessionMilterTest, MiltersRunInOrderAndAFirstRefusalStopsTheEvent) {
  Driver d(MilterConfig(2), 2);
  d.milter(0).Answer('M', Pkt('t', ""));
  d.milter(1).Answer('M', Pkt('r', ""));
  d.Start();
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\n");
  // First MAIL: milter 1 tempfails, milter 2 never sees it. Second: 1 continues, 2 rejects.
  EXPECT_TRUE(d.replies.ends_with(
      "451 4.7.1 Service unavailable - try again later\r\n550 5.7.1 Command rejected\r\n"))
      << d.replies;
  std::string mails;
  for (const std::string& p : d.milter(1).received) {
    if (p[0] == 'M') mails += p;
  }
  EXPECT_EQ(mails, "M:<a@example.org>\0"s);
}

TEST(SessionMilterTest, AMilterThatIsDownGetsItsDefaultAction) {
  {
    Driver d(MilterConfig(1), 1);
    d.milter(0).down = true;
    d.Start();
    EXPECT_EQ(d.replies, kGreeting);
    d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\n");
    EXPECT_EQ(d.replies, kGreeting + Lines({"451 4.7.1 Service unavailable - try again later",
                                            "451 4.7.1 Service unavailable - try again later"}));
    ASSERT_FALSE(d.log.empty());
    EXPECT_EQ(d.log[0], "milter=m1 failed: connect: Connection refused default_action=tempfail");
  }
  {
    Driver d(MilterConfig(1, core::MilterDefaultAction::kAccept), 1);
    d.milter(0).down = true;
    d.Start();
    d.Send("EHLO c\r\n" + Transaction());
    ASSERT_EQ(d.records.size(), 1u) << d.replies;
    // No milter wants the content: it is stored as it came, nothing held back.
    EXPECT_EQ(d.records[0].body, kHeaders + "body\r\n");
  }
  {
    Driver d(MilterConfig(1, core::MilterDefaultAction::kReject), 1);
    d.milter(0).down = true;
    d.Start();
    d.Send("EHLO c\r\n");
    EXPECT_EQ(d.replies, kGreeting + Lines({"550 5.7.1 Command rejected"}));
  }
}

TEST(SessionMilterTest, ATimeoutGetsTheDefaultActionForThePendingStage) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).hang_on = 'E';
  d.Start();
  d.Send("EHLO c\r\n" + Transaction() + "NOOP\r\n");
  EXPECT_TRUE(d.session().milter_outstanding());
  EXPECT_EQ(d.session().MilterWaiting(0), milter::Session::Waiting::kContent);
  EXPECT_EQ(d.session().deadline(), absl::InfiniteFuture());
  EXPECT_EQ(d.replies.find("250 2.0.0 Ok"), std::string::npos);
  d.Fail(0, "timeout");
  EXPECT_TRUE(
      d.replies.ends_with("451 4.7.1 Service unavailable - try again later\r\n250 2.0.0 Ok\r\n"))
      << d.replies;
  EXPECT_TRUE(d.records.empty());
  EXPECT_FALSE(d.session().milter_outstanding());
}

TEST(SessionMilterTest, RelayClientsSkipTheMiltersFromMailOn) {
  core::Config config = MilterConfig(1);
  config.listeners[0].milters_skip = core::MiltersSkip::kRelay;
  Driver d(std::move(config), 1);
  d.env().facts.client = *core::Endpoint::Parse("10.1.2.3:5000");
  d.Start();
  d.Send("EHLO c\r\n" + Transaction());
  EXPECT_EQ(d.milter(0).Commands(), "ODCH");
  ASSERT_EQ(d.records.size(), 1u);
  // Not held back: the message is stored as it came.
  EXPECT_EQ(d.records[0].body, kHeaders + "body\r\n");
}

// AUTH on an implicit-TLS listener; "AHVzZXIAcGFzcw==" is PLAIN for user / pass.
core::Config AuthConfig(core::MiltersSkip skip) {
  core::Config config = MilterConfig(1);
  config.listeners[0].tls = core::TlsMode::kImplicit;
  config.listeners[0].auth = true;
  config.listeners[0].milters_skip = skip;
  return config;
}

TEST(SessionMilterTest, AuthenticatedSessionsSkipTheMiltersWhenConfigured) {
  core::TlsFacts tls;
  tls.version = "TLSv1.3";
  tls.cipher = "TLS_AES_256_GCM_SHA384";
  tls.cipher_bits = 256;
  tls.implicit = true;
  {
    Driver d(AuthConfig(core::MiltersSkip::kAuthenticated), 1);
    d.env().implicit_tls = tls;
    d.Start();
    d.Send("EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n" + Transaction());
    ASSERT_EQ(d.records.size(), 1u) << d.replies;
    EXPECT_EQ(d.milter(0).Commands(), "ODCDH");  // HELO with the TLS macros, then nothing
    EXPECT_TRUE(
        d.milter(0).Got("D:H{tls_version}\0TLSv1.3\0{cipher}\0TLS_AES_256_GCM_SHA384\0"
                        "{cipher_bits}\0"
                        "256\0"s));
  }
  {
    Driver d(AuthConfig(core::MiltersSkip::kNone), 1);
    d.env().implicit_tls = tls;
    d.Start();
    d.Send("EHLO c\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n" + Transaction());
    ASSERT_EQ(d.records.size(), 1u) << d.replies;
    EXPECT_NE(d.milter(0).Commands().find('M'), std::string::npos);
    bool macros = false;
    for (const std::string& p : d.milter(0).received) {
      if (p.starts_with("D:M") &&
          p.find("{auth_type}\0PLAIN\0{auth_authen}\0user\0"s) != std::string::npos) {
        macros = true;
      }
    }
    EXPECT_TRUE(macros);
  }
}

TEST(SessionMilterTest, AHeaderSectionOverTheLimitIsRefusedAfterTheData) {
  Driver d(MilterConfig(1), 1);
  d.Start();
  std::string big;
  while (big.size() <= 300 * 1024) big += "X-Filler: " + std::string(900, 'f') + "\r\n";
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" + big +
         "\r\nbody\r\n.\r\nNOOP\r\n");
  EXPECT_TRUE(d.replies.ends_with("552 5.3.4 Message header too large\r\n250 2.0.0 Ok\r\n"))
      << d.replies.substr(d.replies.size() - 200);
  EXPECT_TRUE(d.records.empty());
  EXPECT_EQ(d.fragments, 0u);
  EXPECT_LT(d.max_memory, 1200u * 1024);
}

// A large body streams: the milter gets it in BODY chunks of at most 65535 bytes as it arrives,
// the store gets it in fragments, the header section is held and stored as trace headers.
TEST(SessionMilterTest, ALargeBodyStreamsThroughTheMilterAndTheStore) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('E', Pkt('h', "X-Checked\0yes\0"s) + Pkt('c', ""));
  d.Start();
  std::string body;
  for (int i = 0; body.size() < 900 * 1024; ++i) body += "line " + std::to_string(i) + "\r\n";
  d.Send("EHLO c\r\n" + Transaction(body));
  ASSERT_EQ(d.records.size(), 1u) << d.replies;
  EXPECT_GT(d.records[0].fragments, 1u);
  EXPECT_EQ(d.records[0].body, body);
  EXPECT_TRUE(d.records[0].trace_headers.ends_with(
      "From: a@example.org\r\nSubject: hello\r\nX-Checked: yes\r\n\r\n"));
  std::string seen;
  for (const std::string& p : d.milter(0).received) {
    if (p[0] != 'B') continue;
    EXPECT_LE(p.size() - 2, milter::kMaxBodyChunkBytes);
    seen += p.substr(2);
  }
  EXPECT_EQ(seen, body);
  // Bounded: the held header section, a piece with the milters and the decoder's buffer.
  EXPECT_LT(d.max_memory, 1200u * 1024);
}

// Reads that run from one stored piece into the end of the data, to a milter that answers every
// BODY chunk: once a piece waits
// for the milter, nothing more of the input is consumed, so the end of the data never reaches the
// milters while they still have the piece (the fuzzer found the session_milter target's check
// `!busy()` failing here).
TEST(SessionMilterTest, AReadWithAPieceAndTheEndOfDataWaitsForThePieceAtTheMilter) {
  Driver d(MilterConfig(1), 1);
  d.slice = 128 * 1024;
  d.Start();
  std::string body;
  for (int i = 0; body.size() < 300 * 1024; ++i) body += "line " + std::to_string(i) + "\r\n";
  d.Send("EHLO c\r\n" + Transaction(body) + "NOOP\r\n");
  ASSERT_EQ(d.records.size(), 1u) << d.replies;
  EXPECT_EQ(d.records[0].body, body);
  EXPECT_EQ(d.records[0].fragments, 1u);  // one 256 KiB piece, then the tail
  EXPECT_TRUE(d.replies.ends_with("250 2.0.0 Ok\r\n")) << d.replies;
  std::string seen;
  for (const std::string& p : d.milter(0).received) {
    if (p[0] == 'B') seen += p.substr(2);
  }
  EXPECT_EQ(seen, body);
}

TEST(SessionMilterTest, EnvelopeAndHeaderChangesReachTheRecord) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer(
      'E', Pkt('i', Be32(0) + "X-First\0one\0"s) + Pkt('m', Be32(1) + "Subject\0changed\0"s) +
               Pkt('e', "<new@example.org>\0"s) + Pkt('2', "<c@example.test>\0NOTIFY=NEVER\0"s) +
               Pkt('-', "<b@example.test>\0"s) + Pkt('c', ""));
  d.Start();
  d.Send("EHLO c\r\n" + Transaction());
  ASSERT_EQ(d.records.size(), 1u) << d.replies;
  const core::SpoolRecord& r = d.records[0];
  EXPECT_EQ(r.sender, "new@example.org");
  EXPECT_EQ(r.recipients, std::vector<std::string>{"c@example.test"});
  EXPECT_NE(r.envelope_json.find("\"mail_from\":\"new@example.org\""), std::string::npos)
      << r.envelope_json;
  EXPECT_NE(r.envelope_json.find("NEVER"), std::string::npos) << r.envelope_json;
  EXPECT_TRUE(
      r.trace_headers.ends_with("X-First: one\r\nFrom: a@example.org\r\nSubject: changed\r\n\r\n"))
      << r.trace_headers;
  EXPECT_TRUE(r.trace_headers.starts_with("Received: "));
}

TEST(SessionMilterTest, QuarantineStoresTheMessageHeld) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('E', Pkt('q', "suspicious\0"s) + Pkt('a', ""));
  d.Start();
  d.Send("EHLO c\r\n" + Transaction());
  ASSERT_EQ(d.records.size(), 1u);
  EXPECT_TRUE(d.records[0].held);
  EXPECT_TRUE(d.records[0].envelope_json.ends_with(
      ",\"quarantine\":{\"milter\":\"m1\",\"reason\":\"suspicious\"}}"))
      << d.records[0].envelope_json;
  bool logged = false;
  for (const std::string& l : d.log) {
    if (l == absl::StrCat("milter=m1 id=", d.records[0].id, " quarantine reason=\"suspicious\"")) {
      logged = true;
    }
  }
  EXPECT_TRUE(logged);
}

TEST(SessionMilterTest, ReplacingAStreamedBodyStoresTheNewBodyUnderANewId) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('E', Pkt('b', "new body\n") + Pkt('c', ""));
  d.Start();
  const std::string body(700 * 1024, 'z');
  std::string lines;
  for (size_t i = 0; i < body.size(); i += 500) lines += body.substr(i, 500) + "\r\n";
  d.Send("EHLO c\r\n" + Transaction(lines));
  ASSERT_EQ(d.records.size(), 1u) << d.replies;
  EXPECT_EQ(d.records[0].body, "new body\r\n");
  EXPECT_EQ(d.records[0].fragments, 0u);
  ASSERT_EQ(d.aborted.size(), 1u);
  EXPECT_NE(d.aborted[0], d.records[0].id);
  EXPECT_NE(d.replies.find("queued as " + d.records[0].id), std::string::npos);
}

TEST(SessionMilterTest, RejectedRecipientsGoToMiltersThatAskForThem) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).protocol = milter::proto::kRcptRej;
  d.milter(0).Answer('R', Pkt('r', ""));  // ignored: the recipient is refused anyway
  d.Start();
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<x@elsewhere.example>\r\n");
  EXPECT_TRUE(d.replies.ends_with("554 5.7.1 <x@elsewhere.example>: Relay access denied\r\n"))
      << d.replies;
  EXPECT_TRUE(d.milter(0).Got("R:<x@elsewhere.example>\0"s));
  bool macros = false;
  for (const std::string& p : d.milter(0).received) {
    if (p.starts_with("D:R") && p.find("{rcpt_mailer}\0error\0"s) != std::string::npos) {
      macros = true;
    }
  }
  EXPECT_TRUE(macros);
}

TEST(SessionMilterTest, BdatMessagesGoThroughTheMiltersToo) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('E', Pkt('h', "X-B\0dat\0"s) + Pkt('c', ""));
  d.Start();
  const std::string message = kHeaders + "body\r\n";
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nBDAT 10\r\n" +
         message.substr(0, 10) + "BDAT " + std::to_string(message.size() - 10) + " LAST\r\n" +
         message.substr(10));
  ASSERT_EQ(d.records.size(), 1u) << d.replies;
  EXPECT_TRUE(d.records[0].trace_headers.ends_with("X-B: dat\r\n\r\n"));
  EXPECT_EQ(d.records[0].body, "body\r\n");

  Driver r(MilterConfig(1), 1);
  r.milter(0).Answer('T', Pkt('r', ""));
  r.Start();
  r.Send(
      "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nBDAT 4\r\nabcdBDAT 3 "
      "LAST\r\nxyz");
  EXPECT_TRUE(r.replies.ends_with("550 5.7.1 Command rejected\r\n550 5.7.1 Command rejected\r\n"))
      << r.replies;
  EXPECT_TRUE(r.records.empty());
}

TEST(SessionMilterTest, RsetAbortsTheTransactionAtTheMilters) {
  Driver d(MilterConfig(1), 1);
  d.Start();
  d.Send("EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nRSET\r\nRSET\r\n");
  EXPECT_TRUE(d.replies.ends_with("250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"));
  // One ABORT: the second RSET has no transaction to end.
  EXPECT_EQ(d.milter(0).Commands(), "ODCHDMDRA");
}

TEST(SessionMilterTest, DiscardAtMailAcceptsAndDropsTheMessage) {
  Driver d(MilterConfig(1), 1);
  d.milter(0).Answer('M', Pkt('d', ""));
  d.Start();
  d.Send("EHLO c\r\n" + Transaction());
  EXPECT_NE(d.replies.find("250 2.0.0 Ok: queued as"), std::string::npos) << d.replies;
  EXPECT_TRUE(d.records.empty());
  // The milter saw nothing of the message after MAIL.
  EXPECT_EQ(d.milter(0).Commands().find('T'), std::string::npos);
}

}  // namespace
}  // namespace ringmx::smtp

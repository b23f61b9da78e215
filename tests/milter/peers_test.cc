// Our milter engine (smtp::milter::Session, pure code) against real milters over a blocking
// loopback socket, without the server (issue 13): the python3-milter test milter
// (tests/milter/test_milter.py: one test per stage and reply, every change at end of message, the
// macros it received, its own macro lists) and Debian's rspamd (GTUBE refused with 554 5.7.1 at
// end of message, a clean message gets rspamd's headers, rspamd stopped -> default_action). This
// proves the codec and the engine against libmilter and rspamd, and the peers that the e2e tests
// of the server use (tests/testing/milter_peers.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "smtp/milter/codec.h"
#include "smtp/milter/message.h"
#include "smtp/milter/session.h"
#include "tests/testing/milter_peers.h"
#include "tests/testing/next_hops.h"
#include "tests/testing/temp_dir.h"

namespace ringmx::smtp::milter {

// Readable failure messages (gtest finds these by argument-dependent lookup).
void PrintTo(const Modification& m, std::ostream* os) {
  *os << "{kind " << static_cast<int>(m.kind) << ", index " << m.index << ", name \"" << m.name
      << "\", value \"" << m.value << "\"}";
}

namespace {

using ::ringmx::testing::MilterEvent;
using ::ringmx::testing::PythonMilter;
using ::ringmx::testing::Rspamd;
using ::ringmx::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Kind = Verdict::Kind;
using ModKind = Modification::Kind;

// Generous: the machine may be loaded (2 cores shared with builds and other tests).
constexpr absl::Duration kReplyTimeout = absl::Seconds(60);

// Drives one Session over a blocking TCP connection to 127.0.0.1:port: sends what the engine
// wants sent, feeds it what the milter answers, and turns a refused connection, a lost one or a
// reply slower than its timeout (`command_timeout` or `content_timeout`, as waiting_for() says)
// into OnError(), as net/ will.
class Driver {
 public:
  Driver(uint16_t port, SessionConfig config, absl::Duration content_timeout = kReplyTimeout,
         absl::Duration command_timeout = kReplyTimeout)
      : session_(std::move(config)),
        command_timeout_(command_timeout),
        content_timeout_(content_timeout) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Driver() {
    if (fd_ >= 0) close(fd_);
  }
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  Session& session() { return session_; }
  bool connected() const { return fd_ >= 0; }
  int progress() const { return progress_; }
  // The engine's last error text (empty while the milter behaves).
  const std::string& error() const { return error_; }

  // Runs one event (a call on the session) to its verdict; nullopt for events without one
  // (Abort, Quit).
  std::optional<Verdict> Run(const std::function<void(Session&, Output&)>& event) {
    Output out;
    event(session_, out);
    for (int round = 0; round < 1000000; ++round) {
      if (!out.error.empty()) error_ = out.error;
      if (out.progress) ++progress_;
      const bool sent = out.send.empty() || fd_ < 0 || SendAll(out.send);
      std::optional<Verdict> verdict = std::move(out.verdict);
      const bool close_now = out.close;
      out.Clear();
      if (close_now && fd_ >= 0) {
        close(fd_);
        fd_ = -1;
      }
      if (!sent) {
        session_.OnError("write failed", out);
        continue;
      }
      if (verdict.has_value()) return verdict;
      if (session_.waiting_for() == Session::Waiting::kNothing) return std::nullopt;
      if (fd_ < 0) {
        session_.OnError("connection refused or closed", out);
        continue;
      }
      const absl::Duration timeout = session_.waiting_for() == Session::Waiting::kContent
                                         ? content_timeout_
                                         : command_timeout_;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) {
        session_.OnError("timeout", out);
        continue;
      }
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        session_.OnError("connection lost", out);
        continue;
      }
      session_.OnInput(std::string_view(buf, static_cast<size_t>(n)), out);
    }
    ADD_FAILURE() << "the engine never settled";
    return std::nullopt;
  }

 private:
  bool SendAll(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  Session session_;
  absl::Duration command_timeout_;
  absl::Duration content_timeout_;
  int fd_ = -1;
  int progress_ = 0;
  std::string error_;
};

// One SMTP session with one transaction, as the server would show it to a milter.
struct Transaction {
  std::string hostname;  // CONNECT's host name (and {client_name})
  std::string helo = "client.example";
  std::string mail = "<sender@example.org>";
  std::vector<std::string> mail_args = {"SIZE=200", "BODY=8BITMIME"};
  std::vector<std::string> rcpts = {"<rcpt@example.org>"};
  std::string subject = "hello";
  std::string body = "Hello from the test.\r\n";
  std::string message;  // the whole client message; built from subject and body when empty

  std::string ClientMessage() const {
    if (!message.empty()) return message;
    return absl::StrCat(
        "From: Sender <sender@example.org>\r\nTo: rcpt@example.org\r\nSubject: ", subject,
        "\r\nX-Test-Change: original\r\nX-Test-Delete: to be deleted\r\n"
        "Message-ID: <1@example.org>\r\n\r\n",
        body);
  }
};

struct Outcome {
  std::optional<Verdict> connect, helo, mail, data, content;
  std::vector<std::optional<Verdict>> rcpts;
};

// Postfix's default macros, with test values.
void SetSessionMacros(Session& s, const std::string& hostname) {
  s.SetMacro("j", "mx.example.test");
  s.SetMacro("{daemon_name}", "ringmx");
  s.SetMacro("{daemon_addr}", "127.0.0.1");
  s.SetMacro("v", "ringmx test");
  s.SetMacro("_", absl::StrCat(hostname, " [127.0.0.1]"));
  s.SetMacro("{client_addr}", "127.0.0.1");
  s.SetMacro("{client_name}", hostname);
  s.SetMacro("{tls_version}", "TLSv1.3");
  s.SetMacro("{cipher}", "TLS_AES_256_GCM_SHA384");
  s.SetMacro("{cipher_bits}", "256");
  s.SetMacro("{auth_type}", "PLAIN");
  s.SetMacro("{auth_authen}", "alice");
}

std::string Unbracket(const std::string& path) {
  if (path.size() >= 2 && path.front() == '<' && path.back() == '>') {
    return path.substr(1, path.size() - 2);
  }
  return path;
}

// Runs every event of `t` (whatever the verdicts: the engine answers a sticky refusal itself),
// then Quit.
Outcome RunTransaction(Driver& d, const Transaction& t) {
  Outcome o;
  Session& s = d.session();
  SetSessionMacros(s, t.hostname);
  ConnectInfo info{t.hostname, Family::kInet, 42424, "127.0.0.1"};
  o.connect = d.Run([&](Session& s2, Output& out) { s2.Connect(info, out); });
  o.helo = d.Run([&](Session& s2, Output& out) { s2.Helo(t.helo, out); });
  s.SetMacro("i", "4F2A1C");
  s.SetMacro("{mail_addr}", Unbracket(t.mail));
  o.mail = d.Run([&](Session& s2, Output& out) { s2.Mail(t.mail, t.mail_args, out); });
  for (const std::string& rcpt : t.rcpts) {
    s.SetMacro("{rcpt_addr}", Unbracket(rcpt));
    o.rcpts.push_back(d.Run([&](Session& s2, Output& out) { s2.Rcpt(rcpt, {}, out); }));
  }
  o.data = d.Run([&](Session& s2, Output& out) { s2.Data(out); });
  const std::string message = t.ClientMessage();
  // The content as the server hands it over: the header section, the body, the end.
  const size_t blank = message.find("\r\n\r\n");
  const std::string headers = blank == std::string::npos ? message : message.substr(0, blank + 4);
  const std::string body = blank == std::string::npos ? "" : message.substr(blank + 4);
  o.content = d.Run([&](Session& s2, Output& out) { s2.ContentHeaders(headers, out); });
  if (!o.content.has_value()) {
    o.content = d.Run([&](Session& s2, Output& out) { s2.ContentBody(body, out); });
  }
  std::optional<Verdict> end = d.Run([&](Session& s2, Output& out) { s2.ContentEnd(out); });
  if (!o.content.has_value()) o.content = std::move(end);
  d.Run([&](Session& s2, Output& out) { s2.Quit(out); });
  return o;
}

std::vector<std::string> Stages(const std::vector<MilterEvent>& events) {
  std::vector<std::string> stages;
  for (const MilterEvent& e : events) stages.push_back(e.stage);
  return stages;
}

SessionConfig Config(DefaultAction action = DefaultAction::kTempfail) {
  return SessionConfig{"test", action};
}

// ---- the python3-milter test milter ------------------------------------------------------------

class PythonMilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string error;
    PythonMilter::Options options;
    options.slow_seconds = 10;  // SlowMilterGetsItsDefaultAction waits 3 s for end of message
    milter_ = PythonMilter::Start(*dir_ / "milter", &error, options).release();
    ASSERT_NE(milter_, nullptr) << error;
  }
  static void TearDownTestSuite() {
    delete milter_;
    milter_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(milter_, nullptr); }

  // A CONNECT host name unique to this call: `markers` (dot-separated tokens) first.
  static std::string Host(const std::string& markers) {
    return absl::StrCat(markers.empty() ? "" : markers + ".", "t", ++counter_, ".example");
  }

  // Runs `t` against the milter (replies to the content wait `content_timeout`); the milter's
  // events of that connection once it logged its close (or, with `wait_close` false, what it
  // logged so far).
  Outcome Run(const Transaction& t, std::vector<MilterEvent>* events = nullptr,
              SessionConfig config = Config(), absl::Duration content_timeout = kReplyTimeout,
              bool wait_close = true) {
    Driver d(milter_->port(), std::move(config), content_timeout);
    EXPECT_TRUE(d.connected());
    Outcome o = RunTransaction(d, t);
    last_error_ = d.error();
    last_progress_ = d.progress();
    if (events != nullptr) *events = EventsOf(t.hostname, wait_close);
    return o;
  }

  static std::vector<MilterEvent> EventsOf(const std::string& hostname, bool wait_close = true) {
    std::optional<MilterEvent> connect = milter_->WaitForEvent(
        [&](const MilterEvent& e) {
          return e.stage == "connect" && !e.args.empty() && e.args[0] == hostname;
        },
        absl::Seconds(30));
    if (!connect.has_value()) {
      ADD_FAILURE() << "the milter logged no connect from " << hostname << "\n" << milter_->Log();
      return {};
    }
    const int conn = connect->connection;
    if (wait_close) {
      EXPECT_TRUE(milter_
                      ->WaitForEvent([&](const MilterEvent& e) {
                        return e.connection == conn && e.stage == "close";
                      })
                      .has_value())
          << milter_->Log();
    }
    return milter_->EventsOf(conn);
  }

  static const MilterEvent* Find(const std::vector<MilterEvent>& events, const std::string& stage) {
    for (const MilterEvent& e : events) {
      if (e.stage == stage) return &e;
    }
    return nullptr;
  }

  static TempDir* dir_;
  static PythonMilter* milter_;
  static int counter_;
  std::string last_error_;
  int last_progress_ = 0;
};

TempDir* PythonMilterTest::dir_ = nullptr;
PythonMilter* PythonMilterTest::milter_ = nullptr;
int PythonMilterTest::counter_ = 0;

TEST_F(PythonMilterTest, ContinuesThroughEveryStageWithDefaultMacros) {
  Transaction t;
  t.hostname = Host("");
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  for (const auto* v : {&o.connect, &o.helo, &o.mail, &o.data, &o.content}) {
    ASSERT_TRUE(v->has_value());
    EXPECT_EQ((*v)->kind, Kind::kContinue) << static_cast<int>((*v)->stage);
    EXPECT_FALSE((*v)->failed);
  }
  ASSERT_EQ(o.rcpts.size(), 1u);
  EXPECT_EQ(o.rcpts[0]->kind, Kind::kContinue);
  EXPECT_THAT(o.content->modifications, IsEmpty());
  EXPECT_EQ(last_error_, "");

  EXPECT_THAT(Stages(events), ElementsAre("negotiate", "connect", "helo", "mail", "rcpt", "data",
                                          "header", "header", "header", "header", "header",
                                          "header", "eoh", "body", "eom", "close"));
  // Arguments as libmilter decoded them.
  const MilterEvent* connect = Find(events, "connect");
  ASSERT_NE(connect, nullptr);
  EXPECT_THAT(connect->args, ElementsAre(t.hostname, "inet", "127.0.0.1", "42424"));
  EXPECT_THAT(Find(events, "helo")->args, ElementsAre("client.example"));
  EXPECT_THAT(Find(events, "mail")->args,
              ElementsAre("<sender@example.org>", "SIZE=200", "BODY=8BITMIME"));
  EXPECT_THAT(Find(events, "rcpt")->args, ElementsAre("<rcpt@example.org>"));
  std::vector<std::vector<std::string>> headers;
  for (const MilterEvent& e : events) {
    if (e.stage == "header") headers.push_back(e.args);
  }
  EXPECT_THAT(headers,
              ElementsAre(ElementsAre("From", "Sender <sender@example.org>"),
                          ElementsAre("To", "rcpt@example.org"), ElementsAre("Subject", "hello"),
                          ElementsAre("X-Test-Change", "original"),
                          ElementsAre("X-Test-Delete", "to be deleted"),
                          ElementsAre("Message-ID", "<1@example.org>")));
  EXPECT_THAT(Find(events, "body")->args, ElementsAre("Hello from the test.\r\n"));

  // Macros: Postfix's defaults per stage. libmilter also shows earlier stages' macros, so the
  // connect event's set is exact and later ones add to it.
  const std::map<std::string, std::string> at_connect = {
      {"j", "mx.example.test"},           {"{daemon_name}", "ringmx"},
      {"{daemon_addr}", "127.0.0.1"},     {"v", "ringmx test"},
      {"_", t.hostname + " [127.0.0.1]"}, {"{client_addr}", "127.0.0.1"},
      {"{client_name}", t.hostname}};
  EXPECT_EQ(connect->macros, at_connect);
  std::map<std::string, std::string> at_helo = at_connect;
  at_helo["{tls_version}"] = "TLSv1.3";
  at_helo["{cipher}"] = "TLS_AES_256_GCM_SHA384";
  at_helo["{cipher_bits}"] = "256";
  EXPECT_EQ(Find(events, "helo")->macros, at_helo);
  std::map<std::string, std::string> at_mail = at_helo;
  at_mail["i"] = "4F2A1C";
  at_mail["{auth_type}"] = "PLAIN";
  at_mail["{auth_authen}"] = "alice";
  at_mail["{mail_addr}"] = "sender@example.org";
  EXPECT_EQ(Find(events, "mail")->macros, at_mail);
  std::map<std::string, std::string> at_rcpt = at_mail;
  at_rcpt["{rcpt_addr}"] = "rcpt@example.org";
  EXPECT_EQ(Find(events, "rcpt")->macros, at_rcpt);
  EXPECT_EQ(Find(events, "eom")->macros, at_rcpt);
}

TEST_F(PythonMilterTest, NegotiatesWhatItAsks) {
  Transaction t;
  t.hostname = Host("");
  Driver d(milter_->port(), Config());
  ASSERT_TRUE(d.connected());
  RunTransaction(d, t);
  const OptNegReply& neg = d.session().negotiated();
  EXPECT_EQ(neg.version, 6u);
  EXPECT_EQ(neg.actions, action::kAll);
  EXPECT_EQ(neg.protocol & ~proto::kMaxDataSizeBits, proto::kSkip | proto::kRcptRej);
  EXPECT_TRUE(d.session().wants_rejected_rcpts());
  EXPECT_FALSE(d.session().header_leading_space());
  for (const auto& list : neg.macros) EXPECT_FALSE(list.has_value());
  const std::vector<MilterEvent> events = EventsOf(t.hostname);
  const MilterEvent* n = Find(events, "negotiate");
  ASSERT_NE(n, nullptr);
  // What we offered (actions, protocol), then what it kept.
  ASSERT_GE(n->args.size(), 5u);
  EXPECT_EQ(n->args[0], "0x1ff");
  EXPECT_EQ(n->args[1], "0x1fffff");
  EXPECT_EQ(n->args[4], "0xc00");
}

// A refusal at each stage, from a marker in what that stage (or an earlier one) carries.
struct StageCase {
  std::string stage;
  std::string action;
  Kind kind;
  int code;
  std::string enhanced;
  std::string text;  // in the first line
  bool custom;
};

void PrintTo(const StageCase& c, std::ostream* os) { *os << c.action << "-" << c.stage; }

std::string PrintCase(const ::testing::TestParamInfo<StageCase>& info) {
  return info.param.action + "_" + info.param.stage;
}

class PythonMilterStageTest : public PythonMilterTest,
                              public ::testing::WithParamInterface<StageCase> {};

TEST_P(PythonMilterStageTest, RefusesAtThatStage) {
  const StageCase& c = GetParam();
  const std::string token = c.action + "-" + c.stage;
  Transaction t;
  t.hostname = Host(c.stage == "connect" ? token : "");
  if (c.stage == "helo") t.helo = token + ".example";
  if (c.stage == "rcpt") t.rcpts = {"<r+" + token + "@example.org>", "<ok@example.org>"};
  if (c.stage != "connect" && c.stage != "helo" && c.stage != "rcpt") {
    t.mail = "<s+" + token + "@example.org>";
  }
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  const std::vector<std::optional<Verdict>*> by_stage = {&o.connect,  &o.helo, &o.mail,
                                                         &o.rcpts[0], &o.data, &o.content};
  const std::vector<std::string> names = {"connect", "helo", "mail", "rcpt", "data", "content"};
  std::string verdict_stage = c.stage;
  if (c.stage == "header" || c.stage == "eoh" || c.stage == "body" || c.stage == "eom") {
    verdict_stage = "content";
  }
  bool before = true;
  for (size_t i = 0; i < names.size(); ++i) {
    std::optional<Verdict>& v = *by_stage[i];
    ASSERT_TRUE(v.has_value()) << names[i];
    if (names[i] == verdict_stage) {
      before = false;
      EXPECT_EQ(v->kind, c.kind) << names[i];
      EXPECT_FALSE(v->failed);
      EXPECT_EQ(v->custom, c.custom);
      EXPECT_EQ(v->reply.code, c.code);
      EXPECT_EQ(v->reply.enhanced, c.enhanced);
      ASSERT_FALSE(v->reply.lines.empty());
      EXPECT_THAT(v->reply.lines[0], HasSubstr(c.text));
    } else if (before) {
      EXPECT_EQ(v->kind, Kind::kContinue) << names[i];
    }
  }
  if (c.stage == "rcpt") {
    // Only the marked recipient is refused.
    ASSERT_EQ(o.rcpts.size(), 2u);
    EXPECT_EQ(o.rcpts[1]->kind, Kind::kContinue);
    EXPECT_EQ(o.data->kind, Kind::kContinue);
  }
  // The milter saw the stage and answered as marked.
  std::string logged_stage = c.stage;
  const MilterEvent* e = nullptr;
  for (const MilterEvent& ev : events) {
    if (ev.stage == logged_stage && ev.result == c.action) e = &ev;
  }
  ASSERT_NE(e, nullptr) << milter_->Log();
}

INSTANTIATE_TEST_SUITE_P(
    Reject, PythonMilterStageTest,
    ::testing::Values(
        StageCase{"connect", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"helo", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"mail", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"rcpt", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"data", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"header", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"eoh", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"body", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false},
        StageCase{"eom", "reject", Kind::kReject, 550, "5.7.1", "Command rejected", false}),
    PrintCase);

INSTANTIATE_TEST_SUITE_P(
    Tempfail, PythonMilterStageTest,
    ::testing::Values(StageCase{"connect", "tempfail", Kind::kTempfail, 451, "4.7.1",
                                "Service unavailable - try again later", false},
                      StageCase{"mail", "tempfail", Kind::kTempfail, 451, "4.7.1",
                                "Service unavailable - try again later", false},
                      StageCase{"rcpt", "tempfail", Kind::kTempfail, 451, "4.7.1",
                                "Service unavailable - try again later", false},
                      StageCase{"eom", "tempfail", Kind::kTempfail, 451, "4.7.1",
                                "Service unavailable - try again later", false}),
    PrintCase);

INSTANTIATE_TEST_SUITE_P(
    CustomReply, PythonMilterStageTest,
    ::testing::Values(
        StageCase{"connect", "custom", Kind::kReject, 554, "5.7.1", "Custom rejection", true},
        StageCase{"helo", "custom", Kind::kReject, 554, "5.7.1", "Custom rejection", true},
        StageCase{"mail", "custom", Kind::kReject, 554, "5.7.1", "Custom rejection", true},
        StageCase{"rcpt", "custom", Kind::kReject, 554, "5.7.1", "Custom rejection", true},
        StageCase{"data", "custom", Kind::kReject, 554, "5.7.1", "Custom rejection", true},
        StageCase{"eom", "custom", Kind::kReject, 554, "5.7.1", "Custom rejection", true},
        StageCase{"eom", "customtemp", Kind::kTempfail, 451, "4.7.1", "Custom tempfail", true},
        StageCase{"mail", "customtemp", Kind::kTempfail, 451, "4.7.1", "Custom tempfail", true}),
    PrintCase);

TEST_F(PythonMilterTest, MultiLineCustomReply) {
  Transaction t;
  t.hostname = Host("");
  t.subject = "multiline";
  Outcome o = Run(t);
  ASSERT_TRUE(o.content.has_value());
  EXPECT_EQ(o.content->kind, Kind::kReject);
  EXPECT_TRUE(o.content->custom);
  EXPECT_EQ(o.content->reply.code, 550);
  EXPECT_EQ(o.content->reply.enhanced, "5.7.1");
  EXPECT_EQ(o.content->reply.ToWire(), "550-5.7.1 First line\r\n550 5.7.1 Second line\r\n");
}

TEST_F(PythonMilterTest, DiscardAtEndOfMessageAndAtMail) {
  Transaction t;
  t.hostname = Host("");
  t.subject = "discard";
  Outcome o = Run(t);
  EXPECT_EQ(o.content->kind, Kind::kDiscard);

  Transaction m;
  m.hostname = Host("");
  m.mail = "<s+discard-mail@example.org>";
  std::vector<MilterEvent> events;
  o = Run(m, &events);
  EXPECT_EQ(o.mail->kind, Kind::kDiscard);
  // The message is done at the milter: nothing more of it is sent.
  EXPECT_EQ(o.rcpts[0]->kind, Kind::kAccept);
  EXPECT_EQ(o.content->kind, Kind::kAccept);
  EXPECT_EQ(Find(events, "rcpt"), nullptr);
  EXPECT_EQ(Find(events, "eom"), nullptr);
}

TEST_F(PythonMilterTest, DiscardAtConnectIsIgnored) {
  Transaction t;
  t.hostname = Host("discard-connect");
  Outcome o = Run(t);
  EXPECT_EQ(o.connect->kind, Kind::kContinue);
  EXPECT_EQ(o.content->kind, Kind::kContinue);
}

TEST_F(PythonMilterTest, AcceptAtConnectEndsTheConversation) {
  Transaction t;
  t.hostname = Host("accept-connect");
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  EXPECT_EQ(o.connect->kind, Kind::kAccept);
  EXPECT_EQ(o.helo->kind, Kind::kAccept);
  EXPECT_EQ(o.mail->kind, Kind::kAccept);
  EXPECT_EQ(o.content->kind, Kind::kAccept);
  EXPECT_THAT(Stages(events), ElementsAre("negotiate", "connect", "close"));
}

TEST_F(PythonMilterTest, AcceptAtMailEndsTheMessage) {
  Transaction t;
  t.hostname = Host("");
  t.mail = "<s+accept-mail@example.org>";
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  EXPECT_EQ(o.mail->kind, Kind::kAccept);
  EXPECT_EQ(o.data->kind, Kind::kAccept);
  EXPECT_EQ(o.content->kind, Kind::kAccept);
  EXPECT_EQ(Find(events, "data"), nullptr);
  EXPECT_EQ(Find(events, "eom"), nullptr);
}

TEST_F(PythonMilterTest, AcceptAtEndOfMessage) {
  Transaction t;
  t.hostname = Host("");
  t.subject = "accept";
  Outcome o = Run(t);
  EXPECT_EQ(o.content->kind, Kind::kAccept);
  EXPECT_THAT(o.content->modifications, IsEmpty());
}

// Each change at end of message: what the engine decodes, and the stored message once applied.
struct ChangeCase {
  std::string token;
  std::vector<Modification> expected;
  std::vector<std::string> stored_has;    // substrings of the changed stored message
  std::vector<std::string> stored_lacks;  // substrings it must not have
  std::vector<std::string> rcpts = {"<rcpt@example.org>"};
};

void PrintTo(const ChangeCase& c, std::ostream* os) { *os << c.token; }

std::string PrintChange(const ::testing::TestParamInfo<ChangeCase>& info) {
  return info.param.token;
}

Modification Mod(ModKind kind, uint32_t index, std::string name, std::string value) {
  Modification m;
  m.kind = kind;
  m.index = index;
  m.name = std::move(name);
  m.value = std::move(value);
  return m;
}

class PythonMilterChangeTest : public PythonMilterTest,
                               public ::testing::WithParamInterface<ChangeCase> {};

TEST_P(PythonMilterChangeTest, DecodesAndApplies) {
  const ChangeCase& c = GetParam();
  Transaction t;
  t.hostname = Host("");
  t.subject = c.token;
  t.rcpts = c.rcpts;
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  ASSERT_TRUE(o.content.has_value());
  EXPECT_EQ(o.content->kind, Kind::kContinue);
  EXPECT_EQ(o.content->modifications, c.expected);
  const MilterEvent* eom = Find(events, "eom");
  ASSERT_NE(eom, nullptr);
  EXPECT_FALSE(eom->mods.empty());

  const std::string stored =
      "Received: from client.example by mx.example.test\r\n" + t.ClientMessage();
  ModifiedMessage changed = ApplyModifications(stored, o.content->modifications);
  const std::string& bytes = changed.bytes_changed ? changed.bytes : stored;
  EXPECT_TRUE(bytes.starts_with("Received: from client.example by mx.example.test\r\n"));
  for (const std::string& s : c.stored_has) EXPECT_THAT(bytes, HasSubstr(s));
  for (const std::string& s : c.stored_lacks) EXPECT_THAT(bytes, Not(HasSubstr(s)));
}

INSTANTIATE_TEST_SUITE_P(
    Changes, PythonMilterChangeTest,
    ::testing::Values(
        ChangeCase{"addheader",
                   {Mod(ModKind::kAddHeader, 0, "X-Test-Added", "added by test milter")},
                   {"Message-ID: <1@example.org>\r\nX-Test-Added: added by test milter\r\n\r\n"},
                   {}},
        ChangeCase{"insheader",
                   {Mod(ModKind::kInsertHeader, 0, "X-Test-Inserted", "inserted by test milter")},
                   {"mx.example.test\r\nX-Test-Inserted: inserted by test milter\r\nFrom: "},
                   {}},
        ChangeCase{"chgheader",
                   {Mod(ModKind::kChangeHeader, 1, "X-Test-Change", "changed by test milter")},
                   {"X-Test-Change: changed by test milter\r\n"},
                   {"original"}},
        ChangeCase{"delheader",
                   {Mod(ModKind::kChangeHeader, 1, "X-Test-Delete", "")},
                   {"X-Test-Change: original\r\nMessage-ID"},
                   {"X-Test-Delete"}},
        ChangeCase{"chgfrom",
                   {Mod(ModKind::kChangeSender, 0, "<changed-sender@example.org>", "")},
                   {},
                   {}},
        ChangeCase{"chgfromargs",
                   {Mod(ModKind::kChangeSender, 0, "<changed-sender@example.org>", "RET=HDRS")},
                   {},
                   {}},
        ChangeCase{
            "addrcpt", {Mod(ModKind::kAddRecipient, 0, "<added-rcpt@example.org>", "")}, {}, {}},
        ChangeCase{"addrcptpar",
                   {Mod(ModKind::kAddRecipient, 0, "<added-par@example.org>", "NOTIFY=NEVER")},
                   {},
                   {}},
        ChangeCase{"delrcpt",
                   {Mod(ModKind::kDeleteRecipient, 0, "<second@example.org>", "")},
                   {},
                   {},
                   {"<first@example.org>", "<second@example.org>"}},
        ChangeCase{"replbody",
                   // libmilter gathers the two smfi_replacebody() calls into one packet.
                   {Mod(ModKind::kReplaceBody, 0, "",
                        "Replaced body line 1.\r\nReplaced body line 2.\r\n")},
                   {"\r\n\r\nReplaced body line 1.\r\nReplaced body line 2.\r\n"},
                   {"Hello from the test."}},
        ChangeCase{
            "quarantine", {Mod(ModKind::kQuarantine, 0, "", "held by test milter")}, {}, {}}),
    PrintChange);

TEST_F(PythonMilterTest, EnvelopeChangesApplied) {
  Transaction t;
  t.hostname = Host("");
  t.subject = "chgfromargs addrcptpar delrcpt quarantine addheader";
  t.rcpts = {"<first@example.org>", "<second@example.org>"};
  Outcome o = Run(t);
  ASSERT_TRUE(o.content.has_value());
  ASSERT_EQ(o.content->modifications.size(), 5u);
  const std::string stored = "Received: x\r\n" + t.ClientMessage();
  ModifiedMessage changed = ApplyModifications(stored, o.content->modifications);
  EXPECT_EQ(changed.envelope.sender, "changed-sender@example.org");
  EXPECT_EQ(changed.envelope.sender_args, "RET=HDRS");
  EXPECT_THAT(changed.envelope.added_recipients,
              ElementsAre(EnvelopeChanges::Recipient{"added-par@example.org", "NOTIFY=NEVER"}));
  EXPECT_THAT(changed.envelope.deleted_recipients, ElementsAre("second@example.org"));
  EXPECT_EQ(changed.envelope.quarantine, "held by test milter");
  EXPECT_TRUE(changed.bytes_changed);
}

TEST_F(PythonMilterTest, ProgressRestartsTheWaitThenContinues) {
  Transaction t;
  t.hostname = Host("");
  t.subject = "progress";
  Outcome o = Run(t);
  EXPECT_EQ(o.content->kind, Kind::kContinue);
  EXPECT_FALSE(o.content->failed);
  EXPECT_EQ(last_progress_, 2);
}

TEST_F(PythonMilterTest, SlowMilterGetsItsDefaultAction) {
  for (DefaultAction action :
       {DefaultAction::kTempfail, DefaultAction::kReject, DefaultAction::kAccept}) {
    Transaction t;
    t.hostname = Host("");
    t.subject = "slow";
    // The milter sleeps 10 s at end of message; we wait 3 s for replies to the content (the
    // other stages get the generous default).
    Outcome o = Run(t, nullptr, Config(action), absl::Seconds(3), /*wait_close=*/false);
    ASSERT_TRUE(o.content.has_value());
    EXPECT_TRUE(o.content->failed);
    EXPECT_THAT(last_error_, HasSubstr("timeout"));
    switch (action) {
      case DefaultAction::kTempfail:
        EXPECT_EQ(o.content->kind, Kind::kTempfail);
        EXPECT_EQ(o.content->reply.ToWire(), "451 4.7.1 Service unavailable - try again later\r\n");
        break;
      case DefaultAction::kReject:
        EXPECT_EQ(o.content->kind, Kind::kReject);
        EXPECT_EQ(o.content->reply.ToWire(), "550 5.7.1 Command rejected\r\n");
        break;
      case DefaultAction::kAccept:
        EXPECT_EQ(o.content->kind, Kind::kAccept);
        break;
    }
    // The milter did get the message and was asleep over it.
    const std::vector<MilterEvent> events = EventsOf(t.hostname, /*wait_close=*/false);
    ASSERT_FALSE(events.empty());
    const int conn = events.front().connection;
    EXPECT_TRUE(milter_
                    ->WaitForEvent([&](const MilterEvent& e) {
                      return e.connection == conn && e.stage == "eom-sleeping";
                    })
                    .has_value());
  }
}

TEST_F(PythonMilterTest, SkipStopsTheBody) {
  Transaction t;
  t.hostname = Host("");
  t.subject = "skip-body";
  // Three BODY chunks of at most 65535 bytes.
  t.body.clear();
  for (int i = 0; i < 5000; ++i) absl::StrAppend(&t.body, "line ", i, " of a long body....\r\n");
  ASSERT_GT(t.body.size(), 2 * kMaxBodyChunkBytes);
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  EXPECT_EQ(o.content->kind, Kind::kContinue);
  int bodies = 0;
  for (const MilterEvent& e : events) bodies += e.stage == "body" ? 1 : 0;
  EXPECT_EQ(bodies, 1);
  ASSERT_NE(Find(events, "eom"), nullptr);
  EXPECT_EQ(Find(events, "body")->result, "skip");
}

TEST_F(PythonMilterTest, BodyInChunks) {
  Transaction t;
  t.hostname = Host("");
  t.body.clear();
  for (int i = 0; i < 5000; ++i) absl::StrAppend(&t.body, "line ", i, " of a long body....\r\n");
  std::vector<MilterEvent> events;
  Outcome o = Run(t, &events);
  EXPECT_EQ(o.content->kind, Kind::kContinue);
  std::string body;
  int chunks = 0;
  for (const MilterEvent& e : events) {
    if (e.stage != "body") continue;
    ++chunks;
    ASSERT_EQ(e.args.size(), 1u);
    EXPECT_LE(e.args[0].size(), kMaxBodyChunkBytes);
    body += e.args[0];
  }
  EXPECT_EQ(chunks, 3);
  EXPECT_EQ(body, t.body);
}

TEST_F(PythonMilterTest, RejectedRecipientAbortAndUnknown) {
  const std::string host = Host("");
  Driver d(milter_->port(), Config());
  ASSERT_TRUE(d.connected());
  Session& s = d.session();
  SetSessionMacros(s, host);
  ConnectInfo info{host, Family::kInet, 5000, "127.0.0.1"};
  EXPECT_EQ(d.Run([&](Session& s2, Output& out) { s2.Connect(info, out); })->kind, Kind::kContinue);
  EXPECT_EQ(d.Run([&](Session& s2, Output& out) { s2.Unknown("XFOO bar", out); })->kind,
            Kind::kContinue);
  s.SetMacro("i", "Q1");
  std::vector<std::string> no_args;
  EXPECT_EQ(
      d.Run([&](Session& s2, Output& out) { s2.Mail("<a@example.org>", no_args, out); })->kind,
      Kind::kContinue);
  ASSERT_TRUE(s.wants_rejected_rcpts());
  Reply ours;
  ours.code = 550;
  ours.enhanced = "5.1.1";
  ours.lines = {"5.1.1 No such user"};
  d.Run([&](Session& s2, Output& out) { s2.RejectedRcpt("<nobody@example.org>", {}, ours, out); });
  EXPECT_FALSE(d.Run([&](Session& s2, Output& out) { s2.Abort(out); }).has_value());
  // A new transaction after the abort.
  EXPECT_EQ(
      d.Run([&](Session& s2, Output& out) { s2.Mail("<b@example.org>", no_args, out); })->kind,
      Kind::kContinue);
  d.Run([&](Session& s2, Output& out) { s2.Quit(out); });

  const std::vector<MilterEvent> events = EventsOf(host);
  // libmilter calls abort itself when QUIT ends an open transaction.
  EXPECT_THAT(Stages(events), ElementsAre("negotiate", "connect", "unknown", "mail", "rcpt",
                                          "abort", "mail", "abort", "close"));
  EXPECT_THAT(Find(events, "unknown")->args, ElementsAre("XFOO bar"));
  const MilterEvent* rcpt = Find(events, "rcpt");
  EXPECT_THAT(rcpt->args, ElementsAre("<nobody@example.org>"));
  EXPECT_EQ(rcpt->macros.at("{rcpt_mailer}"), "error");
  EXPECT_EQ(rcpt->macros.at("{rcpt_host}"), "5.1.1");
  EXPECT_THAT(rcpt->macros.at("{rcpt_addr}"), HasSubstr("No such user"));
}

TEST_F(PythonMilterTest, MilterDownGetsDefaultAction) {
  // A port nobody listens on (the milter's, once stopped, is not ours to stop here).
  const uint16_t port = ::ringmx::testing::FreeLoopbackPort();
  Driver d(port, Config(DefaultAction::kTempfail));
  EXPECT_FALSE(d.connected());
  ConnectInfo info{"client.example", Family::kInet, 5000, "127.0.0.1"};
  std::optional<Verdict> v = d.Run([&](Session& s, Output& out) { s.Connect(info, out); });
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->failed);
  EXPECT_EQ(v->kind, Kind::kTempfail);
  EXPECT_EQ(v->reply.ToWire(), "451 4.7.1 Service unavailable - try again later\r\n");
  // And every later event.
  v = d.Run([&](Session& s, Output& out) { s.Helo("client.example", out); });
  EXPECT_EQ(v->kind, Kind::kTempfail);
}

// ---- the python milter with its own macro lists ------------------------------------------------

// Also its session markers: "addheader" for every connection.
TEST(PythonMilterOptionsTest, OwnMacroListsReplaceOursAndSessionMarkers) {
  TempDir dir;
  std::string error;
  PythonMilter::Options options;
  options.symlist = true;
  options.session_markers = "addheader";
  std::unique_ptr<PythonMilter> milter = PythonMilter::Start(dir / "milter", &error, options);
  ASSERT_NE(milter, nullptr) << error;
  Transaction t;
  t.hostname = "symlist.example";
  Driver d(milter->port(), Config());
  ASSERT_TRUE(d.connected());
  Outcome o = RunTransaction(d, t);
  EXPECT_EQ(o.content->kind, Kind::kContinue);
  EXPECT_THAT(o.content->modifications,
              ElementsAre(Mod(ModKind::kAddHeader, 0, "X-Test-Added", "added by test milter")));
  const OptNegReply& neg = d.session().negotiated();
  EXPECT_EQ(neg.macros[static_cast<size_t>(MacroStage::kConnect)], "{client_addr}");
  EXPECT_EQ(neg.macros[static_cast<size_t>(MacroStage::kMail)], "{mail_addr} i");
  EXPECT_EQ(neg.macros[static_cast<size_t>(MacroStage::kEom)], "{rcpt_addr}");
  EXPECT_FALSE(neg.macros[static_cast<size_t>(MacroStage::kHelo)].has_value());

  ASSERT_TRUE(
      milter->WaitForEvent([](const MilterEvent& e) { return e.stage == "close"; }).has_value());
  const std::vector<MilterEvent> events = milter->EventsOf(1);
  std::map<std::string, std::map<std::string, std::string>> macros;
  for (const MilterEvent& e : events) macros[e.stage] = e.macros;
  using Macros = std::map<std::string, std::string>;
  EXPECT_EQ(macros["connect"], (Macros{{"{client_addr}", "127.0.0.1"}}));
  EXPECT_EQ(macros["helo"], (Macros{{"{client_addr}", "127.0.0.1"}}));
  const Macros at_mail = {
      {"{client_addr}", "127.0.0.1"}, {"{mail_addr}", "sender@example.org"}, {"i", "4F2A1C"}};
  EXPECT_EQ(macros["mail"], at_mail);
  EXPECT_EQ(macros["rcpt"], at_mail);  // no list for RCPT: no {rcpt_addr} there
  EXPECT_EQ(macros["data"], at_mail);
  Macros at_eom = at_mail;
  at_eom["{rcpt_addr}"] = "rcpt@example.org";
  EXPECT_EQ(macros["eom"], at_eom);
}

// ---- rspamd ------------------------------------------------------------------------------------

// The end of a long log, for failure messages.
std::string LogTail(const std::string& log) {
  return log.size() <= 8000 ? log : log.substr(log.size() - 8000);
}

constexpr char kGtube[] = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

class RspamdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    std::string error;
    rspamd_ = Rspamd::Start(*dir_ / "rspamd", &error).release();
    ASSERT_NE(rspamd_, nullptr) << error;
    std::cerr << "rspamd ready in " << absl::FormatDuration(rspamd_->startup_time()) << "\n";
  }
  static void TearDownTestSuite() {
    delete rspamd_;
    rspamd_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(rspamd_, nullptr); }

  static Transaction Message(const std::string& body) {
    Transaction t;
    t.hostname = "client.example";
    t.message = absl::StrCat(
        "From: Sender <sender@example.org>\r\nTo: rcpt@example.org\r\n"
        "Subject: A test message\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
        "Message-ID: <rspamd-test@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        body);
    return t;
  }

  static TempDir* dir_;
  static Rspamd* rspamd_;
};

TempDir* RspamdTest::dir_ = nullptr;
Rspamd* RspamdTest::rspamd_ = nullptr;

TEST_F(RspamdTest, GtubeIsRefusedAtEndOfMessage) {
  Transaction t = Message(absl::StrCat("This is the GTUBE test.\r\n", kGtube, "\r\n"));
  Driver d(rspamd_->port(), Config());
  ASSERT_TRUE(d.connected());
  Outcome o = RunTransaction(d, t);
  // rspamd answers only OPTNEG and end of message (every SMFIP_NR* flag).
  EXPECT_EQ(d.session().negotiated().protocol & proto::kNrConnect, proto::kNrConnect);
  EXPECT_EQ(d.session().negotiated().protocol & proto::kNrRcpt, proto::kNrRcpt);
  for (const auto* v : {&o.connect, &o.helo, &o.mail, &o.data}) {
    ASSERT_TRUE(v->has_value());
    EXPECT_EQ((*v)->kind, Kind::kContinue);
  }
  ASSERT_TRUE(o.content.has_value()) << rspamd_->Log();
  EXPECT_EQ(o.content->kind, Kind::kReject) << o.content->reply.OneLine() << "\n"
                                            << LogTail(rspamd_->Log());
  EXPECT_FALSE(o.content->failed) << d.error();
  EXPECT_TRUE(o.content->custom);
  EXPECT_EQ(o.content->reply.code, 554);
  EXPECT_EQ(o.content->reply.enhanced, "5.7.1");
  // rspamd's text for GTUBE (its reject_message is for scores above the reject threshold).
  EXPECT_EQ(o.content->reply.ToWire(), "554 5.7.1 Gtube pattern\r\n");
  EXPECT_EQ(d.error(), "");
}

TEST_F(RspamdTest, CleanMessageContinuesWithRspamdHeaders) {
  Transaction t = Message(
      "Hello Bob,\r\n\r\nthe meeting is moved to Thursday at ten, same room as last week.\r\n"
      "\r\nRegards,\r\nAlice\r\n");
  Driver d(rspamd_->port(), Config());
  ASSERT_TRUE(d.connected());
  Outcome o = RunTransaction(d, t);
  ASSERT_TRUE(o.content.has_value());
  EXPECT_TRUE(o.content->kind == Kind::kContinue || o.content->kind == Kind::kAccept)
      << static_cast<int>(o.content->kind) << " " << o.content->reply.OneLine();
  EXPECT_FALSE(o.content->failed) << d.error();
  std::vector<std::string> names;
  for (const Modification& m : o.content->modifications) {
    if (m.kind == ModKind::kAddHeader || m.kind == ModKind::kInsertHeader ||
        m.kind == ModKind::kChangeHeader) {
      names.push_back(m.name);
    }
  }
  std::cerr << "rspamd's changes:";
  for (const Modification& m : o.content->modifications) {
    std::cerr << " " << static_cast<int>(m.kind) << ":" << m.name << "=" << m.value.substr(0, 60);
  }
  std::cerr << "\n";
  EXPECT_THAT(names, ::testing::Contains("X-Spamd-Result")) << ::testing::PrintToString(names);
  EXPECT_THAT(names, ::testing::Contains("X-Rspamd-Action"));
  const std::string stored = "Received: x\r\n" + t.ClientMessage();
  ModifiedMessage changed = ApplyModifications(stored, o.content->modifications);
  EXPECT_THAT(changed.bytes, HasSubstr("X-Rspamd-Action: no action"));
  EXPECT_TRUE(changed.bytes.starts_with("Received: x\r\n"));
}

TEST_F(RspamdTest, StoppedGetsDefaultActionThenRestarts) {
  ASSERT_TRUE(rspamd_->Stop());
  {
    Driver d(rspamd_->port(), Config(DefaultAction::kTempfail));
    EXPECT_FALSE(d.connected());
    ConnectInfo info{"client.example", Family::kInet, 5000, "127.0.0.1"};
    std::optional<Verdict> v = d.Run([&](Session& s, Output& out) { s.Connect(info, out); });
    ASSERT_TRUE(v.has_value());
    EXPECT_TRUE(v->failed);
    EXPECT_EQ(v->kind, Kind::kTempfail);
  }
  std::string error;
  ASSERT_TRUE(rspamd_->Restart(&error)) << error;
  std::cerr << "rspamd restarted in " << absl::FormatDuration(rspamd_->startup_time()) << "\n";
  Transaction t = Message(absl::StrCat(kGtube, "\r\n"));
  Driver d(rspamd_->port(), Config());
  Outcome o = RunTransaction(d, t);
  ASSERT_TRUE(o.content.has_value());
  EXPECT_EQ(o.content->kind, Kind::kReject);
}

}  // namespace
}  // namespace ringmx::smtp::milter

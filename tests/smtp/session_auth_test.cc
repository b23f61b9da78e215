// AUTH (RFC 4954, SASL PLAIN and LOGIN) and checks answered later through smtp::Session: the
// advertisement only after TLS, 538 before it, the exchange's replies, the parked command (an
// answer before, during and after more pipelined input; a client that goes away), the answers'
// replies, and relay once authenticated. Transcripts through Check()/CheckTls() are replayed split
// at every byte boundary and one byte at a time; the timing tests drive the session by hand.
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

#include "core/queue_id.h"
#include "core/strings.h"
#include "core/tls_facts.h"
#include "smtp/limits.h"
#include "smtp/session.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp {
namespace {

using testing::Check;
using testing::CheckTls;
using testing::Env;
using testing::Greeting;
using testing::kT0;
using testing::kTlsHandshake;
using testing::Lines;
using testing::TlsPlan;
using testing::Transcript;

constexpr char kOk235[] = "235 2.7.0 Authentication successful\r\n";
constexpr char k535[] = "535 5.7.8 Authentication credentials invalid\r\n";

core::TlsFacts Tls() {
  core::TlsFacts facts;
  facts.version = "TLSv1.3";
  facts.cipher = "TLS_AES_256_GCM_SHA384";
  facts.cipher_bits = 256;
  facts.cipher_alg_bits = 256;
  return facts;
}

core::Config AuthConfig(core::TlsMode mode = core::TlsMode::kImplicit) {
  core::Config config = testing::TestConfig();
  config.listeners[0].tls = mode;
  config.listeners[0].auth = true;
  return config;
}

// An implicit-TLS listener with auth = true: TLS is up from the start.
struct AuthEnv : Env {
  AuthEnv() : Env(AuthConfig()) { implicit_tls = Tls(); }
};

std::string Plain(std::string_view authzid, std::string_view user, std::string_view password) {
  std::string raw;
  raw.append(authzid).push_back('\0');
  raw.append(user).push_back('\0');
  raw.append(password);
  return absl::Base64Escape(raw);
}

std::string EhloWithAuth() {
  return absl::StrCat("250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE ",
                      testing::kMaxMessageSize,
                      "\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
                      "250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n");
}

bool LogHas(const Transcript& t, std::string_view needle) {
  for (const std::string& line : t.log) {
    if (line.find(needle) != std::string::npos) return true;
  }
  ADD_FAILURE() << "no log line has " << needle;
  return false;
}

TEST(SessionAuthTest, NotAdvertisedBeforeTlsAndRefusedWith538) {
  Env env(AuthConfig(core::TlsMode::kStartTls));
  const Transcript t = Check(
      env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "u", "p")), "QUIT"}));
  EXPECT_EQ(t.replies.find("AUTH PLAIN"), std::string::npos) << t.replies;
  EXPECT_NE(t.replies.find("538 5.7.11 Encryption required for requested authentication "
                           "mechanism\r\n"),
            std::string::npos)
      << t.replies;
  EXPECT_TRUE(t.checks.empty());
}

TEST(SessionAuthTest, AdvertisedAfterStartTls) {
  Env env(AuthConfig(core::TlsMode::kStartTls));
  TlsPlan plan;
  plan.facts = Tls();
  plan.over_tls = Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "u", "p"))});
  const Transcript t = CheckTls(env, Lines({"EHLO c.example", "STARTTLS"}), plan);
  const size_t handshake = t.replies.find(kTlsHandshake);
  ASSERT_NE(handshake, std::string::npos);
  EXPECT_EQ(t.replies.find("AUTH PLAIN"), t.replies.find("AUTH PLAIN", handshake));
  EXPECT_NE(t.replies.find(EhloWithAuth(), handshake), std::string::npos) << t.replies;
  ASSERT_EQ(t.checks.size(), 1u);
  EXPECT_EQ(t.auth_identity, "u");
}

TEST(SessionAuthTest, ListenerWithoutAuthNeitherAdvertisesNorAccepts) {
  core::Config config = AuthConfig();
  config.listeners[0].auth = false;
  Env env(config);
  env.implicit_tls = Tls();
  const Transcript t =
      Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "u", "p"))}));
  EXPECT_EQ(t.replies.find("AUTH"), std::string::npos) << t.replies;
  EXPECT_NE(t.replies.find("503 5.5.1 Error: authentication not enabled\r\n"), std::string::npos);
  EXPECT_TRUE(t.checks.empty());
}

TEST(SessionAuthTest, PlainWithInitialResponseParksOnACredentialsCheck) {
  AuthEnv env;
  const Transcript t =
      Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "alice", "s3cret")),
                        "MAIL FROM:<alice@example.test>", "RCPT TO:<bob@remote.test>", "QUIT"}));
  ASSERT_EQ(t.checks.size(), 1u);
  EXPECT_EQ(t.checks[0].kind, CheckRequest::Kind::kCredentials);
  EXPECT_EQ(t.checks[0].mechanism, "PLAIN");
  EXPECT_EQ(t.checks[0].user, "alice");
  EXPECT_EQ(t.checks[0].secret.view(), "s3cret");
  // Authenticated: the remote recipient is relayed.
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(), kOk235,
                                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n221 2.0.0 Bye\r\n"));
  EXPECT_EQ(t.auth_identity, "alice");
  ASSERT_FALSE(t.log.empty());
  for (const std::string& line : t.log) EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
  EXPECT_TRUE(LogHas(t, "auth mechanism=PLAIN user=\"alice\" result=ok"));
  EXPECT_TRUE(LogHas(t, "rcpt=<bob@remote.test> decision=relay reason=auth:alice"));
}

TEST(SessionAuthTest, PlainWithEmptyChallenge) {
  AuthEnv env;
  const Transcript t =
      Check(env, Lines({"EHLO c.example", "AUTH PLAIN", Plain("", "alice", "pw"), "NOOP"}));
  EXPECT_EQ(t.replies,
            absl::StrCat(Greeting(), EhloWithAuth(), "334 \r\n", kOk235, "250 2.0.0 Ok\r\n"));
  ASSERT_EQ(t.checks.size(), 1u);
  EXPECT_EQ(t.checks[0].user, "alice");
}

TEST(SessionAuthTest, LoginAsksForUserThenPassword) {
  AuthEnv env;
  const Transcript t =
      Check(env, Lines({"EHLO c.example", "AUTH LOGIN", absl::Base64Escape("carol"),
                        absl::Base64Escape("pa ss"), "NOOP"}));
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(), "334 VXNlcm5hbWU6\r\n",
                                    "334 UGFzc3dvcmQ6\r\n", kOk235, "250 2.0.0 Ok\r\n"));
  ASSERT_EQ(t.checks.size(), 1u);
  EXPECT_EQ(t.checks[0].mechanism, "LOGIN");
  EXPECT_EQ(t.checks[0].user, "carol");
  EXPECT_EQ(t.checks[0].secret.view(), "pa ss");
}

TEST(SessionAuthTest, WrongCredentialsGet535AndNoIdentity) {
  AuthEnv env;
  env.check_answers = {{CheckAnswer::Decision::kReject, ""}};
  const Transcript t =
      Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "alice", "wrong")),
                        "MAIL FROM:<a@example.test>", "RCPT TO:<bob@remote.test>"}));
  EXPECT_EQ(t.replies,
            absl::StrCat(Greeting(), EhloWithAuth(), k535,
                         "250 2.1.0 Ok\r\n554 5.7.1 <bob@remote.test>: Relay access denied\r\n"));
  EXPECT_EQ(t.auth_identity, "");
  EXPECT_TRUE(LogHas(t, "user=\"alice\" result=failed"));
}

TEST(SessionAuthTest, AfterAFailureTheClientMayTryAgain) {
  AuthEnv env;
  env.check_answers = {{CheckAnswer::Decision::kReject, ""}, {CheckAnswer::Decision::kAccept, ""}};
  const Transcript t =
      Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "a", "x")),
                        absl::StrCat("AUTH PLAIN ", Plain("", "a", "y"))}));
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(), k535, kOk235));
  ASSERT_EQ(t.checks.size(), 2u);
  EXPECT_NE(t.checks[0].token, t.checks[1].token);
}

TEST(SessionAuthTest, TemporaryFailureAndTheChecksOwnReply) {
  AuthEnv env;
  env.check_answers = {{CheckAnswer::Decision::kTempFail, ""},
                       {CheckAnswer::Decision::kReject, "535 5.7.8 Custom refusal"}};
  const Transcript t =
      Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "a", "x")),
                        absl::StrCat("AUTH PLAIN ", Plain("", "a", "y"))}));
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(),
                                    "454 4.7.0 Temporary authentication failure\r\n",
                                    "535 5.7.8 Custom refusal\r\n"));
}

TEST(SessionAuthTest, RefusedClientGets421AndIsClosed) {
  AuthEnv env;
  env.check_answers = {{CheckAnswer::Decision::kRefuse, ""}};
  const Transcript t = Check(
      env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "a", "x")), "NOOP"}));
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(),
                                    "421 4.7.0 mx.example.test Error: too many authentication "
                                    "failures\r\n"));
  EXPECT_TRUE(t.closed);
  EXPECT_EQ(t.end_reason, "auth-refused");
}

// The reply codes (code and enhanced code) of a transcript's replies, the EHLO reply folded to
// one "250 EHLO".
std::vector<std::string> Codes(std::string_view replies) {
  std::vector<std::string> codes;
  for (absl::string_view line : absl::StrSplit(core::Av(replies), "\r\n", absl::SkipEmpty())) {
    if (line.substr(0, 4) == "250-") continue;
    if (line.substr(0, 4) == "250 " && line.find("CHUNKING") != std::string_view::npos) {
      codes.push_back("250 EHLO");
      continue;
    }
    codes.emplace_back(line.substr(0, 9));
  }
  return codes;
}

TEST(SessionAuthTest, ExchangeErrors) {
  AuthEnv env;
  const Transcript t =
      Check(env, Lines({"AUTH PLAIN", "EHLO c.example", "AUTH", "AUTH CRAM-MD5", "AUTH LOGIN", "*",
                        "AUTH PLAIN", "!!!notbase64", "AUTH PLAIN =", "MAIL FROM:<a@example.test>",
                        absl::StrCat("AUTH PLAIN ", Plain("", "a", "x"))}));
  const std::vector<std::string> expected = {"220 mx.ex", "503 5.5.1", "250 EHLO",  "501 5.5.4",
                                             "504 5.5.4", "334 VXNlc", "501 5.5.2", "334 ",
                                             "501 5.5.2", "501 5.5.2", "250 2.1.0", "503 5.5.1"};
  EXPECT_EQ(Codes(t.replies), expected) << t.replies;
  EXPECT_TRUE(t.checks.empty());
  EXPECT_NE(t.replies.find("503 5.5.1 Error: MAIL transaction in progress\r\n"), std::string::npos)
      << t.replies;
}

TEST(SessionAuthTest, AlreadyAuthenticated) {
  AuthEnv env;
  const Transcript t =
      Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", Plain("", "a", "x")),
                        absl::StrCat("AUTH PLAIN ", Plain("", "a", "x"))}));
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(), kOk235,
                                    "503 5.5.1 Error: already authenticated\r\n"));
  EXPECT_EQ(t.checks.size(), 1u);
}

TEST(SessionAuthTest, AuthLinesMayBeLongerThanCommandLines) {
  AuthEnv env;
  // RFC 4954 section 4: up to 12288 octets; a 1000-octet password makes a line over 512.
  const std::string password(1000, 'p');
  const std::string line = absl::StrCat("AUTH PLAIN ", Plain("", "alice", password));
  ASSERT_GT(line.size(), kMaxCommandLineOctets);
  Transcript t = Check(env, Lines({"EHLO c.example", line}));
  EXPECT_EQ(t.replies, absl::StrCat(Greeting(), EhloWithAuth(), kOk235));
  ASSERT_EQ(t.checks.size(), 1u);
  EXPECT_EQ(t.checks[0].secret.view(), password);
  // Past 12288 octets the line is too long, and ordinary commands keep their 512.
  t = Check(env, Lines({"EHLO c.example", absl::StrCat("AUTH PLAIN ", std::string(13000, 'A')),
                        absl::StrCat("NOOP ", std::string(600, 'x'))}));
  EXPECT_EQ(t.replies,
            absl::StrCat(Greeting(), EhloWithAuth(), "500 5.5.2 Error: line too long\r\n",
                         "500 5.5.2 Error: line too long\r\n"));
  EXPECT_TRUE(t.checks.empty());
}

// By hand: the session's replies and check at each step.
struct Driven {
  AuthEnv env;
  core::QueueIdGenerator ids{1};
  Session session{env.snapshot, env.facts, ids};
  Output out;
  std::string replies;

  Driven() {
    session.OnTlsEstablished(Tls(), kT0, out);
    session.Start(kT0, out);
    Take();
  }
  std::string Take() {
    std::string r = out.replies;
    replies += r;
    out.replies.clear();
    return r;
  }
  void Feed(std::string_view input) { session.OnInput(input, kT0, out); }
};

TEST(SessionAuthTest, PipelinedInputWaitsForTheAnswerInOrder) {
  for (int when = 0; when < 3; ++when) {  // answer before, during, after the rest of the input
    SCOPED_TRACE(when);
    Driven d;
    d.Feed("EHLO c.example\r\n");
    d.Take();
    d.Feed(absl::StrCat("AUTH PLAIN ", Plain("", "alice", "pw"), "\r\n"));
    ASSERT_TRUE(d.out.check.has_value());
    const uint64_t token = d.out.check->token;
    d.out.check.reset();
    EXPECT_TRUE(d.session.input_blocked());
    EXPECT_EQ(d.session.check_outstanding(), token);
    EXPECT_EQ(d.Take(), "");
    const std::string rest =
        "MAIL FROM:<alice@example.test>\r\nRCPT TO:<x@remote.test>\r\nNOOP\r\n";
    if (when == 0) {
      d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
      d.Feed(rest);
    } else if (when == 1) {
      d.Feed(rest.substr(0, 20));
      EXPECT_EQ(d.Take(), "");
      d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
      d.Feed(rest.substr(20));
    } else {
      d.Feed(rest);
      EXPECT_EQ(d.Take(), "") << "nothing is answered while the check is out";
      d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
    }
    EXPECT_EQ(d.Take(), absl::StrCat(kOk235, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"));
    EXPECT_FALSE(d.session.input_blocked());
    EXPECT_EQ(d.session.check_outstanding(), 0u);
  }
}

TEST(SessionAuthTest, StaleOrUnknownTokensAreIgnored) {
  Driven d;
  d.Feed(absl::StrCat("EHLO c.example\r\nAUTH PLAIN ", Plain("", "a", "pw"), "\r\n"));
  ASSERT_TRUE(d.out.check.has_value());
  const uint64_t token = d.out.check->token;
  d.Take();
  d.session.OnCheckAnswer(token + 1, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
  d.session.OnCheckAnswer(0, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
  EXPECT_EQ(d.Take(), "");
  EXPECT_EQ(d.session.facts().auth_identity, "");
  d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kReject, ""}, kT0, d.out);
  EXPECT_EQ(d.Take(), k535);
  // A second answer to the same check changes nothing.
  d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
  EXPECT_EQ(d.Take(), "");
  EXPECT_EQ(d.session.facts().auth_identity, "");
}

TEST(SessionAuthTest, TimeoutWhileParkedEndsTheSessionAndDropsTheAnswer) {
  Driven d;
  d.Feed(absl::StrCat("EHLO c.example\r\nAUTH PLAIN ", Plain("", "a", "pw"), "\r\n"));
  ASSERT_TRUE(d.out.check.has_value());
  const uint64_t token = d.out.check->token;
  d.Take();
  const absl::Time later = kT0 + absl::Seconds(301);
  EXPECT_LE(d.session.deadline(), later);
  d.session.OnTimeout(later, d.out);
  EXPECT_TRUE(d.session.closed());
  EXPECT_EQ(d.session.check_outstanding(), 0u);
  d.Take();
  d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kAccept, ""}, later, d.out);
  EXPECT_EQ(d.Take(), "");
  EXPECT_EQ(d.session.facts().auth_identity, "");
}

TEST(SessionAuthTest, ShutdownWhileParkedAnswersThenCloses) {
  Driven d;
  d.Feed(absl::StrCat("EHLO c.example\r\nAUTH PLAIN ", Plain("", "a", "pw"), "\r\n"));
  ASSERT_TRUE(d.out.check.has_value());
  const uint64_t token = d.out.check->token;
  d.Take();
  d.session.OnShutdown(kT0, d.out);
  EXPECT_FALSE(d.session.closed()) << "the AUTH in progress is answered first";
  d.session.OnCheckAnswer(token, {CheckAnswer::Decision::kAccept, ""}, kT0, d.out);
  EXPECT_EQ(d.Take(), absl::StrCat(kOk235, "421 4.3.2 Service shutting down\r\n"));
  EXPECT_TRUE(d.session.closed());
}

}  // namespace
}  // namespace ringmx::smtp

// The session's side of RFC 3461 (docs/dsn.md): DSN in the EHLO reply, RET and ENVID on MAIL,
// NOTIFY and ORCPT on RCPT, their refusals, and what reaches the `<id>.json` envelope (read back
// with ParseStoredEnvelope). Transcripts through Check(), which also replays them split at every
// byte boundary and one byte at a time.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "smtp/dsn_params.h"
#include "smtp/envelope.h"
#include "tests/smtp/session_harness.h"

namespace ringmx::smtp {
namespace {

using testing::Check;
using testing::EhloReply;
using testing::Env;
using testing::Greeting;
using testing::Lines;
using testing::Transcript;

constexpr char kEhlo[] = "EHLO client.example\r\n";
constexpr char kMail[] = "MAIL FROM:<sender@remote.test>\r\n";
constexpr char k354[] = "354 End data with <CR><LF>.<CR><LF>\r\n";

std::string Queued(const Transcript& t) {
  return t.records.empty() ? "" : absl::StrCat("250 2.0.0 Ok: queued as ", t.records[0].id, "\r\n");
}

TEST(SessionDsnTest, EhloAdvertisesDsn) {
  Env env;
  const Transcript t = Check(env, kEhlo);
  EXPECT_EQ(t.replies, Greeting() + EhloReply());
  EXPECT_NE(t.replies.find("\r\n250-DSN\r\n"), std::string::npos);
}

TEST(SessionDsnTest, ParametersAreAcceptedAndStoredPerRecipient) {
  Env env;
  const Transcript t = Check(
      env, absl::StrCat(kEhlo,
                        "MAIL FROM:<sender@remote.test> ret=hdrs ENVID=QQ314159+2Bx+20y\r\n"
                        "RCPT TO:<a@example.test> NOTIFY=success,FAILURE "
                        "ORCPT=rfc822;bob+2Bsales@example.test\r\n"
                        "RCPT TO:<b@example.test>\r\n"
                        "RCPT TO:<c@example.test> ORCPT=RFC822;c@example.test NOTIFY=NEVER\r\n"
                        "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.replies, Greeting() + EhloReply() +
                           Lines({"250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok"}) +
                           k354 + Queued(t));
  const std::string& json = t.records[0].envelope_json;
  // The parameters as sent stay in mail_params; the decoded values are in dsn and rcpt_dsn.
  EXPECT_NE(json.find(R"("mail_params":{"RET":"hdrs","ENVID":"QQ314159+2Bx+20y"})"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"("dsn":{"ret":"HDRS","envid":"QQ314159+x y"},)"
                      R"("rcpt_dsn":[{"notify":["SUCCESS","FAILURE"],)"
                      R"("orcpt":{"addr_type":"rfc822","address":"bob+sales@example.test"}},)"
                      R"({"notify":null,"orcpt":null},)"
                      R"({"notify":["NEVER"],)"
                      R"("orcpt":{"addr_type":"RFC822","address":"c@example.test"}}]})"),
            std::string::npos)
      << json;

  const absl::StatusOr<StoredEnvelope> stored = ParseStoredEnvelope(json);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->mail_from, "sender@remote.test");
  EXPECT_EQ(stored->rcpt_to,
            (std::vector<std::string>{"a@example.test", "b@example.test", "c@example.test"}));
  EXPECT_EQ(stored->ret, DsnRet::kHdrs);
  EXPECT_EQ(stored->envid, "QQ314159+x y");
  ASSERT_EQ(stored->rcpt_dsn.size(), 3u);
  EXPECT_TRUE(stored->rcpt_dsn[0].notify.WantsSuccess());
  EXPECT_TRUE(stored->rcpt_dsn[0].notify.WantsFailure());
  EXPECT_FALSE(stored->rcpt_dsn[0].notify.WantsDelay());
  ASSERT_TRUE(stored->rcpt_dsn[0].orcpt.has_value());
  EXPECT_EQ(stored->rcpt_dsn[0].orcpt->ToParameterValue(), "rfc822;bob+2Bsales@example.test");
  EXPECT_FALSE(stored->rcpt_dsn[1].notify.given);
  EXPECT_FALSE(stored->rcpt_dsn[1].orcpt.has_value());
  EXPECT_TRUE(stored->rcpt_dsn[2].notify.never);
  EXPECT_FALSE(stored->rcpt_dsn[2].notify.WantsFailure());
  EXPECT_EQ(stored->rcpt_dsn[2].orcpt->addr_type, "RFC822");
}

// A refused RCPT adds no entry: rcpt_dsn[i] stays recipient i's.
TEST(SessionDsnTest, RefusedRecipientsKeepTheListsAligned) {
  Env env;
  const Transcript t =
      Check(env, absl::StrCat(kEhlo, kMail,
                              "RCPT TO:<a@example.test> NOTIFY=SUCCESS\r\n"
                              "RCPT TO:<x@remote.test> NOTIFY=DELAY\r\n"         // relay denied
                              "RCPT TO:<y@example.test> NOTIFY=NEVER,DELAY\r\n"  // bad NOTIFY
                              "RCPT TO:<c@example.test> NOTIFY=DELAY\r\n"
                              "DATA\r\nhi\r\n.\r\n"));
  ASSERT_EQ(t.records.size(), 1u);
  const absl::StatusOr<StoredEnvelope> stored = ParseStoredEnvelope(t.records[0].envelope_json);
  ASSERT_TRUE(stored.ok()) << stored.status();
  ASSERT_EQ(stored->rcpt_to, (std::vector<std::string>{"a@example.test", "c@example.test"}));
  ASSERT_EQ(stored->rcpt_dsn.size(), 2u);
  EXPECT_EQ(stored->rcpt_dsn[0].notify.ToParameterValue(), "SUCCESS");
  EXPECT_EQ(stored->rcpt_dsn[1].notify.ToParameterValue(), "DELAY");
}

TEST(SessionDsnTest, WithoutParametersTheEnvelopeHasDefaults) {
  Env env;
  const Transcript t =
      Check(env, absl::StrCat(kEhlo, kMail, "RCPT TO:<a@example.test>\r\nDATA\r\nhi\r\n.\r\n"));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_NE(t.records[0].envelope_json.find(R"("dsn":{"ret":null,"envid":null},)"
                                            R"("rcpt_dsn":[{"notify":null,"orcpt":null}]})"),
            std::string::npos);
  const absl::StatusOr<StoredEnvelope> stored = ParseStoredEnvelope(t.records[0].envelope_json);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->ret, DsnRet::kUnspecified);
  EXPECT_EQ(stored->envid, "");
  ASSERT_EQ(stored->rcpt_dsn.size(), 1u);
  EXPECT_FALSE(stored->rcpt_dsn[0].notify.given);
  EXPECT_TRUE(stored->rcpt_dsn[0].notify.WantsFailure());
}

// RET and ENVID belong to one transaction: RSET and a new MAIL forget them.
TEST(SessionDsnTest, ResetForgetsTheParameters) {
  Env env;
  const Transcript t =
      Check(env, absl::StrCat(kEhlo,
                              "MAIL FROM:<s@remote.test> RET=FULL ENVID=e1\r\n"
                              "RCPT TO:<a@example.test> NOTIFY=SUCCESS\r\nRSET\r\n",
                              kMail, "RCPT TO:<b@example.test>\r\nDATA\r\nhi\r\n.\r\n"));
  ASSERT_EQ(t.records.size(), 1u);
  const absl::StatusOr<StoredEnvelope> stored = ParseStoredEnvelope(t.records[0].envelope_json);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->ret, DsnRet::kUnspecified);
  EXPECT_EQ(stored->envid, "");
  ASSERT_EQ(stored->rcpt_dsn.size(), 1u);
  EXPECT_FALSE(stored->rcpt_dsn[0].notify.given);
}

struct Case {
  std::string command;
  std::string reply;
};

TEST(SessionDsnTest, BadMailParametersAreRefused) {
  const std::vector<Case> cases = {
      {"MAIL FROM:<a@remote.test> RET=ALL",
       "501 5.5.4 Invalid RET parameter: expected FULL or HDRS"},
      {"MAIL FROM:<a@remote.test> RET", "501 5.5.4 Invalid RET parameter: a value is required"},
      {"MAIL FROM:<a@remote.test> RET=FULL RET=HDRS", "501 5.5.4 Duplicate RET parameter"},
      {"MAIL FROM:<a@remote.test> ENVID=a=b",
       "501 5.5.4 Invalid ENVID parameter: not xtext (RFC 3461 section 4)"},
      {"MAIL FROM:<a@remote.test> ENVID=a+2b",
       "501 5.5.4 Invalid ENVID parameter: not xtext (RFC 3461 section 4)"},
      {"MAIL FROM:<a@remote.test> ENVID=" + std::string(101, 'x'),
       "501 5.5.4 Invalid ENVID parameter: longer than 100 characters"},
      {"MAIL FROM:<a@remote.test> ENVID=a+0Db",
       "501 5.5.4 Invalid ENVID parameter: not printable US-ASCII"},
      {"MAIL FROM:<a@remote.test> ENVID=x ENVID=y", "501 5.5.4 Duplicate ENVID parameter"},
      // NOTIFY and ORCPT are RCPT parameters; on MAIL they are as unknown as any other.
      {"MAIL FROM:<a@remote.test> NOTIFY=NEVER", "555 5.5.4 Unsupported option: NOTIFY"},
      {"MAIL FROM:<a@remote.test> RET=FULL XYZ=1", "555 5.5.4 Unsupported option: XYZ"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command);
    Env env;
    // The refused MAIL leaves no transaction: RCPT needs a MAIL.
    const Transcript t =
        Check(env, absl::StrCat(kEhlo, c.command, "\r\nRCPT TO:<a@example.test>\r\n"));
    EXPECT_EQ(t.replies,
              Greeting() + EhloReply() + Lines({c.reply, "503 5.5.1 Error: need MAIL command"}));
  }
}

TEST(SessionDsnTest, BadRcptParametersAreRefused) {
  const std::vector<Case> cases = {
      {"RCPT TO:<a@example.test> NOTIFY=NEVER,FAILURE",
       "501 5.5.4 Invalid NOTIFY parameter: NEVER cannot be combined with other values"},
      {"RCPT TO:<a@example.test> NOTIFY=SUCCESS,NEVER",
       "501 5.5.4 Invalid NOTIFY parameter: NEVER cannot be combined with other values"},
      {"RCPT TO:<a@example.test> NOTIFY=", "501 5.5.4 Invalid NOTIFY parameter: empty value"},
      {"RCPT TO:<a@example.test> NOTIFY",
       "501 5.5.4 Invalid NOTIFY parameter: a value is required"},
      {"RCPT TO:<a@example.test> NOTIFY=FAILURE,",
       "501 5.5.4 Invalid NOTIFY parameter: empty list element"},
      {"RCPT TO:<a@example.test> NOTIFY=ALWAYS",
       "501 5.5.4 Invalid NOTIFY parameter: expected NEVER or a list of SUCCESS, FAILURE, DELAY"},
      {"RCPT TO:<a@example.test> NOTIFY=SUCCESS NOTIFY=FAILURE",
       "501 5.5.4 Duplicate NOTIFY parameter"},
      {"RCPT TO:<a@example.test> ORCPT=rfc822",
       "501 5.5.4 Invalid ORCPT parameter: expected addr-type;address"},
      {"RCPT TO:<a@example.test> ORCPT=rfc(822);a@b",
       "501 5.5.4 Invalid ORCPT parameter: bad address type"},
      {"RCPT TO:<a@example.test> ORCPT=rfc822;a+0D+0Ab",
       "501 5.5.4 Invalid ORCPT parameter: address is not printable US-ASCII"},
      {"RCPT TO:<a@example.test> ORCPT=rfc822;" + std::string(494, 'a'),
       "501 5.5.4 Invalid ORCPT parameter: longer than 500 characters"},
      {"RCPT TO:<a@example.test> ORCPT=rfc822;a@b ORCPT=rfc822;c@d",
       "501 5.5.4 Duplicate ORCPT parameter"},
      // RET and ENVID are MAIL parameters; other keywords stay unknown.
      {"RCPT TO:<a@example.test> RET=FULL", "555 5.5.4 Unsupported option: RET"},
      {"RCPT TO:<a@example.test> NOTIFY=SUCCESS XTRA", "555 5.5.4 Unsupported option: XTRA"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command);
    Env env;
    // A refused RCPT adds no recipient: DATA has none.
    const Transcript t = Check(env, absl::StrCat(kEhlo, kMail, c.command, "\r\nDATA\r\n"));
    EXPECT_EQ(t.replies,
              Greeting() + EhloReply() +
                  Lines({"250 2.1.0 Ok", c.reply, "503 5.5.1 Error: need RCPT command"}));
    EXPECT_TRUE(t.records.empty());
  }
}

// RFC 3461 raises the command line limit for MAIL and RCPT: a 500-character ORCPT and a
// 100-character ENVID written as xtext fit (kMaxMailRcptLineOctets); other commands keep 512.
TEST(SessionDsnTest, MailAndRcptLinesMayCarryLongParameters) {
  Env env;
  std::string envid;
  for (int i = 0; i < 100; ++i) envid += "+41";  // 100 decoded characters, 300 as sent
  const std::string orcpt_address(64, 'o');
  std::string orcpt = "rfc822;";
  for (size_t i = 0; i < orcpt_address.size(); ++i) orcpt += "+6F";  // 'o' as a hexchar
  orcpt += std::string(500 - orcpt.size(), 'p');                     // exactly 500 characters
  const std::string mail =
      absl::StrCat("MAIL FROM:<", std::string(64, 's'), "@", std::string(60, 'd'), ".",
                   std::string(60, 'e'), ".remote.test", "> RET=HDRS ENVID=", envid, "\r\n");
  const std::string rcpt =
      absl::StrCat("RCPT TO:<", std::string(64, 'u'),
                   "@example.test> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=", orcpt, "\r\n");
  ASSERT_GT(mail.size(), 512u);
  ASSERT_GT(rcpt.size(), 512u);
  const Transcript t = Check(env, absl::StrCat(kEhlo, mail, rcpt, "NOOP ", std::string(600, 'n'),
                                               "\r\nDATA\r\nhi\r\n.\r\n"));
  ASSERT_EQ(t.records.size(), 1u);
  EXPECT_EQ(t.replies,
            Greeting() + EhloReply() +
                Lines({"250 2.1.0 Ok", "250 2.1.5 Ok", "500 5.5.2 Error: line too long"}) + k354 +
                Queued(t));
  const absl::StatusOr<StoredEnvelope> stored = ParseStoredEnvelope(t.records[0].envelope_json);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->envid, std::string(100, 'A'));
  ASSERT_EQ(stored->rcpt_dsn.size(), 1u);
  ASSERT_TRUE(stored->rcpt_dsn[0].orcpt.has_value());
  EXPECT_EQ(stored->rcpt_dsn[0].orcpt->address, orcpt_address + std::string(500 - 7 - 192, 'p'));
}

// Each refused parameter counts as a protocol error, like any other syntax error: the session
// ends with 421 at the configured limit.
TEST(SessionDsnTest, RefusalsCountAsErrors) {
  Env env;
  std::string input = absl::StrCat(kEhlo, kMail);
  for (int i = 0; i < 25; ++i) input += "RCPT TO:<a@example.test> NOTIFY=NEVER,DELAY\r\n";
  const Transcript t = Check(env, input);
  EXPECT_TRUE(t.closed);
  EXPECT_NE(t.replies.find("421 "), std::string::npos);
}

}  // namespace
}  // namespace ringmx::smtp

#include "smtp/sasl.h"

#include <string>
#include <string_view>
#include <variant>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/strings.h"

namespace ringmx::smtp {
namespace {

using core::Av;

std::string B64(std::string_view text) { return absl::Base64Escape(Av(text)); }

// The reply line of a step, or a description of the credentials, so that a test compares one
// string: "334 ...", "501 ...", or "creds PLAIN authzid=... user=... password=...".
std::string Show(const SaslStep& step) {
  if (const auto* c = std::get_if<SaslChallenge>(&step)) return c->line;
  if (const auto* f = std::get_if<SaslFailure>(&step)) {
    EXPECT_EQ(f->line.substr(0, 3), absl::StrCat(f->code));
    return f->line;
  }
  const auto& creds = std::get<SaslCredentials>(step);
  return absl::StrCat("creds ", Av(SaslMechanismName(creds.mechanism)), " authzid=", creds.authzid,
                      " user=", creds.user, " password=", Av(creds.password.view()));
}

// --- PLAIN (RFC 4616) ---------------------------------------------------------------------------

TEST(SaslTest, PlainWithInitialResponse) {
  SaslServer sasl;
  // RFC 4616 §4's first example: C: "\0tim\0tanstaaftanstaaf".
  EXPECT_EQ(Show(sasl.Start("PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm")),
            "creds PLAIN authzid= user=tim password=tanstaaftanstaaf");
  EXPECT_FALSE(sasl.in_progress());
}

TEST(SaslTest, PlainWithoutInitialResponseGetsAnEmptyChallenge) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("PLAIN")), "334 ");
  EXPECT_TRUE(sasl.in_progress());
  EXPECT_EQ(Show(sasl.Continue("AHRpbQB0YW5zdGFhZnRhbnN0YWFm")),
            "creds PLAIN authzid= user=tim password=tanstaaftanstaaf");
  EXPECT_FALSE(sasl.in_progress());
}

TEST(SaslTest, PlainAuthzidEqualToTheUserIsAccepted) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", B64(std::string("tim\0tim\0pw", 10))))),
            "creds PLAIN authzid=tim user=tim password=pw");
}

TEST(SaslTest, PlainAuthzidOfSomeoneElseIsRefused) {
  SaslServer sasl;
  // RFC 4616 §4's second example: Ursel acting as Kurt.
  EXPECT_EQ(
      Show(sasl.Start(absl::StrCat("PLAIN ", B64(std::string("Ursel\0Kurt\0xipj3plmq", 20))))),
      "535 5.7.8 Authorization identity not supported");
  EXPECT_FALSE(sasl.in_progress());
}

TEST(SaslTest, MechanismIsCaseInsensitive) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("plain AHRpbQB0YW5zdGFhZnRhbnN0YWFm")),
            "creds PLAIN authzid= user=tim password=tanstaaftanstaaf");
  EXPECT_EQ(Show(sasl.Start("Login")), "334 VXNlcm5hbWU6");
}

TEST(SaslTest, EqualsSignIsAnEmptyInitialResponse) {
  SaslServer sasl;
  // RFC 4954 §4: "=" is a zero-length initial response, which PLAIN cannot accept.
  EXPECT_EQ(Show(sasl.Start("PLAIN =")), "501 5.5.2 Malformed authentication message");
  EXPECT_EQ(Show(sasl.Start("LOGIN =")), "501 5.5.2 Invalid user name");
}

TEST(SaslTest, MalformedPlainMessages) {
  SaslServer sasl;
  for (std::string_view message : {std::string_view("timpassword"), std::string_view("\0tim", 4),
                                   std::string_view("\0\0pw", 4), std::string_view("\0tim\0", 5),
                                   std::string_view("\0tim\0pw\0", 8),
                                   std::string_view("a\0b\0c\0d", 7), std::string_view("")}) {
    // An empty initial response is written "=" (RFC 4954 §4).
    const std::string initial = message.empty() ? "=" : B64(message);
    EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", initial))),
              "501 5.5.2 Malformed authentication message")
        << absl::CHexEscape(Av(message));
    EXPECT_EQ(Show(sasl.Start("PLAIN")), "334 ");
    EXPECT_EQ(Show(sasl.Continue(B64(message))), "501 5.5.2 Malformed authentication message");
  }
  // An empty line answering PLAIN's challenge is an empty message.
  EXPECT_EQ(Show(sasl.Start("PLAIN")), "334 ");
  EXPECT_EQ(Show(sasl.Continue("")), "501 5.5.2 Malformed authentication message");
}

TEST(SaslTest, ControlOctetsInNamesAreRefused) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", B64(std::string("\0ti\nm\0pw", 8))))),
            "501 5.5.2 Invalid user name");
  EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", B64(std::string("\x7f\0tim\0pw", 8))))),
            "501 5.5.2 Invalid user name");
  // A password may hold any octet but NUL.
  EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", B64(std::string("\0tim\0p\tw\xff", 9))))),
            "creds PLAIN authzid= user=tim password=p\tw\xff");
}

TEST(SaslTest, LengthBounds) {
  SaslServer sasl;
  const std::string user(kMaxSaslUserBytes, 'u');
  const std::string password(kMaxSaslPasswordBytes, 'p');
  EXPECT_EQ(
      Show(sasl.Start(absl::StrCat("PLAIN ", B64(absl::StrCat(std::string(1, '\0'), user,
                                                              std::string(1, '\0'), password))))),
      absl::StrCat("creds PLAIN authzid= user=", user, " password=", password));
  EXPECT_EQ(
      Show(sasl.Start(absl::StrCat("PLAIN ", B64(absl::StrCat(std::string(1, '\0'), user, "u",
                                                              std::string(1, '\0'), password))))),
      "501 5.5.2 User name or password too long");
  EXPECT_EQ(Show(sasl.Start(
                absl::StrCat("PLAIN ", B64(absl::StrCat(std::string(1, '\0'), user,
                                                        std::string(1, '\0'), password, "p"))))),
            "501 5.5.2 User name or password too long");
  EXPECT_EQ(
      Show(sasl.Start(absl::StrCat("PLAIN ", B64(absl::StrCat(user, "u", std::string(1, '\0'), user,
                                                              std::string(1, '\0'), password))))),
      "501 5.5.2 User name or password too long");
  // RFC 4954 §4: a line of at most 12288 octets with CRLF, so 12286 for a response line.
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(std::string(kMaxSaslLineBytes - 1, 'A'))),
            "501 5.5.2 Authentication line too long");
  EXPECT_FALSE(sasl.in_progress());
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  // 12284 is a multiple of 4: valid base64, so the length check is what fails it (too long a
  // user once decoded).
  EXPECT_EQ(Show(sasl.Continue(std::string(kMaxSaslLineBytes - 4, 'A'))),
            "501 5.5.2 User name or password too long");
  EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", std::string(kMaxSaslLineBytes, 'A')))),
            "501 5.5.2 Authentication line too long");
}

// --- LOGIN ---------------------------------------------------------------------------------------

TEST(SaslTest, LoginPromptsForUserThenPassword) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_TRUE(sasl.in_progress());
  EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
  EXPECT_TRUE(sasl.in_progress());
  EXPECT_EQ(Show(sasl.Continue(B64("tanstaaf"))),
            "creds LOGIN authzid= user=tim password=tanstaaf");
  EXPECT_FALSE(sasl.in_progress());
}

TEST(SaslTest, LoginInitialResponseIsTheUserName) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start(absl::StrCat("LOGIN ", B64("tim")))), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(Show(sasl.Continue(B64("tanstaaf"))),
            "creds LOGIN authzid= user=tim password=tanstaaf");
}

TEST(SaslTest, LoginRefusesNulEmptyAndControlOctets) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64(std::string("ti\0m", 4)))), "501 5.5.2 Invalid user name");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue("")), "501 5.5.2 Invalid user name");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64("ti\rm"))), "501 5.5.2 Invalid user name");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(Show(sasl.Continue(B64(std::string("pass\0word", 9)))), "501 5.5.2 Invalid password");
  EXPECT_FALSE(sasl.in_progress());
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(Show(sasl.Continue("")), "501 5.5.2 Invalid password");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64(std::string(kMaxSaslUserBytes + 1, 'u')))),
            "501 5.5.2 User name or password too long");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(Show(sasl.Continue(B64(std::string(kMaxSaslPasswordBytes + 1, 'p')))),
            "501 5.5.2 User name or password too long");
}

// --- Cancel, syntax, mechanisms ------------------------------------------------------------------

TEST(SaslTest, StarCancelsAtEveryPrompt) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("PLAIN")), "334 ");
  EXPECT_EQ(Show(sasl.Continue("*")), "501 5.5.2 Authentication aborted");
  EXPECT_FALSE(sasl.in_progress());
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue("*")), "501 5.5.2 Authentication aborted");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(Show(sasl.Continue("*")), "501 5.5.2 Authentication aborted");
  EXPECT_FALSE(sasl.in_progress());
}

TEST(SaslTest, UnknownMechanism) {
  SaslServer sasl;
  for (std::string_view args : {"CRAM-MD5", "DIGEST-MD5 abc", "XOAUTH2", "PLAINX", "PLAIN-"}) {
    EXPECT_EQ(Show(sasl.Start(args)), "504 5.5.4 Unrecognized authentication type") << args;
    EXPECT_FALSE(sasl.in_progress());
  }
}

TEST(SaslTest, Syntax) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("")), "501 5.5.4 Syntax: AUTH mechanism");
  EXPECT_EQ(Show(sasl.Start("   ")), "501 5.5.4 Syntax: AUTH mechanism");
  EXPECT_EQ(Show(sasl.Start("PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm extra")),
            "501 5.5.4 Syntax: AUTH mechanism");
  // Blanks around the arguments are tolerated.
  EXPECT_EQ(Show(sasl.Start("PLAIN  AHRpbQB0YW5zdGFhZnRhbnN0YWFm ")),
            "creds PLAIN authzid= user=tim password=tanstaaftanstaaf");
  EXPECT_EQ(Show(sasl.Start("LOGIN ")), "334 VXNlcm5hbWU6");
}

TEST(SaslTest, StartForgetsAnExchangeInProgress) {
  SaslServer sasl;
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(Show(sasl.Start("PLAIN")), "334 ");
  EXPECT_EQ(Show(sasl.Continue(B64(std::string("\0bob\0pw", 7)))),
            "creds PLAIN authzid= user=bob password=pw");
  EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
  sasl.Reset();
  EXPECT_FALSE(sasl.in_progress());
}

// --- Strict base64 -------------------------------------------------------------------------------

TEST(SaslTest, BadBase64IsRefusedEverywhere) {
  SaslServer sasl;
  for (std::string_view bad :
       {"AHRpbQB0YW5zdGFhZnRhbnN0YWFm=", "AHRpbQB0YW5zdGFhZnRhbnN0YWF", "AHRpbQB0 YW5zdGFhZnRhbnN0",
        "AHRp\tbQB0", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r", "dGlt=", "dGl=", "dA==dA==", "=AAA",
        "dB==", "dGm=", "AHRpbQ-0", "AHRpbQ_0", "YQ", "YQ=", "YQ===", "Y===", "****", "é"}) {
    // A space would split the AUTH arguments (a syntax error, tested elsewhere).
    if (bad.find(' ') == std::string_view::npos) {
      EXPECT_EQ(Show(sasl.Start(absl::StrCat("PLAIN ", Av(bad)))),
                "501 5.5.2 Cannot decode response")
          << bad;
    }
    EXPECT_EQ(Show(sasl.Start("PLAIN")), "334 ");
    EXPECT_EQ(Show(sasl.Continue(bad)), "501 5.5.2 Cannot decode response") << bad;
    EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
    EXPECT_EQ(Show(sasl.Continue(bad)), "501 5.5.2 Cannot decode response") << bad;
    EXPECT_EQ(Show(sasl.Start("LOGIN")), "334 VXNlcm5hbWU6");
    EXPECT_EQ(Show(sasl.Continue(B64("tim"))), "334 UGFzc3dvcmQ6");
    EXPECT_EQ(Show(sasl.Continue(bad)), "501 5.5.2 Cannot decode response") << bad;
  }
}

TEST(SaslTest, DecodeSaslBase64) {
  EXPECT_EQ(DecodeSaslBase64(""), "");
  EXPECT_EQ(DecodeSaslBase64("YQ=="), "a");
  EXPECT_EQ(DecodeSaslBase64("YWI="), "ab");
  EXPECT_EQ(DecodeSaslBase64("YWJj"), "abc");
  EXPECT_EQ(DecodeSaslBase64("+/+/"), "\xfb\xff\xbf");
  EXPECT_EQ(DecodeSaslBase64("YR=="), std::nullopt);  // non-zero unused bits
  EXPECT_EQ(DecodeSaslBase64("YWJ="), std::nullopt);
  EXPECT_EQ(DecodeSaslBase64("YQ"), std::nullopt);  // padding is required
  EXPECT_EQ(DecodeSaslBase64("Y=Q="), std::nullopt);
  EXPECT_EQ(DecodeSaslBase64("===="), std::nullopt);
  EXPECT_EQ(DecodeSaslBase64("YWJj\n"), std::nullopt);
  // Round trip of every length up to 64 with every octet value.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (size_t n = 0; n <= 64; ++n) {
    const std::string text = all.substr(n * 3, n);
    EXPECT_EQ(DecodeSaslBase64(B64(text)), text) << n;
  }
}

TEST(SaslTest, TooManyAuthFailuresReply) {
  EXPECT_EQ(TooManyAuthFailuresReply("mx.example.test"),
            "421 4.7.0 mx.example.test Error: too many authentication failures");
}

TEST(SaslTest, CredentialsMoveWithoutCopyingThePassword) {
  SaslServer sasl;
  SaslStep step = sasl.Start("PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
  SaslCredentials creds = std::get<SaslCredentials>(std::move(step));
  const char* bytes = creds.password.c_str();
  core::SecretString moved = std::move(creds.password);
  EXPECT_EQ(moved.c_str(), bytes);  // the same heap block
  EXPECT_TRUE(creds.password.empty());
  EXPECT_EQ(moved.view(), "tanstaaftanstaaf");
  EXPECT_EQ(std::string_view(moved.c_str()), "tanstaaftanstaaf");
  moved.Wipe();
  EXPECT_TRUE(moved.empty());
}

}  // namespace
}  // namespace ringmx::smtp

#include "smtp/dsn_params.h"

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ringmx::smtp {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

template <typename T>
std::string ErrorOf(const std::variant<T, DsnParamError>& v) {
  const auto* error = std::get_if<DsnParamError>(&v);
  return error != nullptr ? error->reply : "(no error)";
}

TEST(XtextTest, DecodesXcharsAndHexchars) {
  EXPECT_EQ(DecodeXtext("abc"), "abc");
  EXPECT_EQ(DecodeXtext(""), "");
  EXPECT_EQ(DecodeXtext("a+2Bb+3Dc"), "a+b=c");
  EXPECT_EQ(DecodeXtext("+20+00+FF"), std::string(" \0\xFF", 3));
  EXPECT_EQ(DecodeXtext("+41"), "A");  // a hexchar may encode an xchar
  EXPECT_EQ(DecodeXtext("!~"), "!~");
}

TEST(XtextTest, RefusesWhatIsNotXtext) {
  EXPECT_EQ(DecodeXtext("a b"), std::nullopt);          // space is not an xchar
  EXPECT_EQ(DecodeXtext("a=b"), std::nullopt);          // '=' must be encoded
  EXPECT_EQ(DecodeXtext("+2b"), std::nullopt);          // lower-case hex
  EXPECT_EQ(DecodeXtext("+2"), std::nullopt);           // truncated
  EXPECT_EQ(DecodeXtext("+"), std::nullopt);            // truncated
  EXPECT_EQ(DecodeXtext("+G0"), std::nullopt);          // not hex
  EXPECT_EQ(DecodeXtext("\x7F"), std::nullopt);         // DEL
  EXPECT_EQ(DecodeXtext("caf\xC3\xA9"), std::nullopt);  // 8-bit
  EXPECT_EQ(DecodeXtext("a\r\n"), std::nullopt);
}

TEST(XtextTest, EncodesAndRoundTripsEveryOctet) {
  EXPECT_EQ(EncodeXtext("a+b=c d"), "a+2Bb+3Dc+20d");
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string encoded = EncodeXtext(all);
  EXPECT_EQ(DecodeXtext(encoded), all);
  for (char c : encoded) {
    EXPECT_TRUE(c >= '!' && c <= '~' && c != '=') << static_cast<int>(c);
  }
}

TEST(NotifyTest, ParsesNeverAndLists) {
  auto never = std::get<DsnNotify>(ParseNotify("never"));
  EXPECT_TRUE(never.given);
  EXPECT_TRUE(never.never);
  EXPECT_EQ(never.flags, 0);
  EXPECT_FALSE(never.WantsFailure());
  EXPECT_FALSE(never.WantsDelay());
  EXPECT_FALSE(never.WantsSuccess());
  EXPECT_EQ(never.ToParameterValue(), "NEVER");

  auto list = std::get<DsnNotify>(ParseNotify("Delay,SUCCESS"));
  EXPECT_FALSE(list.never);
  EXPECT_EQ(list.flags, DsnNotify::kSuccess | DsnNotify::kDelay);
  EXPECT_TRUE(list.WantsSuccess());
  EXPECT_FALSE(list.WantsFailure());
  EXPECT_TRUE(list.WantsDelay());
  EXPECT_EQ(list.ToParameterValue(), "SUCCESS,DELAY");

  auto repeated = std::get<DsnNotify>(ParseNotify("FAILURE,FAILURE"));
  EXPECT_EQ(repeated.flags, DsnNotify::kFailure);
}

TEST(NotifyTest, DefaultIsFailureAndDelay) {
  DsnNotify absent;
  EXPECT_TRUE(absent.WantsFailure());
  EXPECT_TRUE(absent.WantsDelay());
  EXPECT_FALSE(absent.WantsSuccess());
  EXPECT_EQ(absent.ToParameterValue(), "");
}

TEST(NotifyTest, RefusesBadValues) {
  EXPECT_EQ(ErrorOf(ParseNotify("NEVER,FAILURE")),
            "501 5.5.4 Invalid NOTIFY parameter: NEVER cannot be combined with other values");
  EXPECT_EQ(ErrorOf(ParseNotify("SUCCESS,NEVER")),
            "501 5.5.4 Invalid NOTIFY parameter: NEVER cannot be combined with other values");
  EXPECT_EQ(ErrorOf(ParseNotify("")), "501 5.5.4 Invalid NOTIFY parameter: empty value");
  EXPECT_EQ(ErrorOf(ParseNotify(std::nullopt)),
            "501 5.5.4 Invalid NOTIFY parameter: a value is required");
  EXPECT_EQ(ErrorOf(ParseNotify("FAILURE,")),
            "501 5.5.4 Invalid NOTIFY parameter: empty list element");
  EXPECT_EQ(ErrorOf(ParseNotify(",FAILURE")),
            "501 5.5.4 Invalid NOTIFY parameter: empty list element");
  EXPECT_EQ(ErrorOf(ParseNotify("FAILURE, DELAY")),
            "501 5.5.4 Invalid NOTIFY parameter: expected NEVER or a list of SUCCESS, FAILURE, "
            "DELAY");
  EXPECT_EQ(ErrorOf(ParseNotify("ALWAYS")),
            "501 5.5.4 Invalid NOTIFY parameter: expected NEVER or a list of SUCCESS, FAILURE, "
            "DELAY");
}

TEST(RetTest, ParsesFullAndHdrs) {
  EXPECT_EQ(std::get<DsnRet>(ParseRet("FULL")), DsnRet::kFull);
  EXPECT_EQ(std::get<DsnRet>(ParseRet("hdrs")), DsnRet::kHdrs);
  EXPECT_EQ(ErrorOf(ParseRet("HEADERS")), "501 5.5.4 Invalid RET parameter: expected FULL or HDRS");
  EXPECT_EQ(ErrorOf(ParseRet("")), "501 5.5.4 Invalid RET parameter: expected FULL or HDRS");
  EXPECT_EQ(ErrorOf(ParseRet(std::nullopt)),
            "501 5.5.4 Invalid RET parameter: a value is required");
}

TEST(EnvidTest, DecodesAndValidates) {
  EXPECT_EQ(std::get<std::string>(ParseEnvid("QQ314159+2Bx+3Dy")), "QQ314159+x=y");
  EXPECT_EQ(std::get<std::string>(ParseEnvid("a+20b")), "a b");  // a space is printable
  EXPECT_EQ(std::get<std::string>(ParseEnvid(std::string(100, 'x'))), std::string(100, 'x'));
  EXPECT_EQ(ErrorOf(ParseEnvid(std::string(101, 'x'))),
            "501 5.5.4 Invalid ENVID parameter: longer than 100 characters");
  // 100 decoded octets written as 300 characters of xtext are fine: the limit is on the value.
  std::string encoded;
  for (int i = 0; i < 100; ++i) encoded += "+2B";
  EXPECT_EQ(std::get<std::string>(ParseEnvid(encoded)), std::string(100, '+'));
  EXPECT_EQ(ErrorOf(ParseEnvid("a=b")),
            "501 5.5.4 Invalid ENVID parameter: not xtext (RFC 3461 section 4)");
  EXPECT_EQ(ErrorOf(ParseEnvid("a+0Ab")),
            "501 5.5.4 Invalid ENVID parameter: not printable US-ASCII");
  EXPECT_EQ(ErrorOf(ParseEnvid("+C3+A9")),
            "501 5.5.4 Invalid ENVID parameter: not printable US-ASCII");
  EXPECT_EQ(ErrorOf(ParseEnvid("")), "501 5.5.4 Invalid ENVID parameter: empty value");
  EXPECT_EQ(ErrorOf(ParseEnvid(std::nullopt)),
            "501 5.5.4 Invalid ENVID parameter: a value is required");
}

TEST(OrcptTest, ParsesTypeAndDecodedAddress) {
  auto orcpt = std::get<DsnOrcpt>(ParseOrcpt("rfc822;Bob+2Bsales@example.test"));
  EXPECT_EQ(orcpt.addr_type, "rfc822");
  EXPECT_EQ(orcpt.address, "Bob+sales@example.test");
  EXPECT_EQ(orcpt.ToParameterValue(), "rfc822;Bob+2Bsales@example.test");
  // A ';' in the address is an xchar: only the first one separates.
  auto semi = std::get<DsnOrcpt>(ParseOrcpt("RFC822;a;b@example.test"));
  EXPECT_EQ(semi.addr_type, "RFC822");
  EXPECT_EQ(semi.address, "a;b@example.test");
}

TEST(OrcptTest, RefusesBadValues) {
  EXPECT_EQ(ErrorOf(ParseOrcpt("rfc822")),
            "501 5.5.4 Invalid ORCPT parameter: expected addr-type;address");
  EXPECT_EQ(ErrorOf(ParseOrcpt(";a@b")), "501 5.5.4 Invalid ORCPT parameter: empty address type");
  EXPECT_EQ(ErrorOf(ParseOrcpt("rfc 822;a@b")),
            "501 5.5.4 Invalid ORCPT parameter: bad address type");
  EXPECT_EQ(ErrorOf(ParseOrcpt("rfc822;")), "501 5.5.4 Invalid ORCPT parameter: empty address");
  EXPECT_EQ(ErrorOf(ParseOrcpt("rfc822;a=b")),
            "501 5.5.4 Invalid ORCPT parameter: address is not xtext (RFC 3461 section 4)");
  EXPECT_EQ(ErrorOf(ParseOrcpt("rfc822;a+0D+0Ab")),
            "501 5.5.4 Invalid ORCPT parameter: address is not printable US-ASCII");
  EXPECT_EQ(ErrorOf(ParseOrcpt("rfc822;" + std::string(494, 'a'))),
            "501 5.5.4 Invalid ORCPT parameter: longer than 500 characters");
  EXPECT_TRUE(std::holds_alternative<DsnOrcpt>(ParseOrcpt("rfc822;" + std::string(493, 'a'))));
  EXPECT_EQ(ErrorOf(ParseOrcpt(std::nullopt)),
            "501 5.5.4 Invalid ORCPT parameter: a value is required");
}

TEST(ApplyDsnParamTest, MailParamsAndDuplicates) {
  EXPECT_TRUE(IsDsnMailParam("ret"));
  EXPECT_TRUE(IsDsnMailParam("ENVID"));
  EXPECT_FALSE(IsDsnMailParam("NOTIFY"));
  EXPECT_FALSE(IsDsnMailParam("SIZE"));
  DsnMailParams params;
  EXPECT_EQ(ApplyDsnMailParam("RET", "HDRS", params), std::nullopt);
  EXPECT_EQ(ApplyDsnMailParam("envid", "x+2By", params), std::nullopt);
  EXPECT_EQ(params.ret, DsnRet::kHdrs);
  EXPECT_EQ(params.envid, "x+y");
  auto dup = ApplyDsnMailParam("RET", "FULL", params);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->reply, "501 5.5.4 Duplicate RET parameter");
  EXPECT_EQ(params.ret, DsnRet::kHdrs);
  dup = ApplyDsnMailParam("ENVID", "z", params);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->reply, "501 5.5.4 Duplicate ENVID parameter");
  EXPECT_EQ(params.envid, "x+y");

  DsnMailParams fresh;
  auto bad = ApplyDsnMailParam("RET", "ALL", fresh);
  ASSERT_TRUE(bad);
  EXPECT_THAT(bad->reply, StartsWith("501 5.5.4 Invalid RET parameter"));
  EXPECT_EQ(fresh.ret, DsnRet::kUnspecified);
  auto unknown = ApplyDsnMailParam("NOTIFY", "NEVER", fresh);
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->reply, "501 5.5.4 Unknown DSN parameter");
}

TEST(ApplyDsnParamTest, RcptParamsAndDuplicates) {
  EXPECT_TRUE(IsDsnRcptParam("notify"));
  EXPECT_TRUE(IsDsnRcptParam("ORCPT"));
  EXPECT_FALSE(IsDsnRcptParam("RET"));
  DsnRcptParams params;
  EXPECT_EQ(ApplyDsnRcptParam("NOTIFY", "SUCCESS,FAILURE", params), std::nullopt);
  EXPECT_EQ(ApplyDsnRcptParam("ORCPT", "rfc822;a@example.test", params), std::nullopt);
  EXPECT_TRUE(params.notify.WantsSuccess());
  ASSERT_TRUE(params.orcpt);
  EXPECT_EQ(params.orcpt->address, "a@example.test");
  auto dup = ApplyDsnRcptParam("notify", "NEVER", params);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->reply, "501 5.5.4 Duplicate NOTIFY parameter");
  EXPECT_FALSE(params.notify.never);
  dup = ApplyDsnRcptParam("ORCPT", "rfc822;b@example.test", params);
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->reply, "501 5.5.4 Duplicate ORCPT parameter");
  EXPECT_EQ(params.orcpt->address, "a@example.test");

  DsnRcptParams fresh;
  auto bad = ApplyDsnRcptParam("NOTIFY", "NEVER,DELAY", fresh);
  ASSERT_TRUE(bad);
  EXPECT_THAT(bad->reply, HasSubstr("NEVER cannot be combined"));
  EXPECT_FALSE(fresh.notify.given);
}

TEST(DsnParamErrorTest, RepliesNeverEchoTheClientsBytes) {
  const std::string evil = "rfc822;\r\n250 OK";
  for (const std::string& reply : {ErrorOf(ParseOrcpt(evil)), ErrorOf(ParseEnvid(evil)),
                                   ErrorOf(ParseNotify(evil)), ErrorOf(ParseRet(evil))}) {
    EXPECT_THAT(reply, StartsWith("501 5.5.4 "));
    EXPECT_EQ(reply.find_first_of("\r\n"), std::string::npos);
    EXPECT_EQ(reply.find("250"), std::string::npos);
  }
}

}  // namespace
}  // namespace ringmx::smtp

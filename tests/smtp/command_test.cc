// smtp/command.h: verb recognition, path parsing and ESMTP parameters.
#include "smtp/command.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ringmx::smtp {
namespace {

TEST(CommandTest, RecognisesVerbsInAnyCase) {
  EXPECT_EQ(ParseCommandLine("EHLO x").verb, Verb::kEhlo);
  EXPECT_EQ(ParseCommandLine("helo x").verb, Verb::kHelo);
  EXPECT_EQ(ParseCommandLine("MaIl FROM:<>").verb, Verb::kMail);
  EXPECT_EQ(ParseCommandLine("rcpt TO:<a@b>").verb, Verb::kRcpt);
  EXPECT_EQ(ParseCommandLine("data").verb, Verb::kData);
  EXPECT_EQ(ParseCommandLine("BDAT 1 LAST").verb, Verb::kBdat);
  EXPECT_EQ(ParseCommandLine("RSET").verb, Verb::kRset);
  EXPECT_EQ(ParseCommandLine("NOOP").verb, Verb::kNoop);
  EXPECT_EQ(ParseCommandLine("QUIT").verb, Verb::kQuit);
  EXPECT_EQ(ParseCommandLine("VRFY x").verb, Verb::kVrfy);
  EXPECT_EQ(ParseCommandLine("HELP").verb, Verb::kHelp);
  EXPECT_EQ(ParseCommandLine("StartTLS").verb, Verb::kStartTls);
  EXPECT_EQ(ParseCommandLine("AUTH PLAIN").verb, Verb::kAuth);
  for (const char* v : {"EXPN x", "TURN", "ETRN x", "ATRN", "SEND", "SOML", "SAML", "VERB"}) {
    EXPECT_EQ(ParseCommandLine(v).verb, Verb::kNotImplemented) << v;
  }
  for (const char* v :
       {"", "FROB", "MAILFROM:<a@b>", "DATAX", "QUI", "STARTTLSX", " NOOP", "NOOP\x01"}) {
    EXPECT_EQ(ParseCommandLine(v).verb, Verb::kUnknown) << v;
  }
}

TEST(CommandTest, SplitsArgumentsAndTrimsBlanks) {
  CommandLine c = ParseCommandLine("MAIL  \tFROM:<a@b> SIZE=1 \t ");
  EXPECT_EQ(c.verb, Verb::kMail);
  EXPECT_EQ(c.args, "FROM:<a@b> SIZE=1");
  EXPECT_EQ(ParseCommandLine("NOOP").args, "");
  EXPECT_EQ(ParseCommandLine("NOOP   ").args, "");
  EXPECT_EQ(ParseCommandLine("HELO\tname").args, "name");
}

TEST(CommandTest, ParsesMailboxes) {
  std::optional<Path> p = ParsePath("<User.Name+tag@Example.TEST> SIZE=5", PathKind::kReversePath);
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->null);
  EXPECT_EQ(p->mailbox, "User.Name+tag@Example.TEST");
  EXPECT_EQ(p->local_part, "User.Name+tag");
  EXPECT_EQ(p->domain, "Example.TEST");
  EXPECT_EQ(p->rest, " SIZE=5");
  EXPECT_FALSE(p->non_ascii);
}

TEST(CommandTest, NullPathOnlyForMail) {
  std::optional<Path> p = ParsePath("<> BODY=8BITMIME", PathKind::kReversePath);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->null);
  EXPECT_EQ(p->mailbox, "");
  EXPECT_EQ(p->rest, " BODY=8BITMIME");
  EXPECT_FALSE(ParsePath("<>", PathKind::kForwardPath).has_value());
}

TEST(CommandTest, BarePostmasterOnlyForRcpt) {
  std::optional<Path> p = ParsePath("<pOstMaster>", PathKind::kForwardPath);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->mailbox, "pOstMaster");
  EXPECT_EQ(p->local_part, "pOstMaster");
  EXPECT_EQ(p->domain, "");
  EXPECT_FALSE(ParsePath("<postmaster>", PathKind::kReversePath).has_value());
  EXPECT_FALSE(ParsePath("<postmasters>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<\"postmaster\">", PathKind::kForwardPath).has_value());
}

TEST(CommandTest, DropsSourceRoutes) {
  std::optional<Path> p = ParsePath("<@a.test,@b.test:u@d.test>", PathKind::kForwardPath);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->mailbox, "u@d.test");
  EXPECT_EQ(p->domain, "d.test");
  EXPECT_FALSE(ParsePath("<@a.test,b.test:u@d.test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<@a.test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<@:u@d.test>", PathKind::kForwardPath).has_value());
}

TEST(CommandTest, QuotedLocalParts) {
  std::optional<Path> p = ParsePath("<\"a b>\\\"c\"@d.test>", PathKind::kForwardPath);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->local_part, "\"a b>\\\"c\"");
  EXPECT_EQ(p->domain, "d.test");
  EXPECT_TRUE(ParsePath("<\"\"@d.test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<\"a\x01\"@d.test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<\"a\\\x01\"@d.test>", PathKind::kForwardPath).has_value());
}

TEST(CommandTest, AddressLiterals) {
  for (const char* ok : {"<u@[192.0.2.1]>", "<u@[IPv6:2001:db8::1]>", "<u@[ipv6:::1]>",
                         "<u@[IPv6:::ffff:192.0.2.1]>"}) {
    EXPECT_TRUE(ParsePath(ok, PathKind::kForwardPath).has_value()) << ok;
  }
  for (const char* bad : {"<u@[192.0.2]>", "<u@[192.0.2.256]>", "<u@[2001:db8::1]>",
                          "<u@[IPv6:192.0.2.1]>", "<u@[x:y]>", "<u@[192.0.2.1>", "<u@[]>"}) {
    EXPECT_FALSE(ParsePath(bad, PathKind::kForwardPath).has_value()) << bad;
  }
}

TEST(CommandTest, RejectsMalformedPaths) {
  for (const char* bad : {"", "<", "u@d.test", "<u@d.test", "u@d.test>", "<u@>", "<@d.test>", "<u>",
                          "<u@d..test>", "<u@.d.test>", "<u@d.test..>", "<u v@d.test>",
                          "<u@d test>", "<u@d.test@e.test>", "<u(x)@d.test>"}) {
    EXPECT_FALSE(ParsePath(bad, PathKind::kForwardPath).has_value()) << bad;
  }
}

TEST(CommandTest, Utf8AddressesAreMarkedAndValidated) {
  std::optional<Path> p =
      ParsePath("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b.test>", PathKind::kForwardPath);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->non_ascii);
  EXPECT_FALSE(ParsePath("<\xe7\x94@d.test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<\xc0\xafx@d.test>", PathKind::kForwardPath).has_value());  // overlong
}

TEST(CommandTest, LengthLimits) {
  const std::string l64(64, 'l');
  EXPECT_TRUE(ParsePath("<" + l64 + "@d.test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<" + l64 + "l@d.test>", PathKind::kForwardPath).has_value());
  const std::string label63(63, 'a');
  EXPECT_TRUE(ParsePath("<u@" + label63 + ".test>", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<u@" + label63 + "a.test>", PathKind::kForwardPath).has_value());
  // 256 octets in all is the most a path may have.
  std::string domain = label63 + "." + label63 + "." + label63 + "." + std::string(57, 'b');
  ASSERT_EQ(domain.size(), 249u);
  EXPECT_TRUE(ParsePath("<uvwx@" + domain + ">", PathKind::kForwardPath).has_value());
  EXPECT_FALSE(ParsePath("<uvwxy@" + domain + ">", PathKind::kForwardPath).has_value());
}

TEST(CommandTest, ReadsParameters) {
  ParamReader reader("  SIZE=100   BODY=8BITMIME SMTPUTF8 X=");
  std::vector<Param> params;
  Param p;
  while (reader.Next(p)) params.push_back(p);
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0].keyword, "SIZE");
  EXPECT_EQ(params[0].value, "100");
  EXPECT_TRUE(params[0].has_value);
  EXPECT_EQ(params[1].keyword, "BODY");
  EXPECT_EQ(params[2].keyword, "SMTPUTF8");
  EXPECT_FALSE(params[2].has_value);
  EXPECT_EQ(params[3].keyword, "X");
  EXPECT_TRUE(params[3].has_value);
  EXPECT_EQ(params[3].value, "");
  ParamReader empty("   ");
  EXPECT_FALSE(empty.Next(p));
}

TEST(CommandTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x93\xa7"));
  EXPECT_FALSE(IsValidUtf8("\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

}  // namespace
}  // namespace ringmx::smtp

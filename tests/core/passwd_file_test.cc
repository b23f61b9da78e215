#include "core/passwd_file.h"

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "core/strings.h"
#include "tests/core/parse_test_util.h"
#include "tests/testing/temp_dir.h"

namespace ringmx::core {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Hashes of "secret" made with libxcrypt (crypt_gensalt_rn + crypt_rn), at low cost where the
// method has one.
constexpr std::string_view kYescrypt =
    "$y$j75$nc4JApU0.RPzyse9ofawS1$clCrPspjr/o/zK4HiNIgoHPwkz5gCrV3SvpRpBsa7LB";
constexpr std::string_view kSha512 =
    "$6$dK7caCKCKGzYbOWt$sdFDo/9Yg4p2BVfWIU/0raFvIkEUFNERDvFNP6LjqvQ9dSbTgqtGVn7mdkw0vP6."
    "JeAcKn1Omq2qIZDBgMrLi.";
constexpr std::string_view kSha512Rounds =
    "$6$rounds=1000$hbMAKv/s8RM97bY9$nwhnZ4kBx5yMFZbUPOquQu8hldQj9sFu/4LHOnpptYGVuWRQhC55bJL8GrEIur"
    "cXjLKLF4t9jcYKgmvo7TcKi/";
constexpr std::string_view kSha256 =
    "$5$ui1KyykzDPOauVQQ$EtZqGsje0emkvuJFGGRuCF7MbSGg8SvxWLystWkSNC9";
constexpr std::string_view kBcrypt2b =
    "$2b$04$zxpsVc1IUByDLQJLx1LlQuxqtn2wUPAUVpNRnqG8LGMf/r3CcAvdC";
constexpr std::string_view kBcrypt2y =
    "$2y$04$bqPYGQJSCDxsGiorR9ZZB.btjUe6k0S4LxLaG3a8nt4LOugdu4Cku";
constexpr std::string_view kBcrypt2a =
    "$2a$04$f.SHjAjMH0H32BazzlF4Me8NQmg7Dte3K1N5BHnwNF.UA4r44Y.Ay";
constexpr std::string_view kMd5 = "$1$OshZQzUA$TlUaBoFQHKE.jTDeuW5g3/";
constexpr std::string_view kScrypt =
    "$7$CU..../....JdcAIqRPRg0i4/R4uQYVW.$LTHROZf9hoZC2uQILDB4D9MbjiB8NBKTHQ4AuWrQfk7";
constexpr std::string_view kGostYescrypt =
    "$gy$j75$l3rXgbbBEpXUZ8s8ymN3t1$tGG9gXyxl0uyyNeN.h2iEOpA7mbqQbBSnMqMsl5g7m2";

PasswdTable ParseOk(std::string_view text) {
  absl::StatusOr<PasswdTable> table = PasswdTable::Parse(text, "passwd");
  EXPECT_TRUE(table.ok()) << table.status();
  if (!table.ok()) return *PasswdTable::Parse("", "passwd");
  return *std::move(table);
}

std::string ErrorOf(std::string_view text) {
  return test_util::ErrorMessage(PasswdTable::Parse(text, "passwd"), text);
}

std::string_view HashOf(const PasswdTable& table, std::string_view user) {
  const std::string* hash = table.Find(user);
  return hash == nullptr ? "<none>" : std::string_view(*hash);
}

TEST(PasswdFileTest, ParsesUserHashLinesWithAndWithoutExtraFields) {
  const PasswdTable table =
      ParseOk(absl::StrCat("alice:", Av(kYescrypt), "\n",                                  //
                           "bob@example.test:", Av(kSha512), ":1000:1000::/home/bob::\n",  //
                           "carol:", Av(kBcrypt2b), ":::::userdb_quota_rule=*:storage=1G\n"));
  EXPECT_EQ(table.size(), 3u);
  EXPECT_EQ(HashOf(table, "alice"), kYescrypt);
  EXPECT_EQ(HashOf(table, "bob@example.test"), kSha512);
  EXPECT_EQ(HashOf(table, "carol"), kBcrypt2b);
}

TEST(PasswdFileTest, IgnoresCommentsBlankLinesAndCarriageReturns) {
  const PasswdTable table = ParseOk(absl::StrCat("# users\n\n   \n  # indented comment\r\n",
                                                 "alice:", Av(kYescrypt), "\r\n", "\t\n"));
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(HashOf(table, "alice"), kYescrypt);
}

TEST(PasswdFileTest, LastLineWithoutNewlineCounts) {
  const PasswdTable table = ParseOk(absl::StrCat("alice:", Av(kSha512)));
  EXPECT_EQ(HashOf(table, "alice"), kSha512);
}

TEST(PasswdFileTest, EmptyFileGivesEmptyTable) {
  const PasswdTable table = ParseOk("# nobody yet\n");
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(table.dummy_hash(), "");
}

TEST(PasswdFileTest, UserNamesMatchExactly) {
  const PasswdTable table = ParseOk(absl::StrCat("Alice:", Av(kYescrypt), "\n"));
  EXPECT_NE(table.Find("Alice"), nullptr);
  EXPECT_EQ(table.Find("alice"), nullptr);
  EXPECT_EQ(table.Find("ALICE"), nullptr);
  EXPECT_EQ(table.Find("Alice "), nullptr);
  EXPECT_EQ(table.Find(""), nullptr);
}

TEST(PasswdFileTest, AcceptsEveryCryptMethodWithoutPrefix) {
  for (std::string_view hash : {kYescrypt, kSha512, kSha512Rounds, kSha256, kBcrypt2b, kBcrypt2y,
                                kBcrypt2a, kMd5, kScrypt, kGostYescrypt}) {
    const PasswdTable table = ParseOk(absl::StrCat("u:", Av(hash), "\n"));
    EXPECT_EQ(HashOf(table, "u"), hash);
  }
}

TEST(PasswdFileTest, StripsDovecotSchemesThatMatchTheHash) {
  struct Case {
    std::string_view prefix;
    std::string_view hash;
  };
  for (const Case& c :
       {Case{"{SHA512-CRYPT}", kSha512}, Case{"{SHA512-CRYPT}", kSha512Rounds},
        Case{"{SHA256-CRYPT}", kSha256}, Case{"{BLF-CRYPT}", kBcrypt2y},
        Case{"{BLF-CRYPT}", kBcrypt2b}, Case{"{BLF-CRYPT}", kBcrypt2a}, Case{"{MD5-CRYPT}", kMd5},
        Case{"{CRYPT}", kYescrypt}, Case{"{CRYPT}", kSha512}, Case{"{CRYPT}", kBcrypt2b},
        Case{"{sha512-crypt}", kSha512}, Case{"{Blf-Crypt}", kBcrypt2y}}) {
    const PasswdTable table = ParseOk(absl::StrCat("u:", Av(c.prefix), Av(c.hash), "\n"));
    EXPECT_EQ(HashOf(table, "u"), c.hash) << c.prefix;
  }
}

TEST(PasswdFileTest, SchemeThatDisagreesWithTheHashIsAnError) {
  std::string error = ErrorOf(absl::StrCat("u:{SHA512-CRYPT}", Av(kYescrypt), "\n"));
  EXPECT_THAT(error, StartsWith("passwd:1: user \"u\": the scheme {SHA512-CRYPT} does not match"));
  EXPECT_THAT(error, HasSubstr("yescrypt ($y$)"));
  EXPECT_THAT(ErrorOf(absl::StrCat("u:{BLF-CRYPT}", Av(kSha512), "\n")),
              HasSubstr("the scheme {BLF-CRYPT} does not match"));
  EXPECT_THAT(ErrorOf(absl::StrCat("u:{SHA256-CRYPT}", Av(kSha512), "\n")),
              HasSubstr("does not match"));
  EXPECT_THAT(ErrorOf(absl::StrCat("u:{MD5-CRYPT}", Av(kBcrypt2b), "\n")),
              HasSubstr("does not match"));
}

TEST(PasswdFileTest, UnknownSchemesAreErrorsThatDoNotShowThePassword) {
  for (std::string_view field :
       {"{PLAIN}hunter2", "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{ARGON2ID}$argon2id$v=19$x",
        "{CRAM-MD5}abc", "{SHA512-CRYPT.b64}abc"}) {
    const std::string error = ErrorOf(absl::StrCat("# header\nbob:", Av(field), "\n"));
    EXPECT_THAT(error, StartsWith("passwd:2: user \"bob\": unsupported password scheme {"));
    EXPECT_THAT(error, Not(HasSubstr(std::string(field.substr(field.find('}') + 1)))));
  }
  EXPECT_THAT(ErrorOf("bob:{SHA512-CRYPT\n"), HasSubstr("no '}'"));
  // Something between braces that is no scheme name (a plaintext password?) is not shown.
  const std::string error = ErrorOf("bob:{my secret}pass\n");
  EXPECT_THAT(error, HasSubstr("unsupported password scheme (not a name)"));
  EXPECT_THAT(error, Not(HasSubstr("secret")));
}

TEST(PasswdFileTest, HashesCryptCannotUseAreErrors) {
  struct Case {
    std::string field;
    std::string_view expect;
  };
  const std::string sha512(kSha512);
  const std::string bcrypt(kBcrypt2b);
  const Case cases[] = {
      {"", "empty password hash"},
      {"{CRYPT}", "empty password hash"},
      {"hunter2", "not a crypt(3) hash"},
      {"abJnggxhB/yWI", "not a crypt(3) hash"},  // traditional DES
      {"_J9..CCCCXBrJUJV154M", "not a crypt(3) hash"},
      {"$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", "not a crypt(3) hash"},
      {"$2x$04$zxpsVc1IUByDLQJLx1LlQuxqtn2wUPAUVpNRnqG8LGMf/r3CcAvdC", "not a crypt(3) hash"},
      {"!" + sha512, "locked"},
      {"*", "locked"},
      {sha512.substr(0, sha512.size() - 1), "malformed sha512-crypt hash"},
      {sha512 + "x", "malformed sha512-crypt hash"},
      {"$6$saltsalt$", "malformed sha512-crypt hash"},
      {"$6$rounds=10$hbMAKv/s8RM97bY9$" + sha512.substr(20), "malformed"},
      {"$6$" + std::string(17, 'a') + "$" + std::string(86, 'b'), "malformed sha512-crypt hash"},
      {bcrypt.substr(0, 20), "malformed bcrypt hash"},
      {"$2b$99$" + bcrypt.substr(7), "malformed bcrypt hash"},
      {"$y$j75$nc4JApU0.RPzyse9ofawS1$", "malformed yescrypt hash"},
      {"$y$j75$nc4J$pU0$clCrPspjr/o/zK4HiNIgoHPwkz5gCrV3SvpRpBsa7LB", "malformed yescrypt hash"},
      {std::string(kYescrypt) + "$", "malformed yescrypt hash"},
      {"$1$OshZQzUA$TlUaBoFQHKE.jTDeuW5g3", "malformed md5-crypt hash"},
  };
  for (const Case& c : cases) {
    const std::string error = ErrorOf(absl::StrCat("alice:", c.field, ":1000\n"));
    EXPECT_THAT(error, StartsWith("passwd:1: user \"alice\": ")) << c.field;
    EXPECT_THAT(error, HasSubstr(c.expect)) << c.field;
    // The hash (or what stands in its place) never reaches the message.
    if (c.field.size() > 8) {
      EXPECT_THAT(error, Not(HasSubstr(c.field.substr(4)))) << c.field;
    }
  }
}

TEST(PasswdFileTest, LineErrorsNameTheLine) {
  const std::string good = absl::StrCat("alice:", Av(kYescrypt), "\n");
  EXPECT_EQ(ErrorOf(absl::StrCat("# c\n", good, "\nno colon here\n")),
            "passwd:4: expected \"user:hash\", found no ':'");
  EXPECT_EQ(ErrorOf(absl::StrCat(good, ":", Av(kSha512), "\n")),
            "passwd:2: empty user name before ':'");
  EXPECT_THAT(ErrorOf(absl::StrCat("al ice:", Av(kSha512), "\n")),
              StartsWith("passwd:1: user name \"al ice\" holds a blank or control octet"));
  EXPECT_THAT(ErrorOf(absl::StrCat(std::string("a\0b", 3), ":", Av(kSha512), "\n")),
              StartsWith("passwd:1: user name \"a\\x00\\x62\" holds a blank or control octet"));
  EXPECT_THAT(ErrorOf(absl::StrCat(std::string(1025, 'u'), ":", Av(kSha512), "\n")),
              StartsWith("passwd:1: user name longer than 1024 octets"));
}

TEST(PasswdFileTest, DuplicateUsersAreErrors) {
  EXPECT_EQ(ErrorOf(absl::StrCat("alice:", Av(kYescrypt), "\n# x\nbob:", Av(kSha512),
                                 "\nalice:", Av(kBcrypt2b), "\n")),
            "passwd:4: user \"alice\" is already defined on line 1");
}

TEST(PasswdFileTest, DummyHashIsOfTheMostCommonMethod) {
  EXPECT_EQ(ParseOk(absl::StrCat("a:", Av(kSha512), "\nb:", Av(kYescrypt), "\nc:{CRYPT}",
                                 Av(kGostYescrypt), "\nd:", Av(kYescrypt), "\n"))
                .dummy_hash(),
            kYescrypt);
  // A tie goes to the method seen first.
  EXPECT_EQ(ParseOk(absl::StrCat("a:", Av(kBcrypt2b), "\nb:", Av(kSha512), "\n")).dummy_hash(),
            kBcrypt2b);
}

TEST(PasswdFileTest, LoadsAFile) {
  testing::TempDir dir;
  const std::string path = dir / "passwd";
  std::ofstream(path) << "alice:{SHA512-CRYPT}" << kSha512 << "::::::\n";
  absl::StatusOr<std::shared_ptr<const PasswdTable>> table = LoadPasswdFile(path);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(HashOf(**table, "alice"), kSha512);
}

TEST(PasswdFileTest, MissingFileIsNotFound) {
  testing::TempDir dir;
  absl::StatusOr<std::shared_ptr<const PasswdTable>> table = LoadPasswdFile(dir / "nope");
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(Sv(table.status().message())), HasSubstr(dir / "nope"));
}

TEST(PasswdFileTest, LoadAuthPasswdIsNullWithoutAFile) {
  absl::StatusOr<std::shared_ptr<const PasswdTable>> table = LoadAuthPasswd(AuthConfig{});
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(*table, nullptr);
}

TEST(PasswdFileTest, LoadAuthPasswdErrorsNameTheKeyTheFileAndTheLine) {
  testing::TempDir dir;
  AuthConfig auth;
  auth.passwd = dir / "passwd";
  std::ofstream(auth.passwd) << "# users\nalice:{PLAIN}hunter2\n";
  absl::StatusOr<std::shared_ptr<const PasswdTable>> table = LoadAuthPasswd(auth);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(Sv(table.status().message()));
  EXPECT_THAT(message, StartsWith(absl::StrCat("auth.passwd: ", auth.passwd,
                                               ":2: user \"alice\": "
                                               "unsupported")));
  EXPECT_THAT(message, Not(HasSubstr("hunter2")));

  auth.passwd = dir / "missing";
  table = LoadAuthPasswd(auth);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(Sv(table.status().message())), StartsWith("auth.passwd: "));
}

}  // namespace
}  // namespace ringmx::core

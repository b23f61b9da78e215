// core/recipient_table.h: the valid local recipients file, parsed from text and read from disk.
#include "core/recipient_table.h"

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

using Lookup = RecipientTable::Lookup;
using ::testing::ElementsAre;
using ::testing::Field;

RecipientTable MustParse(std::string_view text) {
  absl::StatusOr<RecipientTable> table = RecipientTable::Parse(text, "recipients");
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() ? *std::move(table) : RecipientTable();
}

std::string ErrorOf(std::string_view text) {
  return test_util::ErrorMessage(RecipientTable::Parse(text, "recipients"), text);
}

TEST(RecipientTableTest, ListedAddressesCatchAllsAndUnlistedDomains) {
  const RecipientTable table = MustParse(
      "# valid users of example.org\n"
      "alice@example.org\n"
      "  Bob@Example.ORG.   # trailing comment\n"
      "\n"
      "\t\n"
      "@example.net\n"
      "carol@example.net\r\n"
      "dave+tag@example.org");  // no final newline
  EXPECT_EQ(table.Find("alice", "example.org"), Lookup::kListed);
  EXPECT_EQ(table.Find("ALICE", "EXAMPLE.org."), Lookup::kListed);
  EXPECT_EQ(table.Find("bob", "example.org"), Lookup::kListed);
  EXPECT_EQ(table.Find("dave+tag", "example.org"), Lookup::kListed);
  EXPECT_EQ(table.Find("dave", "example.org"), Lookup::kUnknown);
  EXPECT_EQ(table.Find("mallory", "example.org"), Lookup::kUnknown);
  EXPECT_EQ(table.Find("", "example.org"), Lookup::kUnknown);
  EXPECT_EQ(table.Find(std::string(65, 'a'), "example.org"), Lookup::kUnknown);
  EXPECT_EQ(table.Find("anyone", "example.net"), Lookup::kListed);
  EXPECT_EQ(table.Find("anyone", "example.test"), Lookup::kNoList);
  EXPECT_EQ(table.Find("alice", "sub.example.org"), Lookup::kNoList);
  EXPECT_EQ(table.Find("alice", ""), Lookup::kNoList);
  EXPECT_EQ(table.Find("alice", std::string(300, 'a')), Lookup::kNoList);
  EXPECT_EQ(table.address_count(), 4u);
  EXPECT_THAT(table.Domains(),
              ElementsAre(Field(&RecipientTable::DomainLine::domain, "example.org"),
                          Field(&RecipientTable::DomainLine::domain, "example.net")));
  EXPECT_EQ(table.Domains()[1].line, 6u);
}

TEST(RecipientTableTest, EmptyAndCommentOnlyFilesListNothing) {
  for (std::string_view text : {"", "\n\n", "# nothing yet\n   # still nothing\n"}) {
    const RecipientTable table = MustParse(text);
    EXPECT_EQ(table.Find("anyone", "example.org"), Lookup::kNoList);
    EXPECT_TRUE(table.Domains().empty());
  }
}

TEST(RecipientTableTest, QuotedAndUtf8LocalPartsAreKeptAsWritten) {
  const RecipientTable table = MustParse("\"a@b\"@example.org\nj\xc3\xb6rg@example.org\n");
  EXPECT_EQ(table.Find("\"a@b\"", "example.org"), Lookup::kListed);
  EXPECT_EQ(table.Find("j\xc3\xb6rg", "example.org"), Lookup::kListed);
  EXPECT_EQ(table.Find("J\xc3\xb6RG", "example.org"), Lookup::kListed);  // ASCII case only
}

TEST(RecipientTableTest, RepeatsAreAllowed) {
  const RecipientTable table = MustParse("a@example.org\nA@example.org\n@x.test\n@x.test\n");
  EXPECT_EQ(table.address_count(), 1u);
  EXPECT_EQ(table.Find("a", "example.org"), Lookup::kListed);
}

TEST(RecipientTableErrorTest, ErrorsNameTheLine) {
  EXPECT_EQ(ErrorOf("alice@example.org\n\njohn\n"),
            "recipients:3: expected \"user@domain\" or \"@domain\", got \"john\"");
  EXPECT_EQ(ErrorOf("# header\nalice@example.org bob@example.org\n"),
            "recipients:2: one address a line; unexpected \"bob@example.org\" after "
            "\"alice@example.org\"");
  EXPECT_EQ(ErrorOf("alice@\n"),
            "recipients:1: expected a domain name after '@', got \"\" in "
            "\"alice@\"");
  EXPECT_EQ(ErrorOf("alice@[192.0.2.1]\n"),
            "recipients:1: expected a domain name after '@', got \"[192.0.2.1]\" in "
            "\"alice@[192.0.2.1]\"");
  EXPECT_EQ(ErrorOf("alice@exa_mple.org\n"),
            "recipients:1: expected a domain name after '@', got \"exa_mple.org\" in "
            "\"alice@exa_mple.org\"");
  EXPECT_EQ(ErrorOf("<alice@example.org>\n"),
            "recipients:1: write the address without angle brackets: \"<alice@example.org>\"");
  EXPECT_EQ(ErrorOf(absl::StrCat("\n", std::string(65, 'a'), "@example.org\n")),
            absl::StrCat("recipients:2: local part has 65 octets, at most 64 are allowed (RFC "
                         "5321): \"",
                         std::string(65, 'a').substr(0, 100), "@example.org\""));
  EXPECT_EQ(ErrorOf("a\x01@example.org\n"),
            "recipients:1: control character in the local part: \"a\\x01@example.org\"");
  EXPECT_EQ(ErrorOf(std::string("a@example.org\nb\0@example.org\n", 29)),
            "recipients:2: NUL character");
}

TEST(RecipientTableFileTest, LoadFileReadsAndNamesTheFile) {
  testing::TempDir dir;
  const std::string path = dir / "recipients";
  std::ofstream(path) << "alice@example.org\n";
  absl::StatusOr<std::shared_ptr<const RecipientTable>> table = RecipientTable::LoadFile(path);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)->Find("alice", "example.org"), Lookup::kListed);

  std::ofstream(path) << "alice@example.org\nbroken\n";
  table = RecipientTable::LoadFile(path);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(table.status().message(),
            absl::StrCat(path, ":2: expected \"user@domain\" or \"@domain\", got \"broken\""));

  table = RecipientTable::LoadFile(dir / "missing");
  EXPECT_EQ(table.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(
      std::string(Sv(table.status().message())),
      ::testing::StartsWith(absl::StrCat("read recipients file \"", dir / "missing", "\": ")));
}

}  // namespace
}  // namespace ringmx::core

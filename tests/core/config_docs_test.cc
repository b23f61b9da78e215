// The configuration reference (docs/configuration.md) and the shipped config files, checked against
// the loader's schema (core::ConfigSchemaKeys): every key the loader accepts is documented in its
// table's section, every documented key exists, and tests/core/testdata/full.toml sets them all.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

#include "core/config.h"
#include "core/strings.h"

#include <toml++/toml.h>

namespace ringmx::core {
namespace {

constexpr char kDoc[] = "docs/configuration.md";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Trim(std::string_view text) {
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

// The cells of a Markdown table row "| a | b | c |", split at '|' not escaped as "\|".
std::vector<std::string> Cells(std::string_view line) {
  std::vector<std::string> cells;
  std::string cell;
  for (size_t i = 1; i < line.size(); ++i) {  // line[0] is the leading '|'
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') {
      cell.push_back('|');
      ++i;
    } else if (line[i] == '|') {
      cells.push_back(Trim(cell));
      cell.clear();
    } else {
      cell.push_back(line[i]);
    }
  }
  if (!Trim(cell).empty()) cells.push_back(Trim(cell));  // a row without the closing '|'
  return cells;
}

// One `| \`key\` | default | meaning |` row of the reference.
struct DocRow {
  std::string key;  // schema form: "listener.proxy_protocol", "hostname"
  std::string default_value;
  std::string meaning;
  int line = 0;
};

struct ParsedDoc {
  std::vector<DocRow> rows;
  std::vector<std::string> problems;  // headings or rows the parser could not take
};

// The schema path of a section heading: "Top level" -> "", "`[[tls.sni]]`" -> "tls.sni";
// nullopt for a heading that is not a table's section ("Reload", "Relative paths").
std::optional<std::string> SectionPath(std::string_view heading) {
  if (heading == "Top level") return std::string();
  if (heading.size() < 4 || heading.front() != '`' || heading.back() != '`') return std::nullopt;
  std::string_view inner = heading.substr(1, heading.size() - 2);
  while (!inner.empty() && inner.front() == '[') inner.remove_prefix(1);
  while (!inner.empty() && inner.back() == ']') inner.remove_suffix(1);
  return std::string(inner);
}

// Sections are "## " headings; inside a table's section, every table row whose first cell is one
// back-quoted word is a key of that table. Rows elsewhere are not keys.
ParsedDoc ParseDoc(const std::string& text) {
  ParsedDoc doc;
  std::optional<std::string> section;
  int line_number = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line = std::string_view(text).substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.starts_with("## ")) {
      section = SectionPath(Trim(line.substr(3)));
      continue;
    }
    if (!section || !line.starts_with("|")) continue;
    const std::vector<std::string> cells = Cells(line);
    if (cells.empty() || cells[0].size() < 3 || cells[0].front() != '`' || cells[0].back() != '`') {
      continue;  // the header row, the separator row
    }
    const std::string key = cells[0].substr(1, cells[0].size() - 2);
    if (key.find_first_of("` .[]") != std::string::npos) {
      doc.problems.push_back(
          absl::StrCat(kDoc, ":", line_number, ": ", key,
                       ": write the key alone, as the table's section holds it"));
      continue;
    }
    DocRow row;
    row.key = section->empty() ? key : absl::StrCat(*section, ".", key);
    row.default_value = cells.size() > 1 ? cells[1] : "";
    row.meaning = cells.size() > 2 ? cells[2] : "";
    row.line = line_number;
    if (cells.size() != 3) {
      doc.problems.push_back(absl::StrCat(kDoc, ":", line_number, ": ", row.key, ": expected 3 ",
                                          "columns (key, default, meaning), got ", cells.size()));
    }
    doc.rows.push_back(std::move(row));
  }
  return doc;
}

class ConfigDocsTest : public testing::Test {
 protected:
  void SetUp() override {
    text_ = ReadFile(RINGMX_SOURCE_DIR "/docs/configuration.md");
    ASSERT_FALSE(text_.empty()) << "cannot read " << RINGMX_SOURCE_DIR "/docs/configuration.md";
    doc_ = ParseDoc(text_);
    const std::vector<std::string> keys = ConfigSchemaKeys();
    schema_.insert(keys.begin(), keys.end());
  }

  std::string text_;
  ParsedDoc doc_;
  std::set<std::string> schema_;
};

TEST(ConfigSchemaKeysTest, LeafKeysOnlyWithIndicesDropped) {
  const std::vector<std::string> keys = ConfigSchemaKeys();
  const std::set<std::string> set(keys.begin(), keys.end());
  EXPECT_EQ(set.size(), keys.size()) << "a key is listed twice";
  for (const char* key : {"hostname", "workers", "pin_threads", "listener.proxy_protocol",
                          "tls.sni.names", "policy.tls_floor.min_tls", "milter.default_action",
                          "route.next_hop", "delivery.bounce_next_hop", "metrics.address"}) {
    EXPECT_TRUE(set.contains(key)) << key;
  }
  // Tables and arrays of tables are not leaves.
  for (const char* table : {"listener", "tls", "tls.sni", "policy", "policy.tls_floor", "route",
                            "milter", "delivery", "metrics", "limits"}) {
    EXPECT_FALSE(set.contains(table)) << table;
  }
}

TEST_F(ConfigDocsTest, ParsesTheReference) {
  EXPECT_TRUE(doc_.problems.empty()) << absl::StrJoin(doc_.problems, "\n");
  // Far fewer rows would mean the parser lost its way, not that the keys went away.
  EXPECT_GE(doc_.rows.size(), schema_.size());
}

TEST_F(ConfigDocsTest, EverySchemaKeyIsDocumentedInItsSection) {
  std::set<std::string> documented;
  for (const DocRow& row : doc_.rows) documented.insert(row.key);
  for (const std::string& key : schema_) {
    const size_t dot = key.rfind('.');
    const std::string section = dot == std::string::npos
                                    ? "## Top level"
                                    : absl::StrCat("the section of [", key.substr(0, dot), "]");
    EXPECT_TRUE(documented.contains(key))
        << "config key \"" << key << "\" is accepted by core/config.cc but not documented: add a "
        << "row \"| `" << (dot == std::string::npos ? key : key.substr(dot + 1))
        << "` | DEFAULT | MEANING |\" to " << section << " in " << kDoc;
  }
}

TEST_F(ConfigDocsTest, EveryDocumentedKeyExistsOnce) {
  std::map<std::string, int> seen;
  for (const DocRow& row : doc_.rows) {
    EXPECT_TRUE(schema_.contains(row.key))
        << kDoc << ":" << row.line << ": documents \"" << row.key
        << "\", which core/config.cc does not accept (a typo, a key in the wrong section, or a "
           "key that was removed): fix or remove the row in "
        << kDoc;
    if (auto [it, inserted] = seen.emplace(row.key, row.line); !inserted) {
      ADD_FAILURE() << kDoc << ":" << row.line << ": \"" << row.key
                    << "\" is documented twice (also line " << it->second << "); keep one row in "
                    << kDoc;
    }
  }
}

TEST_F(ConfigDocsTest, EveryRowHasADefaultAndAMeaning) {
  for (const DocRow& row : doc_.rows) {
    EXPECT_FALSE(row.default_value.empty())
        << kDoc << ":" << row.line << ": \"" << row.key
        << "\" has an empty default column: write the loader's default, or (required), or none";
    EXPECT_FALSE(row.meaning.empty()) << kDoc << ":" << row.line << ": \"" << row.key
                                      << "\" has an empty meaning column in " << kDoc;
  }
}

TEST(ConfigDocsParserTest, FindsSectionsRowsAndProblems) {
  // The checks above are only as good as the parser: it must see these rows under their sections
  // and skip everything else.
  const ParsedDoc doc = ParseDoc(
      "# Title\n"
      "| `stray` | x | a row before any section is not a key |\n"
      "## Top level\n"
      "| key | default | meaning |\n"
      "|---|---|---|\n"
      "| `hostname` | (required) | the name |\n"
      "## `[[tls.sni]]`\n"
      "| `names` | (required) | a \\| b |\n"
      "| `cert` |  | no default |\n"
      "## Reload\n"
      "| `tls.cert` | yes | not a key table |\n"
      "## `[policy]`\n"
      "| `policy.max_recipients` | 100 | written with its section |\n");
  ASSERT_EQ(doc.rows.size(), 3u);
  EXPECT_EQ(doc.rows[0].key, "hostname");
  EXPECT_EQ(doc.rows[0].default_value, "(required)");
  EXPECT_EQ(doc.rows[1].key, "tls.sni.names");
  EXPECT_EQ(doc.rows[1].meaning, "a | b");
  EXPECT_EQ(doc.rows[2].key, "tls.sni.cert");
  EXPECT_EQ(doc.rows[2].default_value, "");
  EXPECT_EQ(doc.rows[2].line, 9);
  ASSERT_EQ(doc.problems.size(), 1u);
  EXPECT_NE(doc.problems[0].find("policy.max_recipients"), std::string::npos) << doc.problems[0];
}

// ---------------------------------------------------------------------------------------------
// The shipped files.

// Every leaf key a TOML document sets, in schema form (array-of-tables indices dropped).
void CollectKeys(const toml::table& table, const std::string& path, std::set<std::string>& out) {
  for (const auto& [key, node] : table) {
    const std::string full =
        path.empty() ? std::string(key.str()) : absl::StrCat(path, ".", Av(key.str()));
    if (const toml::table* sub = node.as_table()) {
      CollectKeys(*sub, full, out);
      continue;
    }
    const toml::array* array = node.as_array();
    if (array != nullptr && !array->empty() && array->is_array_of_tables()) {
      for (const toml::node& element : *array) CollectKeys(*element.as_table(), full, out);
      continue;
    }
    out.insert(full);
  }
}

TEST(ConfigFilesTest, ExampleConfigLoads) {
  absl::StatusOr<Config> config = LoadConfigFile(RINGMX_SOURCE_DIR "/config/ringmx.example.toml");
  EXPECT_TRUE(config.ok()) << config.status() << " (fix config/ringmx.example.toml or the loader)";
}

TEST(ConfigFilesTest, FullTestFileLoadsAndSetsEverySchemaKey) {
  const std::string path = RINGMX_SOURCE_DIR "/tests/core/testdata/full.toml";
  absl::StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();

  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    FAIL() << path << ": " << e.description();
  }
  std::set<std::string> set;
  CollectKeys(root, "", set);
  for (const std::string& key : ConfigSchemaKeys()) {
    EXPECT_TRUE(set.contains(key))
        << "tests/core/testdata/full.toml does not set \"" << key
        << "\": it sets every key the loader accepts (to a value other than its default where "
           "the rules allow), so add it there and to the round-trip checks";
  }
  // The loader accepts the file, so it sets nothing outside the schema; a mistake in the walk
  // above would show here.
  const std::vector<std::string> keys = ConfigSchemaKeys();
  for (const std::string& key : set) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  }
}

// The keys that full.toml gained beyond DESIGN.md's sketch, read back (config_test.cc checks the
// rest of the file).
TEST(ConfigFilesTest, FullTestFileKeysBeyondTheSketch) {
  absl::StatusOr<Config> parsed =
      LoadConfigFile(RINGMX_SOURCE_DIR "/tests/core/testdata/full.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;
  EXPECT_FALSE(c.pin_threads);
  ASSERT_EQ(c.listeners.size(), 2u);
  EXPECT_EQ(c.listeners[1].milters, std::vector<std::string>({"rspamd"}));
  EXPECT_EQ(c.listeners[1].milters_skip, MiltersSkip::kBoth);
  EXPECT_EQ(c.auth.slow_after, 5);
  EXPECT_EQ(c.auth.refuse_after, 20);
  EXPECT_EQ(c.auth.failure_window, absl::Seconds(3600));
  ASSERT_EQ(c.policy.tls_floor.size(), 1u);
  EXPECT_EQ(c.policy.tls_floor[0].min_tls, "1.0");
  ASSERT_EQ(c.policy.tls_floor[0].networks.size(), 1u);
  EXPECT_EQ(c.policy.tls_floor[0].networks[0].ToString(), "192.0.2.0/24");
  ASSERT_EQ(c.milters.size(), 1u);
  EXPECT_EQ(c.milters[0].name, "rspamd");
  EXPECT_EQ(c.milters[0].AddressString(), "inet:127.0.0.1:11332");
  EXPECT_EQ(c.milters[0].connect_timeout, absl::Seconds(5));
  EXPECT_EQ(c.milters[0].command_timeout, absl::Seconds(10));
  EXPECT_EQ(c.milters[0].content_timeout, absl::Seconds(60));
  EXPECT_EQ(c.milters[0].default_action, MilterDefaultAction::kAccept);
}

}  // namespace
}  // namespace ringmx::core

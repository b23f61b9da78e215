#include "core/json.h"

#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace ringmx::core {
namespace {

std::string Json(std::string_view text) {
  std::string out;
  AppendJsonString(out, text);
  return out;
}

TEST(JsonStringTest, PlainTextIsQuoted) {
  EXPECT_EQ(Json(""), "\"\"");
  EXPECT_EQ(Json("hello world"), "\"hello world\"");
}

TEST(JsonStringTest, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(Json("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(Json("C:\\dir"), R"("C:\\dir")");
  EXPECT_EQ(Json("/"), "\"/\"");  // '/' needs no escape
}

TEST(JsonStringTest, EscapesControlCharacters) {
  EXPECT_EQ(Json("a\nb\rc\td"), R"("a\nb\rc\td")");
  EXPECT_EQ(Json(std::string_view("\0", 1)), R"("\u0000")");
  EXPECT_EQ(Json("\x01\x1f"), R"("\u0001\u001f")");
  EXPECT_EQ(Json("\x08\x0c"), R"("\u0008\u000c")");
  EXPECT_EQ(Json("\x7f"), R"("\u007f")");
  EXPECT_EQ(Json(" ~"), "\" ~\"");
}

TEST(JsonStringTest, ValidUtf8PassesThrough) {
  EXPECT_EQ(Json("caf\xc3\xa9"), "\"caf\xc3\xa9\"");            // U+00E9
  EXPECT_EQ(Json("\xe2\x82\xac"), "\"\xe2\x82\xac\"");          // U+20AC
  EXPECT_EQ(Json("\xf0\x9f\x93\xa7"), "\"\xf0\x9f\x93\xa7\"");  // U+1F4E7
  EXPECT_EQ(Json("\xc2\x80"), "\"\xc2\x80\"");                  // U+0080, smallest 2-byte
  EXPECT_EQ(Json("\xef\xbf\xbf"), "\"\xef\xbf\xbf\"");          // U+FFFF
  EXPECT_EQ(Json("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\"");  // U+10FFFF, the largest
  EXPECT_EQ(Json("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"");          // U+D7FF, below surrogates
}

TEST(JsonStringTest, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(Json("a\xffz"), R"("a\ufffdz")");
  EXPECT_EQ(Json("\x80"), R"("\ufffd")");                                // lone continuation byte
  EXPECT_EQ(Json("\xc3"), R"("\ufffd")");                                // truncated at the end
  EXPECT_EQ(Json("\xc3z"), R"("\ufffdz")");                              // truncated before ASCII
  EXPECT_EQ(Json("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong '/'
  EXPECT_EQ(Json("\xe0\x80\xaf"), R"("\ufffd\ufffd\ufffd")");            // overlong 3-byte
  EXPECT_EQ(Json("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // surrogate U+D800
  EXPECT_EQ(Json("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
  EXPECT_EQ(Json("\xf5\x80\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");
  // The valid sequence after a bad byte survives.
  EXPECT_EQ(Json("\xff\xc3\xa9"), "\"\\ufffd\xc3\xa9\"");
}

TEST(JsonWriterTest, FlatObject) {
  std::string out;
  JsonWriter(out)
      .BeginObject()
      .Key("id")
      .String("0123")
      .Key("size")
      .Uint(18446744073709551615u)
      .Key("delta")
      .Int(-42)
      .Key("tls")
      .Bool(true)
      .Key("auth")
      .Null()
      .EndObject();
  EXPECT_EQ(out, R"({"id":"0123","size":18446744073709551615,"delta":-42,"tls":true,"auth":null})");
}

TEST(JsonWriterTest, Nesting) {
  std::string out;
  JsonWriter w(out);
  w.BeginObject();
  w.Key("rcpt").BeginArray();
  w.BeginObject().Key("to").String("a@x").EndObject();
  w.BeginObject().Key("to").String("b@x").Key("notify").BeginArray().EndArray().EndObject();
  w.EndArray();
  w.Key("empty").BeginObject().EndObject();
  w.Key("nested").BeginArray().BeginArray().Int(1).Int(2).EndArray().BeginArray().EndArray();
  w.EndArray();
  w.Key("last").Bool(false);
  w.EndObject();
  EXPECT_EQ(out, R"({"rcpt":[{"to":"a@x"},{"to":"b@x","notify":[]}],"empty":{},)"
                 R"("nested":[[1,2],[]],"last":false})");
}

TEST(JsonWriterTest, TopLevelArray) {
  std::string out;
  JsonWriter(out).BeginArray().String("a").Int(0).Null().EndArray();
  EXPECT_EQ(out, R"(["a",0,null])");
}

TEST(JsonWriterTest, KeysAreEscaped) {
  std::string out;
  JsonWriter(out).BeginObject().Key("a\"b\n").Int(1).EndObject();
  EXPECT_EQ(out, R"({"a\"b\n":1})");
}

TEST(JsonWriterTest, AppendsToExistingText) {
  std::string out = "prefix ";
  JsonWriter(out).BeginObject().Key("k").String("v").EndObject();
  EXPECT_EQ(out, R"(prefix {"k":"v"})");
}

TEST(JsonReaderTest, ReadsEveryKindOfValue) {
  const absl::StatusOr<JsonValue> v = ParseJson(
      " {\"a\": [1, -2.5e+3, true, false, null], \"s\": "
      "\"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
      "  \"o\": {}, \"e\": [], \"a\": 7}\r\n");
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_TRUE(v->is_object());
  ASSERT_EQ(v->members().size(), 5u);  // duplicates kept
  EXPECT_EQ(v->members()[0].first, "a");
  const JsonValue& a = v->members()[0].second;
  ASSERT_TRUE(a.is_array());
  ASSERT_EQ(a.elements().size(), 5u);
  EXPECT_EQ(a.elements()[0].AsUint64(), 1u);
  EXPECT_EQ(a.elements()[1].text(), "-2.5e+3");
  EXPECT_EQ(a.elements()[1].AsInt64(), std::nullopt);
  EXPECT_TRUE(a.elements()[2].is_bool() && a.elements()[2].bool_value());
  EXPECT_TRUE(a.elements()[3].is_bool() && !a.elements()[3].bool_value());
  EXPECT_TRUE(a.elements()[4].is_null());
  EXPECT_EQ(v->Find("s")->text(), "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v->Find("o")->is_object());
  EXPECT_TRUE(v->Find("e")->is_array());
  // The last of equal names wins.
  EXPECT_EQ(v->Find("a")->AsUint64(), 7u);
  EXPECT_EQ(v->Find("missing"), nullptr);
}

TEST(JsonReaderTest, Integers) {
  EXPECT_EQ(ParseJson("18446744073709551615")->AsUint64(), UINT64_MAX);
  EXPECT_EQ(ParseJson("18446744073709551616")->AsUint64(), std::nullopt);
  EXPECT_EQ(ParseJson("-9223372036854775808")->AsInt64(), INT64_MIN);
  EXPECT_EQ(ParseJson("-1")->AsUint64(), std::nullopt);
  EXPECT_EQ(ParseJson("0")->AsInt64(), 0);
  EXPECT_EQ(ParseJson("1.0")->AsUint64(), std::nullopt);
}

TEST(JsonReaderTest, ReadsWhatTheWriterWrites) {
  std::string out;
  JsonWriter w(out);
  const std::string text("a\0b\x01\x7f\"\\\xff\xc3\xa9", 10);
  w.BeginObject().Key("k").String(text).Key("n").Int(-42).Key("l").BeginArray().Null().EndArray();
  w.EndObject();
  const absl::StatusOr<JsonValue> v = ParseJson(out);
  ASSERT_TRUE(v.ok()) << v.status() << out;
  EXPECT_EQ(v->Find("k")->text(), std::string("a\0b\x01\x7f\"\\\xef\xbf\xbd\xc3\xa9", 12));
  EXPECT_EQ(v->Find("n")->AsInt64(), -42);
  EXPECT_TRUE(v->Find("l")->elements()[0].is_null());
}

TEST(JsonReaderTest, RefusesWhatRfc8259Refuses) {
  const std::vector<std::string> bad = {
      "",
      " ",
      "{",
      "}",
      "[1,]",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "{a:1}",
      "[1 2]",
      "01",
      "-",
      "1.",
      ".5",
      "1e",
      "+1",
      "NaN",
      "tru",
      "nulll",
      "\"abc",
      "\"a\nb\"",
      "\"\\x\"",
      "\"\\u12\"",
      "\"\\ud800\"",
      "\"\\udc00\"",
      "\"\\ud800\\u0041\"",
      "\"\xff\"",
      "\"\xc3\"",
      "\"\xed\xa0\x80\"",
      "1 2",
      "{} {}",
      "[1]\x01",
      std::string("\"a\0\"", 4),
      "'a'",
  };
  for (const std::string& text : bad) EXPECT_FALSE(ParseJson(text).ok()) << text;
}

TEST(JsonReaderTest, NestingIsBounded) {
  const std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(ParseJson(ok).ok());
  const std::string deep =
      std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  EXPECT_FALSE(ParseJson(deep).ok());
  // Far deeper input fails the same way, without using the stack for it.
  EXPECT_FALSE(ParseJson(std::string(100000, '[')).ok());
}

}  // namespace
}  // namespace ringmx::core

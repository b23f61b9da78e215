// Minimal JSON for the spool envelope and the control socket: string escaping and an append-only
// object builder (output is always valid JSON: invalid UTF-8 bytes become U+FFFD), and a strict
// reader (RFC 8259) into a small tree, for reading our own envelopes back (smtp/envelope.h).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace ringmx::core {

// Appends `text` to `out` as a JSON string literal, quotes included.
void AppendJsonString(std::string& out, std::string_view text);

// Builds one JSON object or array into a string. Not a validator: the caller nests correctly.
// Shard-local or stack-local.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);  // inside an object, before a value
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

 private:
  void Separate();
  std::string& out_;
  bool need_comma_ = false;
};

// One parsed JSON value. A plain tree: a value owns its elements and members. Immutable after
// ParseJson builds it; stack-local or owned by its reader.
class JsonValue {
 public:
  enum class Type : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // kBool: the value; false otherwise.
  bool bool_value() const { return bool_; }
  // kString: the decoded string (valid UTF-8); kNumber: the number's text as written; "" else.
  const std::string& text() const { return text_; }
  // kArray: the elements in order; empty otherwise.
  const std::vector<JsonValue>& elements() const { return elements_; }
  // kObject: the members in document order, duplicates kept; empty otherwise.
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }

  // kObject: the value of the last member named `key` (the usual reading of duplicate names,
  // RFC 8259 section 4), or nullptr when there is none or this is not an object.
  const JsonValue* Find(std::string_view key) const;
  // kNumber written as a plain non-negative integer ("0", "42") that fits: its value.
  std::optional<uint64_t> AsUint64() const;
  // kNumber written as a plain integer ("-3", "42") that fits: its value.
  std::optional<int64_t> AsInt64() const;

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<JsonValue> elements_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

// Deepest nesting of arrays and objects ParseJson takes (it recurses once per level).
inline constexpr size_t kMaxJsonDepth = 64;

// Parses one JSON text (RFC 8259): a value with optional white space around it and nothing else.
// Strict: strings must be valid UTF-8 without raw control characters, \u escapes must not leave
// a lone surrogate, numbers follow the RFC's grammar. Returns InvalidArgument with the offset of
// the first error, or when arrays and objects nest deeper than kMaxJsonDepth.
absl::StatusOr<JsonValue> ParseJson(std::string_view text);

}  // namespace ringmx::core

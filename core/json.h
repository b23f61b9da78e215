// Minimal JSON writing for the spool envelope and the control socket: string escaping and an
// append-only object builder. Output is always valid JSON (invalid UTF-8 bytes become U+FFFD).
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>

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

}  // namespace ringmx::core

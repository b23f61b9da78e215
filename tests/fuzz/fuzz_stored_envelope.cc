// Fuzz target: the readers of stored envelopes (core::ParseJson, smtp::ParseStoredEnvelope) on
// arbitrary bytes, as a damaged or hand-edited `<id>.json` could be. The input is the JSON text.
//  - core::ParseJson agrees with an independent parser (nlohmann::json, strict UTF-8): whatever
//    it accepts nlohmann accepts, and whatever nlohmann accepts it accepts unless it nests deeper
//    than kMaxJsonDepth. An accepted text's strings are valid UTF-8, and the tree, written again
//    with core::JsonWriter, parses to the same tree.
//  - ParseStoredEnvelope never accepts what ParseJson refuses; when it accepts, there is one
//    rcpt_dsn entry per recipient and every DSN value is one the session's parsers take (the
//    values passed on to a next hop are well-formed RFC 3461 parameters).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmath>
#include <string>
#include <string_view>
#include <variant>

#include "core/check.h"
#include "core/json.h"
#include "smtp/dsn_params.h"
#include "smtp/envelope.h"
#include "tests/fuzz/fuzz_input.h"

#include <nlohmann/json.hpp>

namespace ringmx::fuzz {
namespace {

void Write(core::JsonWriter& w, const core::JsonValue& v) {
  switch (v.type()) {
    case core::JsonValue::Type::kNull:
      w.Null();
      break;
    case core::JsonValue::Type::kBool:
      w.Bool(v.bool_value());
      break;
    case core::JsonValue::Type::kNumber:
      // The writer has no raw number; a string keeps the text for the comparison below.
      w.String(v.text());
      break;
    case core::JsonValue::Type::kString:
      RINGMX_CHECK(ReferenceIsUtf8(v.text()));
      w.String(v.text());
      break;
    case core::JsonValue::Type::kArray:
      w.BeginArray();
      for (const core::JsonValue& e : v.elements()) Write(w, e);
      w.EndArray();
      break;
    case core::JsonValue::Type::kObject:
      w.BeginObject();
      for (const auto& [key, value] : v.members()) {
        RINGMX_CHECK(ReferenceIsUtf8(key));
        w.Key(key);
        Write(w, value);
      }
      w.EndObject();
      break;
  }
}

// Same shape and texts; `b` was written from `a` with numbers turned into strings.
bool SameTree(const core::JsonValue& a, const core::JsonValue& b) {
  if (a.is_number()) return b.is_string() && a.text() == b.text();
  if (a.type() != b.type() || a.bool_value() != b.bool_value() || a.text() != b.text()) {
    return false;
  }
  if (a.elements().size() != b.elements().size()) return false;
  for (size_t i = 0; i < a.elements().size(); ++i) {
    if (!SameTree(a.elements()[i], b.elements()[i])) return false;
  }
  if (a.members().size() != b.members().size()) return false;
  for (size_t i = 0; i < a.members().size(); ++i) {
    if (a.members()[i].first != b.members()[i].first) return false;
    if (!SameTree(a.members()[i].second, b.members()[i].second)) return false;
  }
  return true;
}

bool HasHugeNumber(const core::JsonValue& v) {
  if (v.is_number()) return std::isinf(std::strtod(v.text().c_str(), nullptr));
  for (const core::JsonValue& e : v.elements()) {
    if (HasHugeNumber(e)) return true;
  }
  for (const auto& [key, value] : v.members()) {
    if (HasHugeNumber(value)) return true;
  }
  return false;
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;
  using namespace ringmx::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const absl::StatusOr<core::JsonValue> ours = core::ParseJson(text);
  const nlohmann::json theirs = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (ours.ok()) {
    // nlohmann also refuses a number a double cannot hold ("1e400"); RFC 8259 section 9 lets a
    // parser limit the range of numbers, ours keeps their text and does not.
    RINGMX_CHECK(!theirs.is_discarded() || HasHugeNumber(*ours));
    std::string again;
    core::JsonWriter w(again);
    Write(w, *ours);
    RINGMX_CHECK(!nlohmann::json::parse(again, nullptr, false).is_discarded());
    const absl::StatusOr<core::JsonValue> reread = core::ParseJson(again);
    RINGMX_CHECK(reread.ok() && SameTree(*ours, *reread));
  } else if (!theirs.is_discarded() && text.substr(0, 3) != "\xEF\xBB\xBF" &&
             text.find('\0') == std::string_view::npos) {
    // (nlohmann skips a leading byte order mark, which RFC 8259 section 8.1 lets a reader do;
    // ours refuses it: we never write one. nlohmann also stops reading at a NUL byte and judges
    // only what came before it, so " 1\0junk" is a valid "1" to it; ours reads every byte.)
    RINGMX_CHECK(ours.status().message().find("nested too deeply") != absl::string_view::npos);
  }

  const absl::StatusOr<smtp::StoredEnvelope> env = smtp::ParseStoredEnvelope(text);
  if (!env.ok()) return 0;
  RINGMX_CHECK(ours.ok());
  RINGMX_CHECK(env->rcpt_dsn.size() == env->rcpt_to.size());
  if (!env->envid.empty()) {
    RINGMX_CHECK(
        std::holds_alternative<std::string>(smtp::ParseEnvid(smtp::EncodeXtext(env->envid))));
  }
  for (const smtp::DsnRcptParams& p : env->rcpt_dsn) {
    if (p.notify.given) {
      const auto notify = smtp::ParseNotify(p.notify.ToParameterValue());
      RINGMX_CHECK(std::holds_alternative<smtp::DsnNotify>(notify) &&
                   std::get<smtp::DsnNotify>(notify) == p.notify);
    }
    if (p.orcpt) {
      const auto orcpt = smtp::ParseOrcpt(p.orcpt->ToParameterValue());
      RINGMX_CHECK(std::holds_alternative<smtp::DsnOrcpt>(orcpt) &&
                   std::get<smtp::DsnOrcpt>(orcpt) == *p.orcpt);
    }
  }
  return 0;
}

#include "core/json_text.h"

#include <string_view>

#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

bool IsScalar(const JsonValue& v) { return !v.is_array() && !v.is_object(); }

std::string Scalar(const JsonValue& v) {
  switch (v.type()) {
    case JsonValue::Type::kNull:
      return "null";
    case JsonValue::Type::kBool:
      return v.bool_value() ? "true" : "false";
    default:
      return v.text();
  }
}

bool AllScalars(const JsonValue& array) {
  for (const JsonValue& e : array.elements()) {
    if (!IsScalar(e)) return false;
  }
  return true;
}

void Members(std::string& out, const JsonValue& object, const std::string& indent,
             std::string_view first_prefix);

// The lines of `value` under `key` ("" for an array item's nested object).
void Member(std::string& out, const std::string& key, const JsonValue& value,
            const std::string& indent, std::string_view prefix) {
  absl::StrAppend(&out, Av(prefix), key, ":");
  if (IsScalar(value)) {
    absl::StrAppend(&out, " ", Scalar(value), "\n");
  } else if (value.is_object()) {
    if (value.members().empty()) {
      out += " -\n";
    } else {
      out += "\n";
      Members(out, value, indent + "  ", indent + "  ");
    }
  } else if (value.elements().empty()) {
    out += " -\n";
  } else if (AllScalars(value)) {
    out += " ";
    for (size_t i = 0; i < value.elements().size(); ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ", ", Scalar(value.elements()[i]));
    }
    out += "\n";
  } else {
    out += "\n";
    for (const JsonValue& e : value.elements()) {
      if (e.is_object() && !e.members().empty()) {
        Members(out, e, indent + "    ", indent + "  - ");
      } else if (e.is_array()) {
        Member(out, "-", e, indent + "  ", indent + "  ");
      } else {
        absl::StrAppend(&out, indent, "  - ", IsScalar(e) ? Scalar(e) : "-", "\n");
      }
    }
  }
}

// Each member of `object` at `indent`; the first line starts with `first_prefix` instead (the
// "- " of an array item).
void Members(std::string& out, const JsonValue& object, const std::string& indent,
             std::string_view first_prefix) {
  bool first = true;
  for (const auto& [key, value] : object.members()) {
    Member(out, key, value, indent, first ? first_prefix : std::string_view(indent));
    first = false;
  }
}

}  // namespace

std::string JsonToText(const JsonValue& value) {
  std::string out;
  if (value.is_object()) {
    Members(out, value, "", "");
  } else if (value.is_array()) {
    for (const JsonValue& e : value.elements()) {
      if (e.is_object() && !e.members().empty()) {
        Members(out, e, "  ", "- ");
      } else {
        absl::StrAppend(&out, "- ", IsScalar(e) ? Scalar(e) : "-", "\n");
      }
    }
  } else {
    absl::StrAppend(&out, Scalar(value), "\n");
  }
  return out;
}

}  // namespace ringmx::core

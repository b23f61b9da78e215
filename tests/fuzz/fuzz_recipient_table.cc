// Fuzz target: the valid local recipients file (core/recipient_table.h), `[policy] recipients`.
// Input: the file's text as is. The parser must never crash; an error must name a line that
// exists; a table it accepts must find every address it was given, in any ASCII case, and must
// answer kNoList for a domain it was never given.
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

#include "core/check.h"
#include "core/recipient_table.h"
#include "core/strings.h"

namespace ringmx::fuzz {
namespace {

using Lookup = core::RecipientTable::Lookup;

std::string Upper(std::string_view s) { return absl::AsciiStrToUpper(core::Av(s)); }

void CheckAccepted(std::string_view text, const core::RecipientTable& table) {
  // Every line's address, cut out independently of the parser: the first token of a line that is
  // neither blank nor a comment.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') continue;
    line.remove_prefix(first);
    const std::string_view address = line.substr(0, line.find_first_of(" \t\r"));
    const size_t at = address.rfind('@');
    RINGMX_CHECK(at != std::string_view::npos);
    const std::string_view local = address.substr(0, at);
    const std::string_view domain = address.substr(at + 1);
    RINGMX_CHECK(table.Find(local.empty() ? "anyone" : local, domain) == Lookup::kListed);
    RINGMX_CHECK(table.Find(local.empty() ? "ANYONE" : Upper(local), Upper(domain)) ==
                 Lookup::kListed);
  }
  // A domain the file does not name (in any case: names are case-insensitive) is never listed.
  RINGMX_CHECK(table.Find("x", "never.invalid-fuzz") == Lookup::kNoList ||
               absl::AsciiStrToLower(core::Av(text)).find("invalid-fuzz") != std::string::npos);
  const auto domains = table.Domains();
  RINGMX_CHECK(std::is_sorted(domains.begin(), domains.end(),
                              [](const auto& a, const auto& b) { return a.line < b.line; }));
}

void CheckRejected(std::string_view text, std::string_view message) {
  // "recipients:<line>: ..." with a line of the file.
  constexpr std::string_view kPrefix = "recipients:";
  RINGMX_CHECK(message.substr(0, kPrefix.size()) == kPrefix);
  message.remove_prefix(kPrefix.size());
  const size_t colon = message.find(':');
  RINGMX_CHECK(colon != std::string_view::npos);
  uint32_t line = 0;
  RINGMX_CHECK(absl::SimpleAtoi(core::Av(message.substr(0, colon)), &line));
  const size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  RINGMX_CHECK(line >= 1 && line <= lines);
  // One line of text.
  RINGMX_CHECK(message.find('\n') == std::string_view::npos);
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ringmx::core::RecipientTable> table =
      ringmx::core::RecipientTable::Parse(text, "recipients");
  if (table.ok()) {
    ringmx::fuzz::CheckAccepted(text, *table);
  } else {
    ringmx::fuzz::CheckRejected(text, ringmx::core::Sv(table.status().message()));
  }
  return 0;
}

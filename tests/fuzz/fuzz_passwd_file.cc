// Fuzz target: the passwd-file parser (core/passwd_file.h). Any text must give either a table in
// which every entry line's user is found with the hash of its line (scheme prefix removed), or one
// error message "passwd:<line>: ..." on one line that quotes no hash; never a crash, and the same
// answer for the same text.
//
// Input: the file's text as is (real passwd files are seeds as they are).
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"

#include "core/check.h"
#include "core/passwd_file.h"
#include "core/strings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;  // NOLINT: a fuzz entry point, not a header
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<core::PasswdTable> table = core::PasswdTable::Parse(text, "passwd");
  const absl::StatusOr<core::PasswdTable> again = core::PasswdTable::Parse(text, "passwd");
  RINGMX_CHECK(table.ok() == again.ok());
  if (!table.ok()) {
    RINGMX_CHECK(table.status() == again.status());
    RINGMX_CHECK(table.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string_view message = core::Sv(table.status().message());
    RINGMX_CHECK(message.starts_with("passwd:"));
    RINGMX_CHECK(message.find('\n') == std::string_view::npos);
    return 0;
  }
  RINGMX_CHECK(table->empty() == table->dummy_hash().empty());
  RINGMX_CHECK(table->size() == again->size());
  size_t entries = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    const std::string_view stripped = core::Sv(absl::StripLeadingAsciiWhitespace(core::Av(line)));
    if (stripped.empty() || stripped[0] == '#') continue;
    ++entries;
    const size_t colon = line.find(':');
    RINGMX_CHECK(colon != std::string_view::npos && colon > 0);
    const std::string* hash = table->Find(line.substr(0, colon));
    RINGMX_CHECK(hash != nullptr && !hash->empty() && (*hash)[0] == '$');
    std::string_view field = line.substr(colon + 1);
    field = field.substr(0, field.find(':'));
    RINGMX_CHECK(field.ends_with(*hash));
  }
  RINGMX_CHECK(entries == table->size());
  return 0;
}

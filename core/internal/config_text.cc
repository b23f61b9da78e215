#include "core/internal/config_text.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/ascii.h"

#include "core/strings.h"

namespace ringmx::core::internal {

size_t EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  const size_t m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  const auto eq = [](char x, char y) { return absl::ascii_tolower(x) == absl::ascii_tolower(y); };
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = eq(a[i - 1], b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && eq(a[i - 1], b[j - 2]) && eq(a[i - 2], b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

bool IsDomainName(std::string_view name, size_t min_labels) {
  if (name.empty() || name.size() > 253) return false;
  size_t labels = 0;
  bool last_label_numeric = false;
  size_t start = 0;
  while (true) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    last_label_numeric = true;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) last_label_numeric = false;
    }
    ++labels;
    if (end == name.size()) break;
    start = end + 1;
  }
  return labels >= min_labels && !last_label_numeric;
}

std::string CanonicalDomain(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return absl::AsciiStrToLower(Av(name));
}

std::string ResolvePath(std::string_view base_dir, std::string_view path) {
  if (base_dir.empty() || path.empty() || path.front() == '/') return std::string(path);
  return (std::filesystem::path(base_dir) / std::filesystem::path(path))
      .lexically_normal()
      .string();
}

}  // namespace ringmx::core::internal

#include "core/route_table.h"

#include <utility>

#include "absl/strings/ascii.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

// Longer than any domain name (RFC 1035: 253 characters without the trailing dot): a longer
// input matches no name, only the default route.
constexpr size_t kMaxDomain = 255;

}  // namespace

RouteTable::RouteTable(std::vector<RouteConfig> routes) : routes_(std::move(routes)) {
  for (size_t i = 0; i < routes_.size(); ++i) {
    for (const std::string& domain : routes_[i].domains) {
      if (domain == "*") {
        if (default_ == kNoDefault) default_ = i;
      } else if (domain.starts_with("*.")) {
        wildcard_.try_emplace(absl::AsciiStrToLower(domain.substr(2)), i);
      } else {
        exact_.try_emplace(absl::AsciiStrToLower(domain), i);
      }
    }
  }
}

const RouteConfig* RouteTable::Lookup(std::string_view domain) const {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty() || domain.size() > kMaxDomain) return Default();
  // Lower-cased on the stack, so that the maps' string_view lookups allocate nothing.
  char lower[kMaxDomain];
  const std::string_view name = AsciiLowerInto(domain, lower);
  if (auto it = exact_.find(Av(name)); it != exact_.end()) return &routes_[it->second];
  // Each suffix after a dot, longest first: "b.example.test", "example.test", "test".
  for (size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
    if (auto it = wildcard_.find(Av(name.substr(dot + 1))); it != wildcard_.end()) {
      return &routes_[it->second];
    }
  }
  return Default();
}

}  // namespace ringmx::core

// The route table (docs/delivery.md): recipient domain -> [[route]], built from a validated
// Config into the Snapshot. Pure: no I/O, no clock.
#pragma once

#include <stddef.h>

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

#include "core/config.h"

namespace ringmx::core {

// Immutable once built; safe to share (it lives in the Snapshot).
class RouteTable {
 public:
  RouteTable() = default;  // no routes: Lookup() finds nothing
  // `routes` as the loader validated them (lower-case domains, each listed once, at most one
  // "*"). Should a domain repeat anyway, its first route wins.
  explicit RouteTable(std::vector<RouteConfig> routes);

  // The route for a recipient domain, or nullptr. The most specific entry wins: the exact name,
  // else the longest "*.suffix" wildcard (for "a.b.example.test": "*.b.example.test" before
  // "*.example.test" before "*.test"), else the default route ("*"). ASCII case-insensitive; one
  // trailing dot is ignored. Allocates nothing. The pointer lives as long as the table.
  const RouteConfig* Lookup(std::string_view domain) const;

  const std::vector<RouteConfig>& routes() const { return routes_; }
  bool empty() const { return routes_.empty(); }

 private:
  std::vector<RouteConfig> routes_;
  // Exact names, and wildcards keyed by their suffix without "*." ("example.test" for
  // "*.example.test"); values index `routes_`.
  absl::flat_hash_map<std::string, size_t> exact_;
  absl::flat_hash_map<std::string, size_t> wildcard_;
  // Index of the route that lists "*", or kNoDefault. An index, not a pointer, so that copies
  // stay right.
  static constexpr size_t kNoDefault = static_cast<size_t>(-1);
  size_t default_ = kNoDefault;

  const RouteConfig* Default() const {
    return default_ == kNoDefault ? nullptr : &routes_[default_];
  }
};

}  // namespace ringmx::core

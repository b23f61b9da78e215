// Helpers for strings whose heap use must stay under a hard bound (message bodies, input held
// during a delivery). Private to smtp/.
#pragma once

#include <stddef.h>

#include <algorithm>
#include <string>

namespace ringmx::smtp::internal {

// Heap bytes owned by `s`: its capacity, or 0 while it fits in the inline (SSO) buffer.
inline size_t HeapBytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() : 0;
}

// Makes room for `s.size() + extra` bytes, growing geometrically (at least to `floor`) but never
// past `limit`. The caller guarantees s.size() + extra <= limit. std::string::reserve() alone is
// not enough: libstdc++ rounds a request below twice the current capacity up to twice it, which
// could pass the limit, so such a request is met with a fresh allocation of exactly the target.
inline void GrowWithin(std::string& s, size_t extra, size_t limit, size_t floor = 4096) {
  const size_t need = s.size() + extra;
  if (need <= s.capacity()) return;
  const size_t target = std::min(std::max({need, 2 * s.capacity(), floor}), limit);
  if (target >= 2 * s.capacity()) {
    s.reserve(target);
    return;
  }
  std::string fresh;
  if (target < 2 * fresh.capacity()) {
    // The same rounding applies to an empty string's inline capacity: reserve() would give twice
    // it (30 octets), past a limit below that. A string constructed at a size is allocated exactly.
    fresh = std::string(target, '\0');
    fresh.clear();
  } else {
    fresh.reserve(target);
  }
  fresh.append(s);
  s.swap(fresh);
}

}  // namespace ringmx::smtp::internal

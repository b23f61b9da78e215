// Text checks used by the config loader (core/config.cc): domain-name syntax, the edit distance
// behind "did you mean" hints, and path resolution. Private to core/: other modules do not
// include this file.
#pragma once

#include <stddef.h>

#include <string>
#include <string_view>

namespace ringmx::core::internal {

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), ASCII
// case-insensitive: "listner" -> "listener" and "hostnmae" -> "hostname" are both 1.
size_t EditDistance(std::string_view a, std::string_view b);

// True if `name` follows the RFC 1035 section 2.3.1 preferred name syntax that RFC 5321 section
// 2.3.5 asks of names in SMTP: labels of 1-63 letters, digits and hyphens, not starting or ending
// with a hyphen, 253 characters in all, at least `min_labels` labels. An all-numeric last label
// is refused so that an IP address is not taken for a name. No trailing dot.
bool IsDomainName(std::string_view name, size_t min_labels);

// `name` without one trailing dot ("example.com." names the same domain), lower-cased.
std::string CanonicalDomain(std::string_view name);

// `path` joined to `base_dir` and lexically normalised; returned unchanged if either is empty or
// `path` is absolute. Touches no file.
std::string ResolvePath(std::string_view base_dir, std::string_view path);

}  // namespace ringmx::core::internal

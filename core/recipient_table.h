// The valid local recipients of `[policy] recipients = "FILE"` (docs/policy.md): one address
// ("user@example.test") or catch-all ("@example.test") a line, `#` comments and blank lines
// allowed, case-insensitive. Parsed here (pure: Parse takes text), loaded by net/ when it builds
// the run-time Snapshot (core/snapshot.h), read by policy/ at RCPT.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace ringmx::core {

// Immutable once built; safe to share.
class RecipientTable {
 public:
  enum class Lookup : uint8_t {
    kNoList,   // the file has no line for the domain: any user of it is valid
    kListed,   // the address is listed, or the domain has an "@domain" catch-all line
    kUnknown,  // the domain has lines, none of which matches: 550 5.1.1
  };

  // A domain of the file and the line it first appears on (for warnings).
  struct DomainLine {
    std::string domain;
    uint32_t line = 0;
  };

  // RFC 5321 section 4.5.3.1.1: 64 octets of local part.
  static constexpr size_t kMaxLocalPartBytes = 64;

  // Parses the file's text. `source` names it in errors, which are kInvalidArgument with one
  // message "<source>:<line>: <what>", e.g.
  //   recipients:7: expected "user@domain" or "@domain", got "john"
  // A line is blank, a comment (first non-blank character `#`), or one address optionally followed
  // by blanks and a `#` comment. An address is "local@domain" split at its last '@'; the local
  // part is 1-64 octets without blanks or control characters (octets above 0x7F are allowed for
  // SMTPUTF8 addresses, compared as octets); the domain is a domain name (one final '.' allowed).
  // ASCII letters are compared in any case. Repeated lines are allowed.
  static absl::StatusOr<RecipientTable> Parse(std::string_view text, std::string_view source);

  // Reads `path` and parses it with `path` as the source. An unreadable file gives the errno's
  // code (kNotFound, kPermissionDenied, ...) and "read recipients file "<path>": <strerror>".
  static absl::StatusOr<std::shared_ptr<const RecipientTable>> LoadFile(const std::string& path);

  // What the file says of `local_part`@`domain`, both as the client wrote them (any case, one
  // final '.' on the domain allowed). Allocates nothing.
  Lookup Find(std::string_view local_part, std::string_view domain) const;

  // The domains with at least one line, in order of first appearance.
  std::vector<DomainLine> Domains() const;
  // Listed addresses (catch-alls not counted, repeats counted once).
  size_t address_count() const { return address_count_; }

 private:
  struct DomainEntry {
    bool catch_all = false;
    uint32_t first_line = 0;
    absl::flat_hash_set<std::string> local_parts;  // lower-case ASCII
  };

  absl::flat_hash_map<std::string, DomainEntry> domains_;  // lower-case, no final dot
  size_t address_count_ = 0;
};

}  // namespace ringmx::core

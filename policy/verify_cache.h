// The recipient verification cache (issue 12 item 5, docs/delivery.md): what a next hop said
// about a recipient when asked at RCPT time, kept like Postfix's address_verify_map: a known
// recipient for verify_positive_ttl_s (days), an unknown one for verify_negative_ttl_s (hours).
// A known recipient is still accepted while its hop is briefly down. Pure: time is passed in.
#pragma once

#include <stddef.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace ringmx::policy {

// One shard's cache. Shard-local. Keys are addresses, ASCII case-insensitive (the local part is
// compared without case too: the hops we front, Dovecot and Postfix, fold it). Memory is bounded:
// when `max_entries` is reached an expired entry goes first, else the one that expires soonest.
class VerifyCache {
 public:
  static constexpr size_t kDefaultMaxEntries = 100000;
  explicit VerifyCache(size_t max_entries = kDefaultMaxEntries) : max_entries_(max_entries) {}

  struct Entry {
    bool known = false;  // the hop accepted the RCPT
    std::string reply;   // the hop's reply (for an unknown recipient: what the client is told)
    absl::Time expires = absl::InfinitePast();
  };

  // The entry for `address` if it has not expired at `now`.
  std::optional<Entry> Find(std::string_view address, absl::Time now) const;
  // Records an answer valid until `now + ttl` (a ttl <= 0 records nothing).
  void Put(std::string_view address, bool known, std::string reply, absl::Time now,
           absl::Duration ttl);
  // Records an entry learnt elsewhere (another shard's probe), valid until `entry.expires`.
  void PutEntry(std::string_view address, Entry entry, absl::Time now);
  void Clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  size_t max_entries_;
  absl::flat_hash_map<std::string, Entry> entries_;
};

}  // namespace ringmx::policy

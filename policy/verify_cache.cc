#include "policy/verify_cache.h"

#include <utility>

#include "absl/strings/ascii.h"

namespace ringmx::policy {

std::optional<VerifyCache::Entry> VerifyCache::Find(std::string_view address,
                                                    absl::Time now) const {
  std::string key(address);
  absl::AsciiStrToLower(&key);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.expires <= now) return std::nullopt;
  return it->second;
}

void VerifyCache::Put(std::string_view address, bool known, std::string reply, absl::Time now,
                      absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) return;
  PutEntry(address, Entry{known, std::move(reply), now + ttl}, now);
}

void VerifyCache::PutEntry(std::string_view address, Entry entry, absl::Time now) {
  if (entry.expires <= now || max_entries_ == 0) return;
  std::string key(address);
  absl::AsciiStrToLower(&key);
  if (!entries_.contains(key) && entries_.size() >= max_entries_) {
    // Full: drop an expired entry, else the one that expires soonest. O(n), only when full.
    auto victim = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.expires <= now) {
        victim = it;
        break;
      }
      if (it->second.expires < victim->second.expires) victim = it;
    }
    entries_.erase(victim);
  }
  entries_[key] = std::move(entry);
}

}  // namespace ringmx::policy

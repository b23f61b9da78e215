// The AUTH failure throttle (issue 11): repeated authentication failures from one client address
// are first slowed down, then refused. Pure: the caller passes the time and the address, and
// executes the decision (waits before answering, or answers 421 and closes).
//
// The rules, per client address (an IPv4 address, or an IPv6 /64: one customer's network is one
// client, since a host that holds a /64 can use any address in it):
//   - Failures are counted while they keep coming: a record remembers how many failures there
//     were and when the last one was, and is forgotten once `window` has passed since the last
//     failure (then counting starts again at zero).
//   - With f failures remembered, the next AUTH attempt gets:
//       f <  slow_after                 answered at once;
//       slow_after <= f < refuse_after  answered after delay_step * (f - slow_after + 1), at most
//                                       max_delay (defaults: 1 s, 2 s, ... 5 s);
//       f >= refuse_after               refused: "421 4.7.0 <host> Error: too many
//                                       authentication failures" and the connection closes, on
//                                       this and any new connection, until `window` has passed
//                                       since the last failure.
//     The delay applies to the answer whatever it is (235 as well as 535): if only failures were
//     slow, a client could hang up after a short wait and know it had guessed wrong.
//   - A success does not clear the record. Many users may share an address (a NAT, a webmail
//     host): if one user's success wiped the count, whoever guesses passwords from the same
//     address would be reset each time. The price: a user who mistyped slow_after times waits a
//     little on later logins until the window has passed.
//   - Only failed credentials count (a 535 after the hash check, or a refused authzid). Protocol
//     errors (bad base64, "*") do not: they cost the server no hash; the session's error limit
//     handles clients that keep making them.
//
// Per shard, not global (no lock on the connection path): a client whose connections land on
// several shards may get up to `workers` times refuse_after attempts per window. Memory is bounded
// by `max_entries` records (about 100 bytes each); when full, the record whose last failure is
// oldest is dropped first.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <list>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

#include "core/config.h"
#include "core/ip.h"

namespace ringmx::policy {

struct AuthThrottleOptions {
  int slow_after = 3;                            // `[auth] slow_after`
  int refuse_after = 10;                         // `[auth] refuse_after`
  absl::Duration window = absl::Seconds(900);    // `[auth] failure_window_s`
  absl::Duration delay_step = absl::Seconds(1);  // added per failure past slow_after
  absl::Duration max_delay = absl::Seconds(5);   // the longest an answer is held
  size_t max_entries = 16384;                    // addresses remembered per shard

  // The `[auth]` keys, with the fixed delay step, cap and table size above.
  static AuthThrottleOptions FromConfig(const core::AuthConfig& auth);
};

// What to do with an AUTH attempt.
struct AuthThrottleDecision {
  // Answer "421 4.7.0 <host> Error: too many authentication failures" (smtp::
  // TooManyAuthFailuresReply) and close, without looking at credentials.
  bool refuse = false;
  // Otherwise: hold the attempt's answer this long (zero: answer at once).
  absl::Duration delay = absl::ZeroDuration();
};

// Failure records of one shard. Shard-local; lives as long as the shard (a reload calls
// set_options() and keeps the counts).
class AuthThrottle {
 public:
  explicit AuthThrottle(AuthThrottleOptions options = {});

  // The decision for an AUTH attempt from `client` at `now`. Does not change the records.
  AuthThrottleDecision Before(const core::IpAddress& client, absl::Time now) const;

  // `client`'s credentials were refused at `now`.
  void Failed(const core::IpAddress& client, absl::Time now);

  // Failures remembered for `client` at `now` (0 once the window has passed).
  int failures(const core::IpAddress& client, absl::Time now) const;

  // Records held (expired ones go lazily, at the next Failed()).
  size_t size() const { return index_.size(); }

  const AuthThrottleOptions& options() const { return options_; }
  // New limits (a reload); the records are kept and judged by them from now on.
  void set_options(AuthThrottleOptions options);

 private:
  // An IPv4 address, or the /64 of an IPv6 one; byte 16 tells which.
  using Key = std::array<uint8_t, 17>;
  struct Record {
    Key key;
    int failures = 0;
    absl::Time last_failure;
  };

  static Key KeyOf(const core::IpAddress& client);
  // The record's failures if it is still within the window at `now`, else 0.
  int Live(const Record& record, absl::Time now) const;
  // Drops records whose window has passed, oldest first.
  void DropExpired(absl::Time now);

  AuthThrottleOptions options_;
  // Oldest last failure first: Failed() moves a record to the back. Times passed in are expected
  // not to go backwards much (one shard's clock); if they do, the order is only approximate and
  // eviction merely less exact.
  std::list<Record> records_;
  absl::flat_hash_map<Key, std::list<Record>::iterator> index_;  // one entry per record
};

}  // namespace ringmx::policy

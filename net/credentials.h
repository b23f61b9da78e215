// Password checks for AUTH: a user's password against the crypt(3) hash the passwd file holds
// (core/passwd_file.h), with libxcrypt's crypt_rn(). A check costs what the hash method costs
// (yescrypt: milliseconds), so it never runs on a shard thread: the driver hands it to a worker
// and the answer comes back through the shard's mailbox (DESIGN.md section 6b).
#pragma once

#include <string_view>

#include "core/passwd_file.h"

namespace ringmx::net {

// True if `user` is in `table` and `password` hashes to the stored hash. Thread-safe: any number
// of threads may call it at once on the same table (each call has its own crypt_data, and the
// table is immutable). Blocking: takes as long as one hash of the user's method.
//
// It leaks as little as it can through time: an unknown user's password is run through a hash of
// the method most users have (PasswdTable::dummy_hash(), or a built-in yescrypt hash when the
// table is empty) and then refused, so answering takes as long as for a user who exists; the
// result is compared in constant time. Every copy of the password it makes is wiped before it
// returns; the caller wipes its own (core::SecretString does).
//
// A password holding a NUL octet, or longer than crypt(3) takes (CRYPT_MAX_PASSPHRASE_SIZE - 1 =
// 511 octets), is refused without hashing: that reveals its length class, not the user.
bool VerifyPassword(const core::PasswdTable& table, std::string_view user,
                    std::string_view password);

}  // namespace ringmx::net

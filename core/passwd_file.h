// The credentials file named by `[auth] passwd`: Dovecot's passwd-file format, parsed into an
// immutable user -> crypt(3) hash table. Parsing is pure; LoadPasswdFile() reads the file. The
// hashes are checked against passwords by net/credentials.h, on worker threads, never here.
//
// Format (one entry a line, as `doveadm pw` and Dovecot's passwd-file write it):
//   user:hash[:uid:gid:gecos:home:shell:extra_fields]
// Everything after the hash is ignored. Lines that are empty, only blanks, or whose first
// non-blank octet is '#' are ignored; a trailing CR (a file edited on Windows) is dropped.
//
// The hash is a crypt(3) string, optionally behind a Dovecot scheme prefix:
//   (none), {CRYPT}      any of the methods below
//   {SHA512-CRYPT}       $6$      {SHA256-CRYPT}  $5$
//   {BLF-CRYPT}          $2a$, $2b$, $2y$ (bcrypt)
//   {MD5-CRYPT}          $1$ (legacy, still accepted)
// and the crypt(3) methods accepted are yescrypt ($y$), gost-yescrypt ($gy$), scrypt ($7$),
// sha512-crypt, sha256-crypt, bcrypt and md5-crypt, each in the complete form crypt(3) writes
// (a truncated or hand-edited hash is an error, not a user who can never log in). Scheme names
// are case-insensitive, as in Dovecot. Any other scheme ({PLAIN}, {SSHA}, {ARGON2ID}, ...),
// traditional DES crypt, a locked entry ("!" or "*") and an empty hash are errors.
//
// User names are matched exactly, octet for octet: "Alice" and "alice" are two users. Dovecot
// compares the name as the client gives it (unless told to change it), and so do we; an operator
// who wants case-insensitive logins writes the names in the case clients send.
#pragma once

#include <stddef.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

#include "core/config.h"

namespace ringmx::core {

// Longest user name accepted in the file; AUTH accepts no longer one (smtp/sasl.h).
inline constexpr size_t kMaxPasswdUserBytes = 1024;
// Largest passwd file read: far above any real one, and bounds the memory a wrong path can take.
inline constexpr size_t kMaxPasswdFileBytes = size_t{64} << 20;

// User name -> crypt(3) hash (the scheme prefix removed). Immutable once built; safe to share
// between threads (the shards and the hashing workers hold it through a shared_ptr, and a reload
// replaces it whole).
class PasswdTable {
 public:
  // Parses passwd-file text. On error: kInvalidArgument, "<source_name>:<line>: <what>". The
  // message never contains a hash or any part of one.
  static absl::StatusOr<PasswdTable> Parse(std::string_view text, std::string_view source_name);

  // The crypt(3) hash of `user`, or nullptr if there is no such user (exact match). The pointer
  // is valid as long as the table.
  const std::string* Find(std::string_view user) const;

  // A hash of an existing user, of the method most users of the file have: the hash an unknown
  // user's password is run through, so that the time an answer takes does not tell which users
  // exist. "" if the table is empty.
  std::string_view dummy_hash() const { return dummy_hash_; }

  size_t size() const { return hashes_.size(); }
  bool empty() const { return hashes_.empty(); }

 private:
  PasswdTable() = default;

  absl::flat_hash_map<std::string, std::string> hashes_;
  std::string dummy_hash_;
};

// Reads and parses the file at `path`. Errors: the ErrnoStatus of open/read (kNotFound,
// kPermissionDenied, ...) with the path in the message; kInvalidArgument for a file larger than
// kMaxPasswdFileBytes or a bad line ("<path>:<line>: <what>").
absl::StatusOr<std::shared_ptr<const PasswdTable>> LoadPasswdFile(const std::string& path);

// What runtime building (and so `ringmx check` and a reload) calls: nullptr when `auth.passwd`
// is "" (no AUTH backend), else the loaded table. Errors are those of LoadPasswdFile() with
// "auth.passwd: " in front, so that the operator sees which key named the file.
absl::StatusOr<std::shared_ptr<const PasswdTable>> LoadAuthPasswd(const AuthConfig& auth);

}  // namespace ringmx::core

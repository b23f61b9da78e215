#include "core/passwd_file.h"

#include <crypt.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "core/read_file.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"

namespace ringmx::core {
namespace {

// The octets crypt(3) writes salts and hashes with ("./0-9A-Za-z", the "hash64" alphabet).
bool IsHash64(char c) {
  return c == '.' || c == '/' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
         (c >= 'a' && c <= 'z');
}

bool AllHash64(std::string_view s) {
  for (char c : s) {
    if (!IsHash64(c)) return false;
  }
  return true;
}

std::vector<std::string_view> SplitDollar(std::string_view s) {
  std::vector<std::string_view> fields;
  while (true) {
    const size_t dollar = s.find('$');
    fields.push_back(s.substr(0, dollar));
    if (dollar == std::string_view::npos) break;
    s.remove_prefix(dollar + 1);
  }
  return fields;
}

// A hash method crypt(3) knows and this file accepts, by its "$id$" prefix.
struct Method {
  std::string_view prefix;  // "$6$"
  std::string_view name;    // for messages: "sha512-crypt"
};
constexpr Method kMethods[] = {
    {"$y$", "yescrypt"},     {"$gy$", "gost-yescrypt"}, {"$7$", "scrypt"},
    {"$6$", "sha512-crypt"}, {"$5$", "sha256-crypt"},   {"$2b$", "bcrypt"},
    {"$2y$", "bcrypt"},      {"$2a$", "bcrypt"},        {"$1$", "md5-crypt"},
};

const Method* FindMethod(std::string_view hash) {
  for (const Method& m : kMethods) {
    if (hash.starts_with(m.prefix)) return &m;
  }
  return nullptr;
}

// sha-crypt salts: at most 16 octets, any but '$', ':' and line ends in principle; crypt(3) itself
// refuses a few more (crypt_checksalt() below). "rounds=N$" in front must be canonical (what
// crypt(3) writes back), or the hash it computes would never equal the stored one.
bool ValidShaCrypt(std::string_view rest, size_t hash_length) {
  std::vector<std::string_view> f = SplitDollar(rest);
  if (f.size() == 3 && f[0].starts_with("rounds=")) {
    const std::string_view digits = f[0].substr(7);
    if (digits.empty() || digits.size() > 9 || digits[0] == '0') return false;
    uint32_t rounds = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      rounds = rounds * 10 + static_cast<uint32_t>(c - '0');
    }
    if (rounds < 1000) return false;  // crypt(3) raises it to 1000 and writes that back
    f.erase(f.begin());
  }
  if (f.size() != 2) return false;
  const std::string_view salt = f[0];
  if (salt.empty() || salt.size() > 16) return false;
  for (char c : salt) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F || c == ':') return false;
  }
  return f[1].size() == hash_length && AllHash64(f[1]);
}

// Whether `hash` has the complete shape crypt(3) writes for its method. `method` is its entry.
bool WellFormed(const Method& method, std::string_view hash) {
  const std::string_view rest = hash.substr(method.prefix.size());
  const std::vector<std::string_view> f = SplitDollar(rest);
  switch (method.prefix[1]) {
    case 'y':  // $y$params$salt$hash
    case 'g':  // $gy$params$salt$hash
      return f.size() == 3 && !f[0].empty() && AllHash64(f[0]) && !f[1].empty() &&
             AllHash64(f[1]) && f[2].size() == 43 && AllHash64(f[2]);
    case '7':  // $7$<N, r, p and salt>$hash
      return f.size() == 2 && f[0].size() >= 11 && AllHash64(f[0]) && f[1].size() == 43 &&
             AllHash64(f[1]);
    case '6':
      return ValidShaCrypt(rest, 86);
    case '5':
      return ValidShaCrypt(rest, 43);
    case '2':  // $2b$NN$<22 salt><31 hash>
      return f.size() == 2 && f[0].size() == 2 && f[0] >= "04" && f[0] <= "31" &&
             absl::ascii_isdigit(f[0][0]) && absl::ascii_isdigit(f[0][1]) && f[1].size() == 53 &&
             AllHash64(f[1]);
    case '1':  // $1$salt$hash
      return f.size() == 2 && f[0].size() <= 8 && AllHash64(f[0]) && f[1].size() == 22 &&
             AllHash64(f[1]);
  }
  return false;
}

// Dovecot schemes that name crypt(3) strings, and the methods each may hold (none listed: any).
struct Scheme {
  std::string_view name;
  std::array<std::string_view, 3> prefixes;  // "" entries are unused
};
constexpr Scheme kSchemes[] = {
    {"CRYPT", {}},
    {"SHA512-CRYPT", {"$6$"}},
    {"SHA256-CRYPT", {"$5$"}},
    {"BLF-CRYPT", {"$2a$", "$2b$", "$2y$"}},
    {"MD5-CRYPT", {"$1$"}},
};

// A user name as written, made safe to print (escaped, and cut short: it is outside text).
std::string Printable(std::string_view text, size_t max = 40) {
  std::string out = absl::CHexEscape(Av(text.substr(0, max)));
  if (text.size() > max) out += "...";
  return out;
}

// Checks one password field. On success returns the crypt(3) hash (prefix removed) and sets
// `method`; on failure returns nullopt and sets `error` (which never quotes the hash).
std::optional<std::string_view> CheckHash(std::string_view field, const Method*& method,
                                          std::string& error) {
  std::string_view hash = field;
  const Scheme* scheme = nullptr;
  if (hash.starts_with("{")) {
    const size_t close = hash.find('}');
    if (close == std::string_view::npos) {
      error = "the password field starts with '{' but has no '}' ending a {SCHEME} prefix";
      return std::nullopt;
    }
    const std::string_view name = hash.substr(1, close - 1);
    for (const Scheme& s : kSchemes) {
      if (absl::EqualsIgnoreCase(Av(name), Av(s.name))) scheme = &s;
    }
    if (scheme == nullptr) {
      // The name is shown only if it looks like one: a plaintext password that happens to
      // start with '{' must not reach the message.
      const bool looks_like_scheme =
          !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
            return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                   c == '_';
          });
      error = absl::StrCat("unsupported password scheme ",
                           looks_like_scheme ? absl::StrCat("{", Av(name), "}") : "(not a name)",
                           ": use a crypt(3) hash (yescrypt, sha512-crypt or bcrypt), plain or "
                           "as {CRYPT}, {SHA512-CRYPT} or {BLF-CRYPT}");
      return std::nullopt;
    }
    hash.remove_prefix(close + 1);
  }
  if (hash.empty()) {
    error = "empty password hash";
    return std::nullopt;
  }
  if (hash[0] == '!' || hash[0] == '*') {
    error = "locked password hash (starts with '!' or '*'): remove the line to disable the user";
    return std::nullopt;
  }
  method = FindMethod(hash);
  if (method == nullptr) {
    error =
        "not a crypt(3) hash ringmx accepts (yescrypt $y$, sha512-crypt $6$, bcrypt $2b$/$2y$, "
        "sha256-crypt $5$, scrypt $7$, gost-yescrypt $gy$, md5-crypt $1$)";
    return std::nullopt;
  }
  if (scheme != nullptr && !scheme->prefixes[0].empty()) {
    bool agrees = false;
    for (std::string_view p : scheme->prefixes) agrees = agrees || method->prefix == p;
    if (!agrees) {
      error = absl::StrCat("the scheme {", Av(scheme->name), "} does not match the hash, which is ",
                           Av(method->name), " (", Av(method->prefix), ")");
      return std::nullopt;
    }
  }
  if (hash.size() >= CRYPT_OUTPUT_SIZE || !WellFormed(*method, hash)) {
    error = absl::StrCat("malformed ", Av(method->name),
                         " hash (truncated or edited? make it again with mkpasswd or doveadm pw)");
    return std::nullopt;
  }
  // The shape is right; ask the library whether it computes this method here at all.
  const std::string hash_string(hash);
  switch (crypt_checksalt(hash_string.c_str())) {
    case CRYPT_SALT_OK:
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
      return hash;
    case CRYPT_SALT_METHOD_DISABLED:
      error = absl::StrCat(Av(method->name), " is disabled in this system's libcrypt");
      return std::nullopt;
    default:
      error = absl::StrCat("malformed ", Av(method->name), " hash (crypt(3) refuses its salt)");
      return std::nullopt;
  }
}

std::string LineError(std::string_view source, size_t line, std::string_view what) {
  return absl::StrCat(Av(source), ":", line, ": ", Av(what));
}

}  // namespace

absl::StatusOr<PasswdTable> PasswdTable::Parse(std::string_view text,
                                               std::string_view source_name) {
  PasswdTable table;
  absl::flat_hash_map<std::string, size_t> line_of;  // user -> line, for duplicate messages
  // Per method: how many users, and the first of them, for the dummy hash.
  absl::flat_hash_map<std::string_view, std::pair<size_t, std::string>> by_method;
  std::vector<std::string_view> method_order;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);

    const std::string_view stripped = Sv(absl::StripLeadingAsciiWhitespace(Av(line)));
    if (stripped.empty() || stripped[0] == '#') continue;

    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          LineError(source_name, line_number, "expected \"user:hash\", found no ':'"));
    }
    const std::string_view user = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    const std::string_view password = rest.substr(0, rest.find(':'));

    if (user.empty()) {
      return absl::InvalidArgumentError(
          LineError(source_name, line_number, "empty user name before ':'"));
    }
    if (user.size() > kMaxPasswdUserBytes) {
      return absl::InvalidArgumentError(
          LineError(source_name, line_number,
                    absl::StrCat("user name longer than ", kMaxPasswdUserBytes, " octets")));
    }
    for (char c : user) {
      const unsigned char u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7F) {
        return absl::InvalidArgumentError(LineError(
            source_name, line_number,
            absl::StrCat("user name \"", Printable(user), "\" holds a blank or control octet")));
      }
    }
    const Method* method = nullptr;
    std::string error;
    std::optional<std::string_view> hash = CheckHash(password, method, error);
    if (!hash) {
      return absl::InvalidArgumentError(LineError(
          source_name, line_number, absl::StrCat("user \"", Printable(user), "\": ", error)));
    }
    if (auto [it, inserted] = line_of.try_emplace(std::string(user), line_number); !inserted) {
      return absl::InvalidArgumentError(LineError(
          source_name, line_number,
          absl::StrCat("user \"", Printable(user), "\" is already defined on line ", it->second)));
    }
    table.hashes_.emplace(std::string(user), std::string(*hash));
    auto [entry, first] = by_method.try_emplace(method->name, 0, std::string(*hash));
    if (first) method_order.push_back(method->name);
    ++entry->second.first;
  }
  // The most common method; the first one seen wins a tie.
  size_t best = 0;
  for (std::string_view name : method_order) {
    const auto& [count, hash] = by_method[name];
    if (count > best) {
      best = count;
      table.dummy_hash_ = hash;
    }
  }
  return table;
}

const std::string* PasswdTable::Find(std::string_view user) const {
  auto it = hashes_.find(Av(user));
  return it == hashes_.end() ? nullptr : &it->second;
}

absl::StatusOr<std::shared_ptr<const PasswdTable>> LoadPasswdFile(const std::string& path) {
  RINGMX_ASSIGN_OR_RETURN(
      std::string text,
      ReadWholeFile(path, absl::StrCat("read passwd file \"", absl::CHexEscape(path), "\""),
                    kMaxPasswdFileBytes));
  absl::StatusOr<PasswdTable> table = PasswdTable::Parse(text, path);
  if (!table.ok()) return table.status();
  return std::make_shared<const PasswdTable>(*std::move(table));
}

absl::StatusOr<std::shared_ptr<const PasswdTable>> LoadAuthPasswd(const AuthConfig& auth) {
  if (auth.passwd.empty()) return std::shared_ptr<const PasswdTable>();
  absl::StatusOr<std::shared_ptr<const PasswdTable>> table = LoadPasswdFile(auth.passwd);
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat("auth.passwd: ", table.status().message()));
  }
  return table;
}

}  // namespace ringmx::core

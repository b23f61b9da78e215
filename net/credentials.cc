#include "net/credentials.h"

#include <crypt.h>
#include <string.h>

#include <memory>
#include <string>

#include "core/secret.h"

namespace ringmx::net {
namespace {

// The hash an unknown user's password goes through when the table has no user at all: yescrypt
// at libxcrypt's default cost (made with crypt_gensalt_rn("$y$", 0) and a random password nobody
// knows). Only the time it takes matters.
constexpr char kFallbackDummyHash[] =
    "$y$j9T$492xHglxwOzLnEvVZH4/B.$1NhhLPMheAIB7qnACWPLC3QrXn.SBe5mZrzb5LlhR18";

// Constant-time equality of two strings of public length: every octet is looked at whatever the
// first difference is.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

bool VerifyPassword(const core::PasswdTable& table, std::string_view user,
                    std::string_view password) {
  if (password.size() >= CRYPT_MAX_PASSPHRASE_SIZE ||
      password.find('\0') != std::string_view::npos) {
    return false;
  }
  const std::string* stored = table.Find(user);
  std::string_view setting = stored != nullptr             ? std::string_view(*stored)
                             : !table.dummy_hash().empty() ? table.dummy_hash()
                                                           : std::string_view(kFallbackDummyHash);
  const std::string setting_string(setting);
  // crypt_rn() wants NUL-terminated text; the copy is wiped by its destructor.
  const core::SecretString phrase(password);
  // 32 KiB: on the heap, not on a worker's stack. Zeroed, as crypt_rn() requires on first use.
  auto data = std::make_unique<crypt_data>();
  const char* result = crypt_rn(phrase.c_str(), setting_string.c_str(), data.get(), sizeof(*data));
  // crypt_rn() returns NULL (never a "*0"-style failure token) when it cannot hash.
  const bool match = result != nullptr && stored != nullptr && ConstantTimeEquals(result, *stored);
  // The buffer holds the computed hash and the method's scratch state, both derived from the
  // password.
  core::WipeBytes(data.get(), sizeof(*data));
  return match;
}

}  // namespace ringmx::net

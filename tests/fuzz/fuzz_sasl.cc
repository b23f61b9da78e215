// Fuzz target: the SASL codec (smtp/sasl.h). Any sequence of AUTH arguments and client lines must
// give only the replies the header lists, credentials that keep every promise of SaslCredentials,
// and a state (in_progress) that follows the steps; never a crash. Strict base64 has one encoding
// per value: whatever DecodeSaslBase64 accepts must be what absl encodes it back to.
//
// Input: lines separated by LF (a CR before it is dropped). The first line is an AUTH command's
// arguments; each next line answers the last 334, or, once the exchange has ended, is the
// arguments of a new AUTH.
#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "absl/strings/escaping.h"

#include "core/check.h"
#include "core/strings.h"
#include "smtp/sasl.h"

namespace ringmx::fuzz {
namespace {

using smtp::SaslChallenge;
using smtp::SaslCredentials;
using smtp::SaslFailure;
using smtp::SaslStep;

bool ValidName(std::string_view name) {
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return false;
  }
  return true;
}

void CheckStep(const smtp::SaslServer& sasl, const SaslStep& step) {
  if (const auto* challenge = std::get_if<SaslChallenge>(&step)) {
    RINGMX_CHECK(sasl.in_progress());
    RINGMX_CHECK(challenge->line == "334 " || challenge->line == "334 VXNlcm5hbWU6" ||
                 challenge->line == "334 UGFzc3dvcmQ6");
    return;
  }
  RINGMX_CHECK(!sasl.in_progress());
  if (const auto* failure = std::get_if<SaslFailure>(&step)) {
    RINGMX_CHECK(failure->code == 501 || failure->code == 504 || failure->code == 535);
    RINGMX_CHECK(failure->line.size() > 4 && failure->line[3] == ' ');
    RINGMX_CHECK(failure->line.substr(0, 3) == std::to_string(failure->code));
    RINGMX_CHECK(failure->line.find_first_of("\r\n") == std::string::npos);
    return;
  }
  const auto& creds = std::get<SaslCredentials>(step);
  RINGMX_CHECK(!creds.user.empty() && creds.user.size() <= smtp::kMaxSaslUserBytes);
  RINGMX_CHECK(ValidName(creds.user));
  RINGMX_CHECK(creds.authzid.empty() || creds.authzid == creds.user);
  RINGMX_CHECK(creds.mechanism == smtp::SaslMechanism::kPlain || creds.authzid.empty());
  RINGMX_CHECK(!creds.password.empty() && creds.password.size() <= smtp::kMaxSaslPasswordBytes);
  RINGMX_CHECK(creds.password.view().find('\0') == std::string_view::npos);
  RINGMX_CHECK(std::string_view(creds.password.c_str()) == creds.password.view());
}

void CheckBase64(std::string_view text) {
  std::optional<std::string> decoded = smtp::DecodeSaslBase64(text);
  if (!decoded) return;
  RINGMX_CHECK(core::Sv(absl::Base64Escape(core::Av(*decoded))) == text);
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;  // NOLINT: a fuzz entry point, not a header
  std::string_view input(reinterpret_cast<const char*>(data), size);
  smtp::SaslServer sasl;
  bool first = true;
  while (!input.empty() || first) {
    const size_t eol = input.find('\n');
    std::string_view line = input.substr(0, eol);
    input.remove_prefix(eol == std::string_view::npos ? input.size() : eol + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    fuzz::CheckBase64(line);
    const smtp::SaslStep step = sasl.in_progress() ? sasl.Continue(line) : sasl.Start(line);
    fuzz::CheckStep(sasl, step);
    first = false;
  }
  return 0;
}

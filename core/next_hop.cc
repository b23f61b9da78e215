#include "core/next_hop.h"

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

constexpr std::string_view kForms =
    "expected \"lmtp:ADDRESS:PORT\", \"lmtp:unix:/PATH\" or \"smtp:[ADDRESS]:PORT\"";

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(Av(text)), "\"");
}

// 1-65535 in decimal digits, no sign, no leading "+"; nullopt otherwise.
std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

bool IsUnspecified(const IpAddress& address) {
  const size_t n = address.is_v4() ? 4 : 16;
  for (size_t i = 0; i < n; ++i) {
    if (address.bytes()[i] != 0) return false;
  }
  return true;
}

// Something that looks like a host name rather than a typo: letters, digits, '-' and '.', with
// at least one letter. Used only to choose the error message.
bool LooksLikeHostName(std::string_view host) {
  bool letter = false;
  for (char c : host) {
    if (absl::ascii_isalpha(static_cast<unsigned char>(c))) {
      letter = true;
    } else if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '.') {
      return false;
    }
  }
  return letter;
}

absl::Status NoHostNames(std::string_view host) {
  return absl::InvalidArgumentError(
      absl::StrCat(Quote(host),
                   " is a host name; next hops are IP addresses or Unix sockets in this version "
                   "(ringmx does no DNS or MX lookups): write e.g. \"smtp:[192.0.2.5]:25\""));
}

// The address of an inet hop; `host` has no brackets.
absl::StatusOr<IpAddress> ParseAddress(std::string_view host) {
  std::optional<IpAddress> address = IpAddress::Parse(host);
  if (!address) {
    if (LooksLikeHostName(host)) return NoHostNames(host);
    return absl::InvalidArgumentError(absl::StrCat(Quote(host), " is not an IP address"));
  }
  if (IsUnspecified(*address)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Quote(host), " is the unspecified address; name the next hop's own address"));
  }
  return *address;
}

absl::Status BadPort(std::string_view port) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad port ", Quote(port), ": expected a number from 1 to 65535"));
}

absl::StatusOr<NextHop> ParseLmtp(std::string_view rest, std::string_view text) {
  NextHop hop;
  hop.protocol = HopProtocol::kLmtp;
  if (rest.starts_with("unix:")) {
    hop.is_unix = true;
    hop.unix_path = std::string(rest.substr(5));
    if (hop.unix_path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected a socket path after \"lmtp:unix:\", got ", Quote(text)));
    }
    for (char c : hop.unix_path) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        return absl::InvalidArgumentError(
            absl::StrCat("the socket path holds a control character: ", Quote(text)));
      }
    }
    return hop;
  }
  std::string_view host;
  std::string_view port;
  if (rest.starts_with('[')) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("no closing ']' in ", Quote(text)));
    }
    host = rest.substr(1, close - 1);
    if (close + 1 == rest.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("an LMTP hop needs a port (LMTP has no standard port): write e.g. \"lmtp:",
                       Av(rest.substr(0, close + 1)), ":24\""));
    }
    if (rest[close + 1] != ':')
      return absl::InvalidArgumentError(absl::StrCat(Av(kForms), ", got ", Quote(text)));
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      if (LooksLikeHostName(rest)) return NoHostNames(rest);
      return absl::InvalidArgumentError(absl::StrCat(
          "an LMTP hop needs a port (LMTP has no standard port): write e.g. \"lmtp:", Av(rest),
          ":24\""));
    }
    if (rest.find(':') != colon) {
      return absl::InvalidArgumentError(absl::StrCat(
          "an IPv6 address goes in brackets: \"lmtp:[2001:db8::5]:24\", got ", Quote(text)));
    }
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  absl::StatusOr<IpAddress> address = ParseAddress(host);
  if (!address.ok()) return address.status();
  const std::optional<uint16_t> port_number = ParsePort(port);
  if (!port_number) return BadPort(port);
  hop.inet = Endpoint{*address, *port_number};
  return hop;
}

absl::StatusOr<NextHop> ParseSmtp(std::string_view rest, std::string_view text) {
  NextHop hop;
  hop.protocol = HopProtocol::kSmtp;
  if (rest.starts_with("unix:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("Unix sockets are for LMTP hops (\"lmtp:unix:/PATH\"); an SMTP hop is "
                     "\"smtp:[ADDRESS]:PORT\", got ",
                     Quote(text)));
  }
  if (!rest.starts_with('[')) {
    // Postfix reads "smtp:host" as "look up the MX records of host"; brackets turn that off.
    const size_t colon = rest.rfind(':');
    const std::string_view host =
        colon == std::string_view::npos || rest.find(':') != colon ? rest : rest.substr(0, colon);
    if (LooksLikeHostName(host)) return NoHostNames(host);
    return absl::InvalidArgumentError(absl::StrCat(
        "an SMTP hop's address goes in brackets, as in Postfix: \"smtp:[192.0.2.5]:25\" or "
        "\"smtp:[2001:db8::5]:25\", got ",
        Quote(text)));
  }
  const size_t close = rest.find(']');
  if (close == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("no closing ']' in ", Quote(text)));
  }
  absl::StatusOr<IpAddress> address = ParseAddress(rest.substr(1, close - 1));
  if (!address.ok()) return address.status();
  uint16_t port = 25;  // the SMTP port, as Postfix assumes for "[address]"
  const std::string_view after = rest.substr(close + 1);
  if (!after.empty()) {
    if (after[0] != ':')
      return absl::InvalidArgumentError(absl::StrCat(Av(kForms), ", got ", Quote(text)));
    const std::optional<uint16_t> port_number = ParsePort(after.substr(1));
    if (!port_number) return BadPort(after.substr(1));
    port = *port_number;
  }
  hop.inet = Endpoint{*address, port};
  return hop;
}

}  // namespace

absl::StatusOr<NextHop> NextHop::Parse(std::string_view text) {
  if (text.starts_with("lmtp:")) return ParseLmtp(text.substr(5), text);
  if (text.starts_with("smtp:")) return ParseSmtp(text.substr(5), text);
  return absl::InvalidArgumentError(absl::StrCat(Av(kForms), ", got ", Quote(text)));
}

std::string NextHop::ToString() const {
  if (protocol == HopProtocol::kLmtp) {
    if (is_unix) return absl::StrCat("lmtp:unix:", unix_path);
    return absl::StrCat("lmtp:", inet.ToString());
  }
  return absl::StrCat("smtp:[", inet.address.ToString(), "]:", inet.port);
}

}  // namespace ringmx::core

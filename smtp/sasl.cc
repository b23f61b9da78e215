#include "smtp/sasl.h"

#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/strings.h"

namespace ringmx::smtp {
namespace {

// base64("Username:") and base64("Password:"), the prompts every LOGIN client expects.
constexpr std::string_view kLoginUserPrompt = "334 VXNlcm5hbWU6";
constexpr std::string_view kLoginPasswordPrompt = "334 UGFzc3dvcmQ6";

constexpr std::string_view kSyntax = "501 5.5.4 Syntax: AUTH mechanism";
constexpr std::string_view kUnknownMechanism = "504 5.5.4 Unrecognized authentication type";
constexpr std::string_view kBadBase64 = "501 5.5.2 Cannot decode response";
constexpr std::string_view kAborted = "501 5.5.2 Authentication aborted";
constexpr std::string_view kLineTooLong = "501 5.5.2 Authentication line too long";
constexpr std::string_view kMalformed = "501 5.5.2 Malformed authentication message";
constexpr std::string_view kBadUser = "501 5.5.2 Invalid user name";
constexpr std::string_view kBadPassword = "501 5.5.2 Invalid password";
constexpr std::string_view kTooLong = "501 5.5.2 User name or password too long";
constexpr std::string_view kAuthzid = "535 5.7.8 Authorization identity not supported";

// RFC 4954 §4: 12288 octets for the whole line, so the AUTH arguments get that minus "AUTH " and
// CRLF, and a response line minus CRLF.
constexpr size_t kMaxArgsBytes = kMaxSaslLineBytes - 7;
constexpr size_t kMaxResponseBytes = kMaxSaslLineBytes - 2;

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// A user name (authcid, authzid) we accept: no NUL and no other control octet, so that it can
// reach logs and the envelope without surprises. UTF-8 is not checked: names are compared as
// octets with the passwd file's.
bool ValidName(std::string_view name) {
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return false;
  }
  return true;
}

std::string_view TrimSpaces(std::string_view s) {
  while (s.starts_with(' ')) s.remove_prefix(1);
  while (s.ends_with(' ')) s.remove_suffix(1);
  return s;
}

// Decodes a response and wipes the result when it goes, whatever path the code takes. The
// decoded text is built in place (never moved: a moved short string leaves its octets behind in
// the source's inline buffer).
class Decoded {
 public:
  explicit Decoded(std::string_view base64) : value_(DecodeSaslBase64(base64)) {}
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;
  ~Decoded() {
    if (value_) core::WipeString(*value_);
  }
  bool ok() const { return value_.has_value(); }
  std::string_view view() const { return *value_; }

 private:
  std::optional<std::string> value_;
};

}  // namespace

std::string_view SaslMechanismName(SaslMechanism mechanism) {
  return mechanism == SaslMechanism::kPlain ? "PLAIN" : "LOGIN";
}

std::optional<std::string> DecodeSaslBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  size_t padding = 0;
  if (text.ends_with("==")) {
    padding = 2;
  } else if (text.ends_with("=")) {
    padding = 1;
  }
  const size_t data = text.size() - padding;
  for (size_t i = 0; i < data; ++i) {
    if (Base64Value(text[i]) < 0) return std::nullopt;
  }
  // Unused bits of the last group must be zero (RFC 4648 §3.5), so each text has one encoding.
  if (padding == 2 && (Base64Value(text[data - 1]) & 0x0F) != 0) return std::nullopt;
  if (padding == 1 && (Base64Value(text[data - 1]) & 0x03) != 0) return std::nullopt;
  // Decoded in place and returned without a move (NRVO), for the reason given at `Decoded`.
  std::optional<std::string> out(std::in_place);
  if (!absl::Base64Unescape(core::Av(text), &*out)) {
    core::WipeString(*out);
    out.reset();
  }
  return out;
}

std::string TooManyAuthFailuresReply(std::string_view hostname) {
  return absl::StrCat("421 4.7.0 ", core::Av(hostname), " Error: too many authentication failures");
}

void SaslServer::Reset() {
  state_ = State::kIdle;
  core::WipeString(login_user_);
}

SaslStep SaslServer::Fail(int code, std::string_view line) {
  Reset();
  return SaslFailure{code, std::string(line)};
}

SaslStep SaslServer::Start(std::string_view auth_args) {
  Reset();
  if (auth_args.size() > kMaxArgsBytes) return Fail(501, kLineTooLong);
  // Spaces around and between the arguments are tolerated; anything else (a tab, a CR) is part
  // of an argument and fails it.
  const std::string_view args = TrimSpaces(auth_args);
  const size_t space = args.find(' ');
  const std::string_view mechanism = args.substr(0, space);
  std::optional<std::string_view> initial;
  if (space != std::string_view::npos) {
    initial = TrimSpaces(args.substr(space + 1));
    // One argument after the mechanism, no more (RFC 4954 §4).
    if (initial->find(' ') != std::string_view::npos) return Fail(501, kSyntax);
  }
  if (mechanism.empty()) return Fail(501, kSyntax);
  // RFC 4954 §4: "=" is an initial response of zero length.
  if (initial && *initial == "=") initial = std::string_view();
  if (absl::EqualsIgnoreCase(core::Av(mechanism), "PLAIN")) {
    if (initial) return Plain(*initial);
    state_ = State::kPlainResponse;
    // RFC 4954 §4: "334" SP [base64]; PLAIN's first challenge is empty.
    return SaslChallenge{"334 "};
  }
  if (absl::EqualsIgnoreCase(core::Av(mechanism), "LOGIN")) {
    if (initial) return LoginUser(*initial);
    state_ = State::kLoginUser;
    return SaslChallenge{std::string(kLoginUserPrompt)};
  }
  return Fail(504, kUnknownMechanism);
}

SaslStep SaslServer::Continue(std::string_view client_line) {
  RINGMX_DCHECK(in_progress());
  if (client_line.size() > kMaxResponseBytes) return Fail(501, kLineTooLong);
  // RFC 4954 §4: "*" cancels the exchange, answered with 501.
  if (client_line == "*") return Fail(501, kAborted);
  switch (state_) {
    case State::kPlainResponse:
      return Plain(client_line);
    case State::kLoginUser:
      return LoginUser(client_line);
    case State::kLoginPassword:
      return LoginPassword(client_line);
    case State::kIdle:
      break;
  }
  return Fail(501, kMalformed);
}

SaslStep SaslServer::Plain(std::string_view base64) {
  const Decoded decoded(base64);
  if (!decoded.ok()) return Fail(501, kBadBase64);
  // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, authcid and passwd not empty.
  const std::string_view message = decoded.view();
  const size_t first = message.find('\0');
  const size_t second = first == std::string_view::npos ? first : message.find('\0', first + 1);
  if (second == std::string_view::npos ||
      message.find('\0', second + 1) != std::string_view::npos) {
    return Fail(501, kMalformed);
  }
  const std::string_view authzid = message.substr(0, first);
  const std::string_view authcid = message.substr(first + 1, second - first - 1);
  const std::string_view password = message.substr(second + 1);
  if (authcid.empty() || password.empty()) return Fail(501, kMalformed);
  if (authzid.size() > kMaxSaslUserBytes || authcid.size() > kMaxSaslUserBytes ||
      password.size() > kMaxSaslPasswordBytes) {
    return Fail(501, kTooLong);
  }
  if (!ValidName(authcid) || !ValidName(authzid)) return Fail(501, kBadUser);
  // We authenticate users as themselves only: an authzid asks to act as someone else.
  if (!authzid.empty() && authzid != authcid) return Fail(535, kAuthzid);
  Reset();
  return SaslCredentials{SaslMechanism::kPlain, std::string(authzid), std::string(authcid),
                         core::SecretString(password)};
}

SaslStep SaslServer::LoginUser(std::string_view base64) {
  const Decoded decoded(base64);
  if (!decoded.ok()) return Fail(501, kBadBase64);
  const std::string_view user = decoded.view();
  if (user.size() > kMaxSaslUserBytes) return Fail(501, kTooLong);
  if (user.empty() || !ValidName(user)) return Fail(501, kBadUser);
  login_user_.assign(user);
  state_ = State::kLoginPassword;
  return SaslChallenge{std::string(kLoginPasswordPrompt)};
}

SaslStep SaslServer::LoginPassword(std::string_view base64) {
  const Decoded decoded(base64);
  if (!decoded.ok()) return Fail(501, kBadBase64);
  const std::string_view password = decoded.view();
  if (password.size() > kMaxSaslPasswordBytes) return Fail(501, kTooLong);
  if (password.empty() || password.find('\0') != std::string_view::npos) {
    return Fail(501, kBadPassword);
  }
  SaslCredentials credentials{SaslMechanism::kLogin, "", std::move(login_user_),
                              core::SecretString(password)};
  login_user_.clear();
  Reset();
  return credentials;
}

}  // namespace ringmx::smtp

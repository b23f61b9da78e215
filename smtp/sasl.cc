// TEMPORARY lead stand-in for the SASL codec (replaced by the authcore branch).
#include "smtp/sasl.h"

#include "absl/strings/escaping.h"

#include "smtp/command.h"
namespace ringmx::smtp {
namespace {
SaslStep Err(std::string r) {
  SaslStep s;
  s.reply = std::move(r);
  return s;
}
SaslStep Plain(std::string_view b64) {
  std::string raw;
  if (!absl::Base64Unescape(absl::string_view(b64.data(), b64.size()), &raw))
    return Err("501 5.5.2 Cannot decode response");
  size_t a = raw.find('\0');
  if (a == std::string::npos) return Err("501 5.5.2 Cannot decode response");
  size_t b = raw.find('\0', a + 1);
  if (b == std::string::npos) return Err("501 5.5.2 Cannot decode response");
  SaslStep s;
  s.kind = SaslStep::Kind::kCredentials;
  s.authzid = raw.substr(0, a);
  s.user = raw.substr(a + 1, b - a - 1);
  s.password = raw.substr(b + 1);
  return s;
}
}  // namespace
SaslStep SaslServer::Start(std::string_view args) {
  size_t sp = args.find(' ');
  std::string_view mech = args.substr(0, sp);
  std::string_view init = sp == std::string_view::npos ? std::string_view() : args.substr(sp + 1);
  if (StartsWithIgnoreCase(mech, "PLAIN") && mech.size() == 5) {
    mechanism_ = "PLAIN";
    if (init.empty()) {
      stage_ = 1;
      SaslStep s;
      s.kind = SaslStep::Kind::kChallenge;
      s.reply = "334 ";
      return s;
    }
    return Plain(init);
  }
  if (StartsWithIgnoreCase(mech, "LOGIN") && mech.size() == 5) {
    mechanism_ = "LOGIN";
    stage_ = 2;
    SaslStep s;
    s.kind = SaslStep::Kind::kChallenge;
    s.reply = "334 VXNlcm5hbWU6";
    return s;
  }
  return Err("504 5.5.4 Unrecognized authentication type");
}
SaslStep SaslServer::Continue(std::string_view line) {
  if (line == "*") return Err("501 5.5.2 Authentication aborted");
  if (stage_ == 1) return Plain(line);
  std::string raw;
  if (!absl::Base64Unescape(absl::string_view(line.data(), line.size()), &raw))
    return Err("501 5.5.2 Cannot decode response");
  if (stage_ == 2) {
    user_ = raw;
    stage_ = 3;
    SaslStep s;
    s.kind = SaslStep::Kind::kChallenge;
    s.reply = "334 UGFzc3dvcmQ6";
    return s;
  }
  SaslStep s;
  s.kind = SaslStep::Kind::kCredentials;
  s.user = user_;
  s.password = raw;
  return s;
}
}  // namespace ringmx::smtp

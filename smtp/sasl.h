// TEMPORARY lead stand-in for the SASL codec (replaced by the authcore branch).
#pragma once
#include <string>
#include <string_view>
namespace ringmx::smtp {
struct SaslStep {
  enum class Kind { kChallenge, kCredentials, kError };
  Kind kind = Kind::kError;
  std::string reply;
  std::string authzid, user, password;
};
class SaslServer {
 public:
  SaslStep Start(std::string_view args);
  SaslStep Continue(std::string_view line);
  std::string_view mechanism() const { return mechanism_; }

 private:
  std::string mechanism_;
  int stage_ = 0;
  std::string user_;
};
}  // namespace ringmx::smtp

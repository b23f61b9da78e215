// The server side of SMTP AUTH's SASL exchange (RFC 4954) for the PLAIN (RFC 4616) and LOGIN
// mechanisms. Pure: the session gives it the AUTH command's arguments and each client line that
// answers a 334, and gets back the next thing to send, the credentials to check, or the error
// reply that ends the exchange. It checks no password and knows no user: the driver verifies the
// credentials off the shard (net/credentials.h) and the session answers 235 or 535.
//
// Replies it produces (each without CRLF):
//   334 VXNlcm5hbWU6 / 334 UGFzc3dvcmQ6    LOGIN's "Username:" and "Password:" prompts
//   334                                     PLAIN without an initial response (empty challenge)
//   501 5.5.4 Syntax: AUTH mechanism        no mechanism, or more than one argument after it
//   504 5.5.4 Unrecognized authentication type
//   501 5.5.2 ...                           bad base64, "*" (the client cancelled), a malformed
//                                           PLAIN message, NUL in a LOGIN name or password, an
//                                           empty or over-long name or password, an over-long line
//   535 5.7.8 Authorization identity not supported
//                                           PLAIN with an authzid that is not empty and differs
//                                           from the authcid (we do not act for someone else)
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/secret.h"

namespace ringmx::smtp {

// RFC 4954 §4: an AUTH command line or a client's response line may be up to 12288 octets,
// CRLF included. The session's line reader must allow this much while AUTH runs.
inline constexpr size_t kMaxSaslLineBytes = 12288;
// Longest user name (authcid, authzid) and password accepted, in octets after base64 decoding.
inline constexpr size_t kMaxSaslUserBytes = 1024;
inline constexpr size_t kMaxSaslPasswordBytes = 1024;

enum class SaslMechanism : uint8_t { kPlain, kLogin };

// "PLAIN" or "LOGIN".
std::string_view SaslMechanismName(SaslMechanism mechanism);

// Send `line` + CRLF, then pass the client's next line to SaslServer::Continue().
struct SaslChallenge {
  std::string line;  // "334 ..."
};

// The exchange is over with an error: send `line` + CRLF. `code` is its reply code (501, 504 or
// 535): a 535 is a refused identity and may count as an authentication failure; 501 and 504 are
// protocol errors.
struct SaslFailure {
  int code = 0;
  std::string line;
};

// The exchange is complete: check these. `user` is the authcid: 1..kMaxSaslUserBytes octets, no
// NUL and no control octet (so it may be logged as it is, escaped or not). `authzid` is "" or
// equal to `user` (anything else ended in a SaslFailure). `password` is 1..kMaxSaslPasswordBytes
// octets without NUL, held in a SecretString that wipes itself: move it to whoever checks it and
// let it die there.
struct SaslCredentials {
  SaslMechanism mechanism = SaslMechanism::kPlain;
  std::string authzid;
  std::string user;
  core::SecretString password;
};

using SaslStep = std::variant<SaslChallenge, SaslCredentials, SaslFailure>;

// One AUTH exchange at a time, for one session. Shard-local (owned by the session). Holds the
// LOGIN user name between its two prompts and nothing secret between calls: a password is only
// ever in the SaslCredentials it returns, and every decoded copy is wiped before a call returns.
class SaslServer {
 public:
  // Begins an exchange from the AUTH command's arguments (the text after "AUTH ", without CRLF):
  // "MECHANISM [initial-response]". The mechanism is case-insensitive; an initial response of "="
  // is an empty one (RFC 4954 §4). LOGIN takes an initial response as the user name (as Postfix
  // and Cyrus do). Forgets any exchange in progress.
  SaslStep Start(std::string_view auth_args);

  // The client's answer to the last SaslChallenge (the line without its CRLF). "*" cancels. Must
  // only be called while in_progress().
  SaslStep Continue(std::string_view client_line);

  // True after a SaslChallenge until the exchange ends (with credentials or a failure).
  bool in_progress() const { return state_ != State::kIdle; }

  // Forgets the exchange in progress (the connection ends, or the session resets).
  void Reset();

 private:
  enum class State : uint8_t { kIdle, kPlainResponse, kLoginUser, kLoginPassword };

  SaslStep Plain(std::string_view base64);
  SaslStep LoginUser(std::string_view base64);
  SaslStep LoginPassword(std::string_view base64);
  SaslStep Fail(int code, std::string_view line);

  State state_ = State::kIdle;
  std::string login_user_;  // kLoginPassword only: the decoded user name
};

// Strict base64 (RFC 4648 §4) as SASL carries it: only the 64 letters and '=' padding, length a
// multiple of 4, padding only at the end, unused bits zero, no whitespace. "" decodes to "".
// nullopt if `text` is not such base64. The result may be a secret: the caller wipes it
// (core::WipeString). Exposed for tests and the fuzz target.
std::optional<std::string> DecodeSaslBase64(std::string_view text);

// "421 4.7.0 <hostname> Error: too many authentication failures": the answer to AUTH from an
// address the throttle refuses (policy/auth_throttle.h), after which the session closes.
std::string TooManyAuthFailuresReply(std::string_view hostname);

}  // namespace ringmx::smtp

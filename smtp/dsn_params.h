// The SMTP service extension for delivery status notifications (RFC 3461): the xtext codec of its
// section 4 and strict parsers of the MAIL parameters RET and ENVID and the RCPT parameters
// NOTIFY and ORCPT. Pure: text in, values or an error reply out.
//
// The session advertises DSN in its EHLO reply and takes these parameters through
// ApplyDsnMailParam and ApplyDsnRcptParam (smtp/session.cc); the envelope stores them
// (smtp/envelope.h) and the client engine passes them on to a hop that offers DSN
// (smtp/client.h). Each parser error is a complete reply line the session sends as it is:
//   501 5.5.4 Invalid NOTIFY parameter: <why>       (and likewise RET, ENVID, ORCPT)
//   501 5.5.4 Duplicate NOTIFY parameter            (a parameter given twice on one command)
// The reason never echoes the client's bytes, so a reply cannot carry what the client sent.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace ringmx::smtp {

// RFC 3461 section 4.4: an ENVID is at most 100 characters. We count the decoded octets.
inline constexpr size_t kMaxEnvidBytes = 100;
// RFC 3461 section 4.2: an ORCPT parameter's value (addr-type ";" xtext) is at most 500
// characters. We count the value as sent (encoded).
inline constexpr size_t kMaxOrcptBytes = 500;

// RFC 3461 section 4: xtext is a run of xchar (the octets '!'..'~' except '+' and '=') and
// hexchar ("+" and two upper-case hexadecimal digits). Returns the decoded octets, or nullopt when
// `xtext` is not xtext (any other octet, a '+' not followed by two upper-case hex digits). A
// hexchar may encode any octet, also one that could have been written as an xchar ("+41" is
// "A"), as the RFC allows; lower-case hex digits are refused, as its grammar says.
std::optional<std::string> DecodeXtext(std::string_view xtext);

// Encodes any octets as xtext: xchars as they are, every other octet as "+XX" (upper-case hex).
// DecodeXtext(EncodeXtext(s)) == s for every s.
std::string EncodeXtext(std::string_view raw);

// RFC 3461 section 4.1 NOTIFY: NEVER, or a comma-separated list of SUCCESS, FAILURE and DELAY.
// Keywords are case-insensitive; one repeated in the list is tolerated and changes nothing.
struct DsnNotify {
  // Bits of `flags`.
  static constexpr uint8_t kSuccess = 1;
  static constexpr uint8_t kFailure = 2;
  static constexpr uint8_t kDelay = 4;

  // False when the client gave no NOTIFY: the default is FAILURE and DELAY (RFC 3461 section
  // 4.1 lets the MTA choose between "FAILURE" and "FAILURE,DELAY"; Postfix takes the latter).
  bool given = false;
  bool never = false;  // NOTIFY=NEVER; `flags` is 0
  uint8_t flags = 0;

  // Whether a DSN of each kind may be sent for this recipient (the default applied when not
  // `given`).
  bool WantsSuccess() const { return given && (flags & kSuccess) != 0; }
  bool WantsFailure() const { return !given || (flags & kFailure) != 0; }
  bool WantsDelay() const { return !given || (flags & kDelay) != 0; }

  // The parameter's value as it would be sent on ("NEVER", "SUCCESS,FAILURE", ...); "" when not
  // `given`.
  std::string ToParameterValue() const;

  bool operator==(const DsnNotify&) const = default;
};

// RFC 3461 section 4.3 RET.
enum class DsnRet : uint8_t {
  kUnspecified,  // no RET: the DSN builder chooses (smtp/dsn.h)
  kFull,         // RET=FULL: return the whole message
  kHdrs,         // RET=HDRS: return its headers only
};

// RFC 3461 section 4.2 ORCPT=addr-type;xtext. `address` is decoded and printable US-ASCII
// (0x20-0x7E), as the RFC requires "prior to encoding as xtext".
struct DsnOrcpt {
  std::string addr_type;  // as sent ("rfc822", compared case-insensitively by readers)
  std::string address;    // decoded

  // addr-type ";" xtext, as it would be sent on.
  std::string ToParameterValue() const;

  bool operator==(const DsnOrcpt&) const = default;
};

// A refused parameter: a complete reply line without CRLF ("501 5.5.4 ...").
struct DsnParamError {
  std::string reply;
};

// Each parser takes the parameter's value (the text after '=', without the keyword); nullopt
// for a parameter given without '=' (always an error: all four need a value).
std::variant<DsnNotify, DsnParamError> ParseNotify(std::optional<std::string_view> value);
std::variant<DsnRet, DsnParamError> ParseRet(std::optional<std::string_view> value);
// The decoded ENVID: printable US-ASCII, 1..kMaxEnvidBytes octets.
std::variant<std::string, DsnParamError> ParseEnvid(std::optional<std::string_view> value);
// addr-type is an RFC 5321 atom (the RFC's grammar); the xtext must decode to 1..kMaxOrcptBytes
// printable US-ASCII octets. RFC 6533's utf-8 addr-type (with its own "\x{...}" escapes inside
// xtext) is taken as any other type: its text is kept as sent.
std::variant<DsnOrcpt, DsnParamError> ParseOrcpt(std::optional<std::string_view> value);

// The DSN parameters of one MAIL command.
struct DsnMailParams {
  DsnRet ret = DsnRet::kUnspecified;
  std::optional<std::string> envid;  // decoded

  bool operator==(const DsnMailParams&) const = default;
};

// The DSN parameters of one RCPT command.
struct DsnRcptParams {
  DsnNotify notify;  // .given false when absent
  std::optional<DsnOrcpt> orcpt;

  bool operator==(const DsnRcptParams&) const = default;
};

// True for RET and ENVID (case-insensitive), the MAIL parameters ApplyDsnMailParam takes.
bool IsDsnMailParam(std::string_view keyword);
// True for NOTIFY and ORCPT (case-insensitive), the RCPT parameters ApplyDsnRcptParam takes.
bool IsDsnRcptParam(std::string_view keyword);

// Parses one parameter of a MAIL (RET, ENVID) or RCPT (NOTIFY, ORCPT) command into `params`.
// Returns the error reply when the value is bad or the parameter was already given on this
// command (`params` then keeps what it had); nullopt when it was taken. The caller checks
// IsDsn*Param first; any other keyword is refused as "501 5.5.4 Unknown DSN parameter".
std::optional<DsnParamError> ApplyDsnMailParam(std::string_view keyword,
                                               std::optional<std::string_view> value,
                                               DsnMailParams& params);
std::optional<DsnParamError> ApplyDsnRcptParam(std::string_view keyword,
                                               std::optional<std::string_view> value,
                                               DsnRcptParams& params);

}  // namespace ringmx::smtp

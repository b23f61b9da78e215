// Fuzz target: the RFC 3461 parameters and xtext codec (smtp/dsn_params.h), and the DSN builder
// (smtp/dsn.h) fed with what outside parties control (the message, the hop's reply and name,
// the addresses, ENVID). Never a crash; every promise of the headers holds:
//  - xtext: what DecodeXtext accepts re-encodes canonically to text that decodes to the same
//    octets; EncodeXtext of any octets decodes back to them.
//  - parameters: an error is one "501 5.5.4 " line without CR or LF; a value taken keeps the
//    header's invariants (NEVER alone, ENVID 1..100 printable octets, ORCPT printable and its
//    canonical form parses back equal); a second NOTIFY/ORCPT/RET/ENVID on one command is refused
//    and changes nothing.
//  - DSN: none for the null sender; else every line ends in CRLF within 998 octets, the boundary
//    occurs nowhere in the original, the delivery-status part is 7-bit, and every reported
//    recipient is one DsnWanted selects.
//
// Input: the first byte chooses the mode (mod 3), the rest is its data:
//   0  xtext: the rest is decoded, and encoded.
//   1  parameters: LF-separated "KEYWORD[=value]" lines; a line "MAIL" or "RCPT" starts a new
//      command (MAIL first); each other line is applied to the current command.
//   2  DSN: kind, ret, recipient count (mod 5), sender (short string), ENVID (short string, empty
//      for none); per recipient: action, NOTIFY bits (bit 3: NEVER, bit 4: given), address,
//      status, remote MTA (short strings), diagnostic (two length bytes, mod 4096); then the
//      message (the rest).
#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/check.h"
#include "smtp/dsn.h"
#include "smtp/dsn_params.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

using smtp::DsnParamError;

bool IsPrintable(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

void CheckError(const DsnParamError& error) {
  RINGMX_CHECK(error.reply.starts_with("501 5.5.4 "));
  RINGMX_CHECK(error.reply.find_first_of("\r\n") == std::string::npos);
}

void FuzzXtext(std::string_view data) {
  const std::string encoded = smtp::EncodeXtext(data);
  RINGMX_CHECK(smtp::DecodeXtext(encoded) == std::string(data));
  const std::optional<std::string> decoded = smtp::DecodeXtext(data);
  if (!decoded) return;
  RINGMX_CHECK(decoded->size() <= data.size());
  const std::string canonical = smtp::EncodeXtext(*decoded);
  RINGMX_CHECK(canonical.size() <= data.size());
  RINGMX_CHECK(smtp::DecodeXtext(canonical) == *decoded);
}

void CheckNotify(const smtp::DsnNotify& notify) {
  RINGMX_CHECK(notify.given);
  RINGMX_CHECK(!notify.never || notify.flags == 0);
  RINGMX_CHECK(notify.never || notify.flags != 0);
  RINGMX_CHECK(notify.flags <= 7);
  auto again = smtp::ParseNotify(notify.ToParameterValue());
  RINGMX_CHECK(std::holds_alternative<smtp::DsnNotify>(again));
  RINGMX_CHECK(std::get<smtp::DsnNotify>(again) == notify);
}

void CheckParams(const smtp::DsnMailParams& mail, const smtp::DsnRcptParams& rcpt) {
  if (mail.envid) {
    RINGMX_CHECK(!mail.envid->empty() && mail.envid->size() <= smtp::kMaxEnvidBytes);
    RINGMX_CHECK(IsPrintable(*mail.envid));
    auto again = smtp::ParseEnvid(smtp::EncodeXtext(*mail.envid));
    RINGMX_CHECK(std::holds_alternative<std::string>(again));
    RINGMX_CHECK(std::get<std::string>(again) == *mail.envid);
  }
  if (rcpt.notify.given) CheckNotify(rcpt.notify);
  if (rcpt.orcpt) {
    RINGMX_CHECK(!rcpt.orcpt->addr_type.empty() && !rcpt.orcpt->address.empty());
    RINGMX_CHECK(IsPrintable(rcpt.orcpt->address));
    const std::string value = rcpt.orcpt->ToParameterValue();
    RINGMX_CHECK(value.size() <= smtp::kMaxOrcptBytes);
    auto again = smtp::ParseOrcpt(value);
    RINGMX_CHECK(std::holds_alternative<smtp::DsnOrcpt>(again));
    RINGMX_CHECK(std::get<smtp::DsnOrcpt>(again) == *rcpt.orcpt);
  }
}

void FuzzParams(std::string_view data) {
  smtp::DsnMailParams mail;
  smtp::DsnRcptParams rcpt;
  bool in_rcpt = false;
  while (!data.empty()) {
    const size_t eol = data.find('\n');
    const std::string_view line = data.substr(0, eol);
    data.remove_prefix(eol == std::string_view::npos ? data.size() : eol + 1);
    if (line == "MAIL" || line == "RCPT") {
      in_rcpt = line == "RCPT";
      mail = {};
      rcpt = {};
      continue;
    }
    const size_t eq = line.find('=');
    const std::string_view keyword = line.substr(0, eq);
    const std::optional<std::string_view> value =
        eq == std::string_view::npos ? std::nullopt : std::optional(line.substr(eq + 1));
    const smtp::DsnMailParams mail_before = mail;
    const smtp::DsnRcptParams rcpt_before = rcpt;
    std::optional<DsnParamError> error = in_rcpt ? smtp::ApplyDsnRcptParam(keyword, value, rcpt)
                                                 : smtp::ApplyDsnMailParam(keyword, value, mail);
    if (error) {
      CheckError(*error);
      RINGMX_CHECK(mail.ret == mail_before.ret && mail.envid == mail_before.envid);
      RINGMX_CHECK(rcpt.notify == rcpt_before.notify && rcpt.orcpt == rcpt_before.orcpt);
    } else {
      RINGMX_CHECK(in_rcpt ? smtp::IsDsnRcptParam(keyword) : smtp::IsDsnMailParam(keyword));
    }
    CheckParams(mail, rcpt);
    // The parsers alone, on the same value.
    if (auto r = smtp::ParseNotify(value); auto* e = std::get_if<DsnParamError>(&r)) {
      CheckError(*e);
    } else {
      CheckNotify(std::get<smtp::DsnNotify>(r));
    }
    if (auto r = smtp::ParseRet(value); auto* e = std::get_if<DsnParamError>(&r)) CheckError(*e);
    if (auto r = smtp::ParseEnvid(value); auto* e = std::get_if<DsnParamError>(&r)) CheckError(*e);
    if (auto r = smtp::ParseOrcpt(value); auto* e = std::get_if<DsnParamError>(&r)) CheckError(*e);
  }
}

void FuzzDsn(FuzzInput& in) {
  smtp::DsnRequest request;
  request.kind = static_cast<smtp::DsnKind>(in.Byte() % 3);
  request.ret = static_cast<smtp::DsnRet>(in.Byte() % 3);
  const size_t count = in.Byte() % 5;
  request.hostname = "mx.example.test";
  request.dsn_id = "D1";
  request.original_id = "Q1";
  request.sender = in.ShortString();
  const std::string_view envid = in.ShortString();
  if (!envid.empty()) request.envid = std::string(envid);
  request.arrival = absl::FromUnixSeconds(1772600767);
  request.now = request.arrival + absl::Minutes(1);
  request.full_message_limit = 512;
  for (size_t i = 0; i < count; ++i) {
    smtp::DsnRecipient r;
    r.action = static_cast<smtp::DsnAction>(in.Byte() % 4);
    const uint8_t notify = in.Byte();
    r.notify.given = (notify & 16) != 0;
    r.notify.never = r.notify.given && (notify & 8) != 0;
    r.notify.flags = r.notify.never ? 0 : (notify & 7);
    r.address = std::string(in.ShortString());
    r.status = std::string(in.ShortString());
    r.remote_mta = std::string(in.ShortString());
    r.diagnostic = std::string(in.Bytes(in.U16() % 4096));
    r.diagnostic_is_smtp = (notify & 32) == 0;
    r.last_attempt = (notify & 64) ? request.now : absl::InfinitePast();
    r.retry_until = request.arrival + absl::Hours(120);
    request.recipients.push_back(std::move(r));
  }
  request.message = in.Rest();

  const std::optional<smtp::DsnMessage> dsn = smtp::BuildDsn(request);
  if (request.sender.empty()) RINGMX_CHECK(!dsn);
  if (!dsn) return;
  RINGMX_CHECK(dsn->rcpt_to == request.sender);
  RINGMX_CHECK(!dsn->reported.empty());
  for (size_t i : dsn->reported) {
    RINGMX_CHECK(i < request.recipients.size());
    RINGMX_CHECK(smtp::DsnWanted(request.kind, request.recipients[i]));
  }
  const std::string& bytes = dsn->bytes;
  RINGMX_CHECK(bytes.ends_with("\r\n"));
  size_t start = 0;
  while (start < bytes.size()) {
    const size_t crlf = bytes.find("\r\n", start);
    RINGMX_CHECK(crlf != std::string::npos);
    RINGMX_CHECK(crlf - start <= 998);
    RINGMX_CHECK(bytes.substr(start, crlf - start).find_first_of("\r\n") == std::string::npos);
    start = crlf + 2;
  }
  // The sender is in the To header before it, but holds no CR or LF (else there is no DSN).
  const size_t b = bytes.find("\r\n\tboundary=\"");
  RINGMX_CHECK(b != std::string::npos);
  const std::string boundary = bytes.substr(b + 13, bytes.find('"', b + 13) - (b + 13));
  RINGMX_CHECK(!boundary.empty() && boundary.size() <= 70);
  RINGMX_CHECK(request.message.find(boundary) == std::string_view::npos);
  const size_t status = bytes.find("Content-Type: message/delivery-status\r\n\r\n");
  RINGMX_CHECK(status != std::string::npos);
  const size_t status_end = bytes.find("\r\n--" + boundary, status);
  RINGMX_CHECK(status_end != std::string::npos);
  for (size_t i = status; i < status_end; ++i) {
    RINGMX_CHECK(static_cast<unsigned char>(bytes[i]) < 0x80);
  }
  RINGMX_CHECK(bytes.ends_with("\r\n--" + boundary + "--\r\n"));
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;  // NOLINT: a fuzz entry point, not a header
  fuzz::FuzzInput in(data, size);
  switch (in.Byte() % 3) {
    case 0:
      fuzz::FuzzXtext(in.Rest());
      break;
    case 1:
      fuzz::FuzzParams(in.Rest());
      break;
    default:
      fuzz::FuzzDsn(in);
      break;
  }
  return 0;
}

#include "smtp/dsn.h"

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/strings.h"
#include "smtp/envelope.h"

namespace ringmx::smtp {
namespace {

// RFC 5322 section 2.1.1: a line is at most 998 octets before its CRLF.
constexpr size_t kMaxLineBytes = 998;
// Folding aims at this width (RFC 5322's recommended 78) ...
constexpr size_t kFoldWidth = 78;
// ... and cuts a run without a space into pieces of at most this many octets.
constexpr size_t kMaxWordBytes = 900;

bool IsControlOrHigh(unsigned char c) { return c < 0x20 || c >= 0x7F; }

// `s` on one line of printable US-ASCII: CR, LF and TAB become spaces, other control and 8-bit
// octets '?', runs of spaces one space, no space at either end; at most `max_bytes` octets (a
// longer text is cut and ends in "...").
std::string OneLine(std::string_view s, size_t max_bytes) {
  std::string out;
  out.reserve(s.size() < max_bytes ? s.size() : max_bytes);
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(IsControlOrHigh(c) ? '?' : static_cast<char>(c));
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > max_bytes) {
    out.resize(max_bytes - 3);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out.append("...");
  }
  return out;
}

// Appends `first` + `text` (which holds no CR or LF) to `out` as one folded line ending in CRLF:
// breaks go at spaces so that a line stays within kFoldWidth where the words allow it, and a word
// longer than kMaxWordBytes is cut (the folding whitespace then stands inside it). Continuation
// lines start with `indent` (whitespace: RFC 5322 folding, or the text part's hanging indent).
// Every line stays within kMaxLineBytes as long as `first` and `indent` are shorter than 90.
void AppendFolded(std::string& out, std::string_view first, std::string_view text,
                  std::string_view indent = " ") {
  out.append(first);
  size_t col = first.size();
  bool line_has_word = false;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(pos, end - pos);
    pos = end;
    while (!word.empty()) {
      const std::string_view piece = word.substr(0, kMaxWordBytes);
      word.remove_prefix(piece.size());
      const size_t need = piece.size() + (line_has_word ? 1 : 0);
      if (line_has_word && col + need > kFoldWidth) {
        absl::StrAppend(&out, "\r\n", core::Av(indent));
        col = indent.size();
        line_has_word = false;
      } else if (!line_has_word && col + piece.size() > kMaxLineBytes) {
        absl::StrAppend(&out, "\r\n", core::Av(indent));
        col = indent.size();
      }
      if (line_has_word) {
        out.push_back(' ');
        ++col;
      }
      out.append(piece);
      col += piece.size();
      line_has_word = true;
      // A cut word continues on the next line.
      if (!word.empty()) {
        absl::StrAppend(&out, "\r\n", core::Av(indent));
        col = indent.size();
        line_has_word = false;
      }
    }
  }
  out.append("\r\n");
}

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629 section 4) and its code
// point, or 0.
size_t Utf8Sequence(std::string_view s, uint32_t& cp) {
  const auto b = [&s](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    const unsigned char lim_lo = i == 1 ? lo : 0x80;
    const unsigned char lim_hi = i == 1 ? hi : 0xBF;
    if (b(i) < lim_lo || b(i) > lim_hi) return 0;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  return n;
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// An address for the report: "rfc822; addr" when it is ASCII (control octets become '?'), else
// RFC 6533's "utf-8; " with utf-8-addr-xtext (each non-ASCII character, and '\', '+', '=',
// written "\x{HEX}"), so that the delivery-status part stays 7-bit. Octets that are not UTF-8
// become '?'.
std::string ReportAddress(std::string_view address) {
  if (IsAscii(address)) return absl::StrCat("rfc822; ", OneLine(address, kMaxWordBytes));
  std::string out = "utf-8; ";
  for (size_t i = 0; i < address.size();) {
    const unsigned char c = static_cast<unsigned char>(address[i]);
    if (c < 0x80) {
      if (c == '\\' || c == '+' || c == '=') {
        absl::StrAppendFormat(&out, "\\x{%X}", c);
      } else {
        out.push_back(c < 0x21 || c == 0x7F ? '?' : static_cast<char>(c));
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t n = Utf8Sequence(address.substr(i), cp);
    if (n == 0) {
      out.push_back('?');
      ++i;
    } else {
      absl::StrAppendFormat(&out, "\\x{%X}", cp);
      i += n;
    }
  }
  return out;
}

// The address as the text part shows it (7-bit): the report form without its type.
std::string ShownAddress(std::string_view address) {
  std::string reported = ReportAddress(address);
  return reported.substr(reported.find(' ') + 1);
}

// RFC 3463 "X.Y.Z": class 2, 4 or 5, subject and detail 1 to 3 digits.
bool IsStatusCode(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    size_t digits = 0;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      ++digits;
    }
    if (digits < 1 || digits > 3) return false;
    if (part == 0) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

std::string StatusFor(const DsnRecipient& r, std::string_view diagnostic) {
  if (IsStatusCode(r.status)) return r.status;
  // "550 5.1.1 text" or "550-5.1.1 text": the enhanced code after the reply code.
  if (r.diagnostic_is_smtp && diagnostic.size() > 4 &&
      absl::ascii_isdigit(static_cast<unsigned char>(diagnostic[0])) &&
      (diagnostic[3] == ' ' || diagnostic[3] == '-')) {
    std::string_view rest = diagnostic.substr(4);
    const std::string_view code = rest.substr(0, rest.find(' '));
    if (IsStatusCode(code)) return std::string(code);
  }
  switch (r.action) {
    case DsnAction::kFailed:
      return "5.0.0";
    case DsnAction::kDelayed:
      return "4.0.0";
    case DsnAction::kDelivered:
    case DsnAction::kRelayed:
      return "2.0.0";
  }
  return "5.0.0";
}

std::string_view ActionName(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return "failed";
    case DsnAction::kDelayed:
      return "delayed";
    case DsnAction::kDelivered:
      return "delivered";
    case DsnAction::kRelayed:
      return "relayed";
  }
  return "failed";
}

// Whether `content` can be a MIME part body as it is: CRLF line ends only, lines within 998
// octets, no NUL. Sets `eight_bit` when an octet is >= 0x80.
bool IsValidPartContent(std::string_view content, bool& eight_bit) {
  eight_bit = false;
  size_t line = 0;
  for (size_t i = 0; i < content.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(content[i]);
    if (c == '\r') {
      if (i + 1 >= content.size() || content[i + 1] != '\n') return false;
      ++i;
      line = 0;
      continue;
    }
    if (c == '\n' || c == 0) return false;
    if (c >= 0x80) eight_bit = true;
    if (++line > kMaxLineBytes) return false;
  }
  return true;
}

// The header section of `message`: every line before the first empty one, each with its CRLF.
std::string_view HeaderSection(std::string_view message) {
  if (message.starts_with("\r\n")) return message.substr(0, 0);
  const size_t blank = message.find("\r\n\r\n");
  if (blank == std::string_view::npos) return message;
  return message.substr(0, blank + 2);
}

// A boundary that starts with `base` and occurs in none of `parts` (so no "--boundary" line can
// appear inside them, RFC 2046 section 5.1.1). Each round finds where the candidate occurs and
// extends it by the character that follows it least often; that count is at most 1/62 of the
// previous one, so a few rounds end it (at most 11 for any size that fits in memory).
std::string ChooseBoundary(std::string base, std::initializer_list<std::string_view> parts) {
  static constexpr std::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  struct Hit {
    std::string_view part;
    size_t next;  // offset just after the occurrence
  };
  std::vector<Hit> hits;
  for (std::string_view part : parts) {
    for (size_t at = part.find(base); at != std::string_view::npos; at = part.find(base, at + 1)) {
      hits.push_back({part, at + base.size()});
    }
  }
  while (!hits.empty()) {
    std::array<size_t, kAlphabet.size()> count{};
    for (const Hit& hit : hits) {
      if (hit.next >= hit.part.size()) continue;
      const size_t k = kAlphabet.find(hit.part[hit.next]);
      if (k != std::string_view::npos) ++count[k];
    }
    size_t best = 0;
    for (size_t k = 1; k < count.size(); ++k) {
      if (count[k] < count[best]) best = k;
    }
    const char c = kAlphabet[best];
    base.push_back(c);
    std::vector<Hit> kept;
    for (const Hit& hit : hits) {
      if (hit.next < hit.part.size() && hit.part[hit.next] == c) {
        kept.push_back({hit.part, hit.next + 1});
      }
    }
    hits = std::move(kept);
  }
  return base;
}

std::string SafeId(std::string_view id, size_t max_bytes) {
  std::string out;
  for (char c : id) {
    if (out.size() >= max_bytes) break;
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') {
      out.push_back(c);
    }
  }
  return out;
}

std::string_view Subject(DsnKind kind) {
  switch (kind) {
    case DsnKind::kFailure:
      return "Undelivered Mail Returned to Sender";
    case DsnKind::kDelay:
      return "Delayed Mail (still being retried)";
    case DsnKind::kSuccess:
      return "Successful Mail Delivery Report";
  }
  return "";
}

// One recipient's paragraph of the text part, without the address.
std::string Reason(const DsnRecipient& r, const std::string& diagnostic) {
  const std::string hop = OneLine(r.remote_mta, 255);
  std::string out;
  switch (r.action) {
    case DsnAction::kDelivered:
      out = hop.empty() ? "delivered." : absl::StrCat("delivered to ", hop, ".");
      break;
    case DsnAction::kRelayed:
      out = absl::StrCat("passed on to ", hop.empty() ? "another mail system" : hop,
                         ", which will not report delivery.");
      break;
    case DsnAction::kFailed:
    case DsnAction::kDelayed:
      if (!diagnostic.empty() && r.diagnostic_is_smtp && !hop.empty()) {
        out = absl::StrCat("host ", hop, " said: ", diagnostic);
      } else if (!diagnostic.empty()) {
        out = diagnostic;
      } else {
        out = absl::StrCat("delivery ", core::Av(ActionName(r.action)), " (status ",
                           StatusFor(r, diagnostic), ").");
      }
      if (r.action == DsnAction::kDelayed && r.retry_until != absl::InfinitePast()) {
        absl::StrAppend(&out, " Delivery will be retried until ", FormatRfc5322Date(r.retry_until),
                        ".");
      }
      break;
  }
  return out;
}

std::string TextPart(const DsnRequest& request, const std::vector<size_t>& reported,
                     const std::vector<std::string>& diagnostics, DsnMessage::Returned returned) {
  std::string out;
  const std::string host = OneLine(request.hostname, 255);
  AppendFolded(out, "", absl::StrCat("This is the mail delivery system at host ", host, "."), "");
  out.append("\r\n");
  std::string what;
  switch (request.kind) {
    case DsnKind::kFailure:
      what =
          "I am sorry to tell you that your message could not be delivered to one or more of its "
          "recipients. This failure is permanent: no further attempts will be made for them.";
      break;
    case DsnKind::kDelay:
      what =
          "Your message has not yet been delivered to one or more of its recipients. This is only "
          "a warning: delivery is still being retried, and you do not need to send the message "
          "again.";
      break;
    case DsnKind::kSuccess:
      what =
          "Your message was handed on as listed below. You asked to be told (NOTIFY=SUCCESS); "
          "nothing needs to be done.";
      break;
  }
  switch (returned) {
    case DsnMessage::Returned::kFull:
      absl::StrAppend(&what, " A copy of your message is attached below.");
      break;
    case DsnMessage::Returned::kHeaders:
      absl::StrAppend(&what, " The headers of your message are attached below.");
      break;
    case DsnMessage::Returned::kNothing:
      absl::StrAppend(&what, " Your message could not be attached (it is not valid MIME content).");
      break;
  }
  AppendFolded(out, "", what, "");
  out.append("\r\n");
  if (request.kind == DsnKind::kFailure) {
    AppendFolded(out, "",
                 "If you need help, send this report to the postmaster of your own mail system; "
                 "you may delete the attached copy of your message first.",
                 "");
    out.append("\r\n");
  }
  out.append("                   The ringmx mail delivery system\r\n");
  for (size_t i = 0; i < reported.size(); ++i) {
    const DsnRecipient& r = request.recipients[reported[i]];
    out.append("\r\n");
    AppendFolded(out, "",
                 absl::StrCat("<", ShownAddress(r.address), ">: ", Reason(r, diagnostics[i])),
                 "    ");
  }
  return out;
}

std::string DeliveryStatusPart(const DsnRequest& request, const std::vector<size_t>& reported,
                               const std::vector<std::string>& diagnostics) {
  std::string out;
  // RFC 3464 section 2.2: per-message fields.
  if (request.envid) {
    AppendFolded(out, "Original-Envelope-Id: ", OneLine(*request.envid, kMaxDsnDiagnosticBytes));
  }
  AppendFolded(out, "Reporting-MTA: dns; ", OneLine(request.hostname, 255));
  absl::StrAppend(&out, "Arrival-Date: ", FormatRfc5322Date(request.arrival), "\r\n");
  // RFC 3464 section 2.2: extension fields follow the standard ones.
  if (!request.original_id.empty()) {
    AppendFolded(out, "X-Ringmx-Queue-ID: ", OneLine(request.original_id, 255));
  }
  // RFC 3464 section 2.3: one block per recipient, each after an empty line.
  for (size_t i = 0; i < reported.size(); ++i) {
    const DsnRecipient& r = request.recipients[reported[i]];
    const std::string& diagnostic = diagnostics[i];
    out.append("\r\n");
    if (r.orcpt) {
      AppendFolded(out, "Original-Recipient: ",
                   absl::StrCat(OneLine(r.orcpt->addr_type, 64), "; ",
                                OneLine(r.orcpt->address, kMaxWordBytes)));
    }
    AppendFolded(out, "Final-Recipient: ", ReportAddress(r.address));
    absl::StrAppend(&out, "Action: ", core::Av(ActionName(r.action)), "\r\n");
    absl::StrAppend(&out, "Status: ", StatusFor(r, diagnostic), "\r\n");
    if (!r.remote_mta.empty()) {
      AppendFolded(out, "Remote-MTA: dns; ", OneLine(r.remote_mta, 255));
    }
    if (!diagnostic.empty()) {
      AppendFolded(out,
                   r.diagnostic_is_smtp ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: X-Ringmx; ",
                   diagnostic);
    }
    if (r.last_attempt != absl::InfinitePast()) {
      absl::StrAppend(&out, "Last-Attempt-Date: ", FormatRfc5322Date(r.last_attempt), "\r\n");
    }
    if (r.action == DsnAction::kDelayed && r.retry_until != absl::InfinitePast()) {
      absl::StrAppend(&out, "Will-Retry-Until: ", FormatRfc5322Date(r.retry_until), "\r\n");
    }
  }
  return out;
}

}  // namespace

bool DsnWanted(DsnKind kind, const DsnRecipient& recipient) {
  if (recipient.notify.never) return false;
  switch (kind) {
    case DsnKind::kFailure:
      return recipient.action == DsnAction::kFailed && recipient.notify.WantsFailure();
    case DsnKind::kDelay:
      return recipient.action == DsnAction::kDelayed && recipient.notify.WantsDelay();
    case DsnKind::kSuccess:
      return (recipient.action == DsnAction::kDelivered ||
              recipient.action == DsnAction::kRelayed) &&
             recipient.notify.WantsSuccess();
  }
  return false;
}

std::optional<DsnMessage> BuildDsn(const DsnRequest& request) {
  // Never to the null reverse-path (file comment), nor to an address no RCPT TO could carry.
  if (request.sender.empty()) return std::nullopt;
  for (char c : request.sender) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return std::nullopt;
  }
  DsnMessage dsn;
  for (size_t i = 0; i < request.recipients.size(); ++i) {
    if (DsnWanted(request.kind, request.recipients[i])) dsn.reported.push_back(i);
  }
  if (dsn.reported.empty()) return std::nullopt;
  dsn.rcpt_to = std::string(request.sender);
  dsn.smtputf8 = !IsAscii(request.sender);

  std::vector<std::string> diagnostics;
  diagnostics.reserve(dsn.reported.size());
  for (size_t i : dsn.reported) {
    diagnostics.push_back(OneLine(request.recipients[i].diagnostic, kMaxDsnDiagnosticBytes));
  }

  // Part 3: what of the original goes back (DsnRequest::ret, full_message_limit).
  bool want_full = false;
  if (request.kind == DsnKind::kFailure) {
    want_full =
        request.ret == DsnRet::kFull || (request.ret == DsnRet::kUnspecified &&
                                         request.message.size() <= request.full_message_limit);
  }
  std::string_view original;
  bool original_8bit = false;
  if (want_full && IsValidPartContent(request.message, original_8bit)) {
    original = request.message;
    dsn.returned = DsnMessage::Returned::kFull;
  } else if (IsValidPartContent(HeaderSection(request.message), original_8bit)) {
    original = HeaderSection(request.message);
    dsn.returned = DsnMessage::Returned::kHeaders;
  } else {
    original_8bit = false;
    dsn.returned = DsnMessage::Returned::kNothing;
  }
  dsn.body_8bitmime = original_8bit;

  const std::string text = TextPart(request, dsn.reported, diagnostics, dsn.returned);
  const std::string status = DeliveryStatusPart(request, dsn.reported, diagnostics);
  const std::string safe_id = SafeId(request.dsn_id, 40);
  // Checked against the whole original, not only the part of it that goes back: simpler to state
  // and to test, and it costs one more scan of the body at most.
  const std::string boundary =
      ChooseBoundary(absl::StrCat("=_ringmx_", safe_id, "_"), {text, status, request.message});
  const std::string host = OneLine(request.hostname, 255);

  std::string& out = dsn.bytes;
  out.reserve(text.size() + status.size() + original.size() + 1024);
  absl::StrAppend(&out, "From: Mail Delivery System <MAILER-DAEMON@", host, ">\r\n");
  // The sender as the envelope has it (control octets were refused above); UTF-8 here is RFC
  // 6532's, hence DsnMessage::smtputf8.
  AppendFolded(out, "To: ", absl::StrCat("<", core::Av(request.sender), ">"));
  absl::StrAppend(&out, "Subject: ", core::Av(Subject(request.kind)), "\r\n");
  absl::StrAppend(&out, "Date: ", FormatRfc5322Date(request.now), "\r\n");
  absl::StrAppend(&out, "Message-ID: <", absl::ToUnixMicros(request.now), ".",
                  safe_id.empty() ? "dsn" : safe_id, "@", host, ">\r\n");
  // RFC 3834 section 5: an automatic reply; RFC 3464 section 2: sent from <>.
  out.append("Auto-Submitted: auto-replied\r\n");
  out.append("MIME-Version: 1.0\r\n");
  absl::StrAppend(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n",
                  "\tboundary=\"", boundary, "\"\r\n");
  // RFC 2045 section 6.4: a multipart holding an 8-bit part is itself 8bit.
  if (original_8bit) out.append("Content-Transfer-Encoding: 8bit\r\n");
  out.append("\r\nThis is a MIME-encapsulated message.\r\n");

  absl::StrAppend(&out, "\r\n--", boundary, "\r\n");
  out.append("Content-Description: Notification\r\n");
  out.append("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
  out.append(text);

  absl::StrAppend(&out, "\r\n--", boundary, "\r\n");
  out.append("Content-Description: Delivery report\r\n");
  out.append("Content-Type: message/delivery-status\r\n\r\n");
  out.append(status);

  if (dsn.returned != DsnMessage::Returned::kNothing) {
    absl::StrAppend(&out, "\r\n--", boundary, "\r\n");
    if (dsn.returned == DsnMessage::Returned::kFull) {
      out.append("Content-Description: Undelivered Message\r\n");
      out.append("Content-Type: message/rfc822\r\n");
    } else {
      absl::StrAppend(
          &out, "Content-Description: ",
          request.kind == DsnKind::kFailure ? "Undelivered Message Headers" : "Message Headers",
          "\r\n");
      out.append("Content-Type: text/rfc822-headers\r\n");
    }
    if (original_8bit) out.append("Content-Transfer-Encoding: 8bit\r\n");
    out.append("\r\n");
    out.append(original);
    // The content ends in CRLF (or is empty); the delimiter's own CRLF follows, so the original
    // comes back byte for byte.
    if (!original.empty() && !original.ends_with("\r\n")) out.append("\r\n");
  }
  absl::StrAppend(&out, "\r\n--", boundary, "--\r\n");
  return dsn;
}

}  // namespace ringmx::smtp

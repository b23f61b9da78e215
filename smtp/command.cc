#include "smtp/command.h"

#include <array>

#include "core/ip.h"
#include "smtp/limits.h"

namespace ringmx::smtp {
namespace {

constexpr bool IsBlank(char c) { return c == ' ' || c == '\t'; }

constexpr char ToUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

constexpr bool IsAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5322 atext.
constexpr std::array<bool, 256> MakeAtextTable() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = IsAlnum(static_cast<unsigned char>(c));
  for (char c : std::string_view("!#$%&'*+-/=?^_`{|}~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kAtext = MakeAtextTable();

struct VerbName {
  std::string_view name;  // upper case
  Verb verb;
};

constexpr VerbName kVerbs[] = {
    {"EHLO", Verb::kEhlo},           {"HELO", Verb::kHelo},
    {"MAIL", Verb::kMail},           {"RCPT", Verb::kRcpt},
    {"DATA", Verb::kData},           {"BDAT", Verb::kBdat},
    {"RSET", Verb::kRset},           {"NOOP", Verb::kNoop},
    {"QUIT", Verb::kQuit},           {"VRFY", Verb::kVrfy},
    {"HELP", Verb::kHelp},           {"STARTTLS", Verb::kStartTls},
    {"AUTH", Verb::kAuth},           {"EXPN", Verb::kNotImplemented},
    {"TURN", Verb::kNotImplemented}, {"ETRN", Verb::kNotImplemented},
    {"ATRN", Verb::kNotImplemented}, {"SEND", Verb::kNotImplemented},
    {"SOML", Verb::kNotImplemented}, {"SAML", Verb::kNotImplemented},
    {"VERB", Verb::kNotImplemented}, {"BURL", Verb::kNotImplemented},
};

// Length of a domain (RFC 5321 Domain, with U-labels per RFC 6531) at the start of `text`, or 0.
// Labels are letters, digits, '-' and '_' (seen in the wild), or UTF-8 octets; 1..63 octets each.
// One final '.' is tolerated (policy strips it).
size_t DomainLength(std::string_view text) {
  size_t i = 0;
  size_t label = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (IsAlnum(c) || c == '-' || c == '_' || c >= 0x80) {
      if (++label > 63) return 0;
    } else if (c == '.') {
      if (label == 0) return 0;  // empty label: leading dot or ".."
      label = 0;
    } else {
      break;
    }
    ++i;
  }
  // The loop refused empty labels, so a final '.' here is the one tolerated trailing dot.
  return i;
}

// Length of an address literal "[...]" at the start of `text`, or 0 if it is not one we accept
// (IPv4 dotted quad or "IPv6:" + RFC 4291 text; general address literals are refused).
size_t AddressLiteralLength(std::string_view text) {
  if (text.empty() || text[0] != '[') return 0;
  const size_t close = text.find(']');
  if (close == std::string_view::npos) return 0;
  std::string_view inner = text.substr(1, close - 1);
  if (StartsWithIgnoreCase(inner, "IPv6:")) {
    std::optional<core::IpAddress> a = core::IpAddress::Parse(inner.substr(5));
    // A v4-mapped address is normalised to IPv4 by Parse; it is still valid IPv6 text.
    if (!a || inner.substr(5).find(':') == std::string_view::npos) return 0;
  } else {
    if (inner.find(':') != std::string_view::npos) return 0;
    std::optional<core::IpAddress> a = core::IpAddress::Parse(inner);
    if (!a || !a->is_v4()) return 0;
  }
  return close + 1;
}

}  // namespace

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (ToUpper(text[i]) != ToUpper(prefix[i])) return false;
  }
  return true;
}

CommandLine ParseCommandLine(std::string_view line) {
  CommandLine cmd;
  size_t end = 0;
  while (end < line.size() && !IsBlank(line[end])) ++end;
  const std::string_view word = line.substr(0, end);
  if (word.size() == 4 || word.size() == 8) {
    char upper[8];
    for (size_t i = 0; i < word.size(); ++i) upper[i] = ToUpper(word[i]);
    const std::string_view up(upper, word.size());
    for (const VerbName& v : kVerbs) {
      if (v.name == up) {
        cmd.verb = v.verb;
        break;
      }
    }
  }
  size_t start = end;
  while (start < line.size() && IsBlank(line[start])) ++start;
  size_t stop = line.size();
  while (stop > start && IsBlank(line[stop - 1])) --stop;
  cmd.args = line.substr(start, stop - start);
  return cmd;
}

std::optional<Path> ParsePath(std::string_view text, PathKind kind) {
  Path path;
  if (text.size() < 2 || text[0] != '<') return std::nullopt;
  size_t i = 1;
  if (text[i] == '>') {
    if (kind != PathKind::kReversePath) return std::nullopt;
    path.null = true;
    path.rest = text.substr(2);
    return path;
  }
  // A-d-l ":" (source route): parsed for syntax, then dropped (RFC 5321 section 4.1.1.3).
  if (text[i] == '@') {
    while (true) {
      if (i >= text.size() || text[i] != '@') return std::nullopt;
      ++i;
      const size_t n = DomainLength(text.substr(i));
      if (n == 0) return std::nullopt;
      i += n;
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < text.size() && text[i] == ':') {
        ++i;
        break;
      }
      return std::nullopt;
    }
  }
  const size_t mailbox_start = i;
  // Local-part = Dot-string / Quoted-string.
  if (i < text.size() && text[i] == '"') {
    ++i;
    while (true) {
      if (i >= text.size()) return std::nullopt;
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (c == '"') {
        ++i;
        break;
      }
      if (c == '\\') {  // quoted-pairSMTP = %d92 %d32-126
        if (i + 1 >= text.size()) return std::nullopt;
        const unsigned char q = static_cast<unsigned char>(text[i + 1]);
        if (q < 32 || q > 126) return std::nullopt;
        i += 2;
        continue;
      }
      if (c < 32 || c == 127) return std::nullopt;  // qtextSMTP is %d32-33 / %d35-91 / %d93-126
      ++i;
    }
  } else {
    while (i < text.size()) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      if (!(kAtext[c] || c == '.' || c >= 0x80)) break;
      ++i;
    }
    if (i == mailbox_start) return std::nullopt;
  }
  const size_t local_end = i;
  if (local_end - mailbox_start > kMaxLocalPartOctets) return std::nullopt;
  path.local_part = text.substr(mailbox_start, local_end - mailbox_start);
  if (i < text.size() && text[i] == '>' && kind == PathKind::kForwardPath &&
      path.local_part.size() == 10 && StartsWithIgnoreCase(path.local_part, "postmaster")) {
    // RFC 5321 section 4.1.1.3: "<Postmaster>" without a domain, any case.
  } else {
    if (i >= text.size() || text[i] != '@') return std::nullopt;
    ++i;
    const std::string_view rest = text.substr(i);
    const size_t n =
        (!rest.empty() && rest[0] == '[') ? AddressLiteralLength(rest) : DomainLength(rest);
    if (n == 0 || n > kMaxDomainOctets) return std::nullopt;
    path.domain = rest.substr(0, n);
    i += n;
  }
  if (i >= text.size() || text[i] != '>') return std::nullopt;
  path.mailbox = text.substr(mailbox_start, i - mailbox_start);
  ++i;
  if (i > kMaxPathOctets) return std::nullopt;
  path.rest = text.substr(i);
  for (char c : path.mailbox) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      path.non_ascii = true;
      break;
    }
  }
  if (path.non_ascii && !IsValidUtf8(path.mailbox)) return std::nullopt;
  return path;
}

bool ParamReader::Next(Param& param) {
  size_t i = 0;
  while (i < text_.size() && IsBlank(text_[i])) ++i;
  if (i == text_.size()) {
    text_ = {};
    return false;
  }
  size_t end = i;
  while (end < text_.size() && !IsBlank(text_[end])) ++end;
  const std::string_view token = text_.substr(i, end - i);
  text_ = text_.substr(end);
  const size_t eq = token.find('=');
  if (eq == std::string_view::npos) {
    param = Param{token, {}, false};
  } else {
    param = Param{token.substr(0, eq), token.substr(eq + 1), true};
  }
  return true;
}

bool IsValidUtf8(std::string_view text) {
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace ringmx::smtp

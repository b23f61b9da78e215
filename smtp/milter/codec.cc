// Encoders and the reply decoder of smtp/milter/codec.h. The packet layouts follow Sendmail's
// libmilter (include/libmilter/mfdef.h, libmilter/docs) and Postfix's src/milter/milter8.c.
#include "smtp/milter/codec.h"

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/check.h"
#include "core/strings.h"

namespace ringmx::smtp::milter {
namespace {

void PutU32(uint32_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t GetU32(std::string_view s) {
  return (uint32_t{static_cast<uint8_t>(s[0])} << 24) |
         (uint32_t{static_cast<uint8_t>(s[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[2])} << 8) | uint32_t{static_cast<uint8_t>(s[3])};
}

std::string_view UpToNul(std::string_view s) { return s.substr(0, s.find('\0')); }

// Builds one packet: reserves the length, lets `fill` append the data, then writes the length.
template <typename Fill>
void Packet(char command, std::string& out, Fill fill) {
  const size_t start = out.size();
  out.append(4, '\0');
  out.push_back(command);
  fill();
  const size_t length = out.size() - start - 4;
  std::string len;
  PutU32(static_cast<uint32_t>(length), len);
  out.replace(start, 4, len);
}

void PutString(std::string_view s, std::string& out) {
  out.append(UpToNul(s));
  out.push_back('\0');
}

void Empty(char command, std::string& out) {
  Packet(command, out, [] {});
}

std::string Printable(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7F) return absl::StrCat("'", std::string(1, c), "'");
  return absl::StrFormat("0x%02x", u);
}

absl::Status Malformed(char command, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed milter reply ", Printable(command), ": ", core::Av(what)));
}

// Reads the data of a reply packet front to back.
class Reader {
 public:
  explicit Reader(std::string_view data) : rest_(data) {}
  bool empty() const { return rest_.empty(); }
  bool U32(uint32_t& v) {
    if (rest_.size() < 4) return false;
    v = GetU32(rest_);
    rest_.remove_prefix(4);
    return true;
  }
  // A NUL-terminated string; false if there is no NUL.
  bool String(std::string& s) {
    const size_t nul = rest_.find('\0');
    if (nul == std::string_view::npos) return false;
    s.assign(rest_.substr(0, nul));
    rest_.remove_prefix(nul + 1);
    return true;
  }

 private:
  std::string_view rest_;
};

// A header field name as RFC 5322 section 3.6.8 allows it: printable ASCII except ':'.
bool IsFieldName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E || c == ':') return false;
  }
  return true;
}

// 'y': "ddd x.y.z text", lines joined by CR LF, 4yz or 5yz (Postfix's milter8_valid_smtp_reply).
// Sendmail uses the text as a format string, so milters double '%': "%%" becomes "%" and a single
// '%' is dropped, as Postfix does.
absl::StatusOr<Reply> ParseReplyCode(char command, std::string_view text) {
  std::string plain;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      plain.push_back(text[i]);
    } else if (i + 1 < text.size() && text[i + 1] == '%') {
      plain.push_back('%');
      ++i;
    }
  }
  if (plain.empty()) return Malformed(command, "empty reply text");
  if (plain.find('\n') != std::string::npos || plain.find('\r') != std::string::npos) {
    // Every line end must be CR LF, and the text must not end with one.
    for (size_t i = 0; i < plain.size(); ++i) {
      if ((plain[i] == '\r' && (i + 1 >= plain.size() || plain[i + 1] != '\n')) ||
          (plain[i] == '\n' && (i == 0 || plain[i - 1] != '\r'))) {
        return Malformed(command, "reply lines must be separated by CR LF");
      }
    }
    if (plain.ends_with("\r\n")) return Malformed(command, "reply text ends with a line end");
  }
  plain.append("\r\n");
  Reply reply;
  std::string error;
  if (!ParseOneReply(plain, reply, &error)) {
    return Malformed(command, absl::StrCat("bad reply code text: ", error));
  }
  if (reply.code < 400 || reply.code > 599) {
    return Malformed(command, absl::StrCat("reply code ", reply.code, " is not 4yz or 5yz"));
  }
  return reply;
}

}  // namespace

void AppendOptNeg(uint32_t version, uint32_t actions, uint32_t protocol, std::string& out) {
  Packet(cmd::kOptNeg, out, [&] {
    PutU32(version, out);
    PutU32(actions, out);
    PutU32(protocol, out);
  });
}

void AppendMacros(char command, std::span<const Macro> macros, std::string& out) {
  Packet(cmd::kMacro, out, [&] {
    out.push_back(command);
    for (const Macro& m : macros) {
      PutString(m.name, out);
      PutString(m.value, out);
    }
  });
}

void AppendConnect(std::string_view hostname, Family family, uint16_t port,
                   std::string_view address, std::string& out) {
  Packet(cmd::kConnect, out, [&] {
    PutString(hostname, out);
    out.push_back(static_cast<char>(family));
    if (family == Family::kUnknown) return;
    if (family == Family::kUnix) port = 0;
    out.push_back(static_cast<char>(port >> 8));
    out.push_back(static_cast<char>(port & 0xFF));
    PutString(address, out);
  });
}

void AppendHelo(std::string_view helo, std::string& out) {
  Packet(cmd::kHelo, out, [&] { PutString(helo, out); });
}

void AppendMail(std::string_view path, std::span<const std::string> args, std::string& out) {
  Packet(cmd::kMail, out, [&] {
    PutString(path, out);
    for (const std::string& a : args) PutString(a, out);
  });
}

void AppendRcpt(std::string_view path, std::span<const std::string> args, std::string& out) {
  Packet(cmd::kRcpt, out, [&] {
    PutString(path, out);
    for (const std::string& a : args) PutString(a, out);
  });
}

void AppendData(std::string& out) { Empty(cmd::kData, out); }

void AppendHeader(std::string_view name, std::string_view value, std::string& out) {
  Packet(cmd::kHeader, out, [&] {
    PutString(name, out);
    PutString(value, out);
  });
}

void AppendEoh(std::string& out) { Empty(cmd::kEoh, out); }

void AppendBody(std::string_view data, std::string& out) {
  RINGMX_CHECK(data.size() <= kMaxBodyChunkBytes);
  Packet(cmd::kBody, out, [&] { out.append(data); });
}

void AppendEob(std::string& out) { Empty(cmd::kEob, out); }
void AppendAbort(std::string& out) { Empty(cmd::kAbort, out); }
void AppendQuit(std::string& out) { Empty(cmd::kQuit, out); }
void AppendQuitNc(std::string& out) { Empty(cmd::kQuitNc, out); }

void AppendUnknown(std::string_view command_line, std::string& out) {
  Packet(cmd::kUnknown, out, [&] { PutString(command_line, out); });
}

absl::StatusOr<MilterReply> DecodeReply(char command, std::string_view data) {
  MilterReply r;
  r.command = command;
  const auto no_data = [&](MilterReply::Kind kind) -> absl::StatusOr<MilterReply> {
    if (!data.empty()) {
      return Malformed(command, absl::StrCat("expected no data, got ", data.size(), " bytes"));
    }
    r.kind = kind;
    return r;
  };
  Reader in(data);
  Modification& m = r.modification;
  using Kind = Modification::Kind;
  // Reads `name`, then `value` (both NUL-terminated) and nothing more.
  const auto name_value = [&](std::string_view what) -> absl::Status {
    if (!in.String(m.name)) return Malformed(command, absl::StrCat(core::Av(what), ": no name"));
    if (!in.String(m.value)) return Malformed(command, absl::StrCat(core::Av(what), ": no value"));
    if (!in.empty()) return Malformed(command, "data after the value");
    return absl::OkStatus();
  };
  const auto header = [&](std::string_view what) -> absl::Status {
    if (absl::Status s = name_value(what); !s.ok()) return s;
    if (!IsFieldName(m.name)) {
      return Malformed(command, absl::StrCat(core::Av(what), ": bad header name \"",
                                             absl::CHexEscape(core::Av(m.name)), "\""));
    }
    return absl::OkStatus();
  };
  // An address and optional ESMTP args.
  const auto address = [&](std::string_view what, bool args) -> absl::Status {
    if (!in.String(m.name) || m.name.empty()) {
      return Malformed(command, absl::StrCat(core::Av(what), ": no address"));
    }
    if (args && !in.empty() && !in.String(m.value)) {
      return Malformed(command, absl::StrCat(core::Av(what), ": args without their NUL"));
    }
    if (!in.empty()) return Malformed(command, "data after the address");
    return absl::OkStatus();
  };
  r.kind = MilterReply::Kind::kModification;
  switch (command) {
    case 'a':
      return no_data(MilterReply::Kind::kAccept);
    case 'c':
      return no_data(MilterReply::Kind::kContinue);
    case 'r':
      return no_data(MilterReply::Kind::kReject);
    case 't':
      return no_data(MilterReply::Kind::kTempfail);
    case 'd':
      return no_data(MilterReply::Kind::kDiscard);
    case '4':
      return no_data(MilterReply::Kind::kShutdown);
    case 'p':
      return no_data(MilterReply::Kind::kProgress);
    case 's':
      return no_data(MilterReply::Kind::kSkip);
    case 'y': {
      std::string text;
      if (!in.String(text)) return Malformed(command, "reply text without its NUL");
      if (!in.empty()) return Malformed(command, "data after the reply text");
      absl::StatusOr<Reply> reply = ParseReplyCode(command, text);
      if (!reply.ok()) return reply.status();
      r.kind = MilterReply::Kind::kReplyCode;
      r.reply = *std::move(reply);
      return r;
    }
    case 'O': {
      OptNegReply& o = r.optneg;
      if (!in.U32(o.version) || !in.U32(o.actions) || !in.U32(o.protocol)) {
        return Malformed(command, "shorter than version, actions and protocol (12 bytes)");
      }
      while (!in.empty()) {
        uint32_t stage = 0;
        std::string list;
        if (!in.U32(stage)) return Malformed(command, "truncated macro list stage");
        if (!in.String(list)) return Malformed(command, "macro list without its NUL");
        // Postfix ignores unknown stages; so do we.
        if (stage < kMacroStages) o.macros[stage] = std::move(list);
      }
      r.kind = MilterReply::Kind::kOptNeg;
      return r;
    }
    case 'h':
      m.kind = Kind::kAddHeader;
      if (absl::Status s = header("add header"); !s.ok()) return s;
      return r;
    case 'i':
    case 'm':
      m.kind = command == 'i' ? Kind::kInsertHeader : Kind::kChangeHeader;
      if (!in.U32(m.index)) return Malformed(command, "no header index");
      if (absl::Status s = header(command == 'i' ? "insert header" : "change header"); !s.ok()) {
        return s;
      }
      return r;
    case 'e':
      m.kind = Kind::kChangeSender;
      if (absl::Status s = address("change sender", true); !s.ok()) return s;
      return r;
    case '+':
    case '2':
      m.kind = Kind::kAddRecipient;
      if (absl::Status s = address("add recipient", command == '2'); !s.ok()) return s;
      return r;
    case '-':
      m.kind = Kind::kDeleteRecipient;
      if (absl::Status s = address("delete recipient", false); !s.ok()) return s;
      return r;
    case 'b':
      m.kind = Kind::kReplaceBody;
      m.value.assign(data);
      return r;
    case 'q':
      m.kind = Kind::kQuarantine;
      if (!in.String(m.value)) return Malformed(command, "reason without its NUL");
      if (!in.empty()) return Malformed(command, "data after the reason");
      return r;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown milter reply ", Printable(command), " (", data.size(), " data bytes)"));
}

absl::StatusOr<std::optional<MilterReply>> ReplyDecoder::Next(std::string_view& input) {
  if (!error_.ok()) return error_;
  if (buffer_.size() < 4) {
    const size_t take = std::min(4 - buffer_.size(), input.size());
    buffer_.append(input.substr(0, take));
    input.remove_prefix(take);
    if (buffer_.size() < 4) return std::nullopt;
  }
  const uint32_t length = GetU32(buffer_);
  if (length == 0) {
    error_ = absl::InvalidArgumentError("malformed milter reply: packet length 0 (no command)");
    return error_;
  }
  if (length > kMaxReplyPacketBytes) {
    error_ = absl::InvalidArgumentError(absl::StrCat("milter reply too large: packet of ", length,
                                                     " bytes, at most ", kMaxReplyPacketBytes));
    return error_;
  }
  const size_t want = 4 + size_t{length};
  const size_t take = std::min(want - buffer_.size(), input.size());
  buffer_.append(input.substr(0, take));
  input.remove_prefix(take);
  if (buffer_.size() < want) return std::nullopt;
  absl::StatusOr<MilterReply> reply = DecodeReply(buffer_[4], std::string_view(buffer_).substr(5));
  buffer_.clear();
  if (!reply.ok()) {
    error_ = reply.status();
    return error_;
  }
  return std::optional<MilterReply>(*std::move(reply));
}

}  // namespace ringmx::smtp::milter

#include "smtp/dsn_params.h"

#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::smtp {
namespace {

bool IsXchar(unsigned char c) { return c >= '!' && c <= '~' && c != '+' && c != '='; }

int UpperHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

// RFC 5321 atext (the octets of an atom).
bool IsAtext(unsigned char c) {
  if (absl::ascii_isalnum(c)) return true;
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

DsnParamError Invalid(std::string_view keyword, std::string_view why) {
  return DsnParamError{
      absl::StrCat("501 5.5.4 Invalid ", core::Av(keyword), " parameter: ", core::Av(why))};
}

DsnParamError Duplicate(std::string_view keyword) {
  return DsnParamError{absl::StrCat("501 5.5.4 Duplicate ", core::Av(keyword), " parameter")};
}

bool Is(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(core::Av(a), core::Av(b));
}

}  // namespace

std::optional<std::string> DecodeXtext(std::string_view xtext) {
  std::string out;
  out.reserve(xtext.size());
  for (size_t i = 0; i < xtext.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(xtext[i]);
    if (c == '+') {
      if (xtext.size() - i < 3) return std::nullopt;
      const int hi = UpperHexValue(xtext[i + 1]);
      const int lo = UpperHexValue(xtext[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (IsXchar(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string EncodeXtext(std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (IsXchar(c)) {
      out.push_back(ch);
    } else {
      out.push_back('+');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string DsnNotify::ToParameterValue() const {
  if (!given) return "";
  if (never) return "NEVER";
  std::string out;
  auto add = [&out](std::string_view word) {
    if (!out.empty()) out.push_back(',');
    out.append(word);
  };
  if (flags & kSuccess) add("SUCCESS");
  if (flags & kFailure) add("FAILURE");
  if (flags & kDelay) add("DELAY");
  return out;
}

std::string DsnOrcpt::ToParameterValue() const {
  return absl::StrCat(addr_type, ";", EncodeXtext(address));
}

std::variant<DsnNotify, DsnParamError> ParseNotify(std::optional<std::string_view> value) {
  static constexpr std::string_view kKeyword = "NOTIFY";
  if (!value) return Invalid(kKeyword, "a value is required");
  if (value->empty()) return Invalid(kKeyword, "empty value");
  DsnNotify notify;
  notify.given = true;
  std::string_view rest = *value;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view word = rest.substr(0, comma);
    if (Is(word, "NEVER")) {
      notify.never = true;
    } else if (Is(word, "SUCCESS")) {
      notify.flags |= DsnNotify::kSuccess;
    } else if (Is(word, "FAILURE")) {
      notify.flags |= DsnNotify::kFailure;
    } else if (Is(word, "DELAY")) {
      notify.flags |= DsnNotify::kDelay;
    } else if (word.empty()) {
      return Invalid(kKeyword, "empty list element");
    } else {
      return Invalid(kKeyword, "expected NEVER or a list of SUCCESS, FAILURE, DELAY");
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  // RFC 3461 section 4.1: "NEVER" stands alone.
  if (notify.never && notify.flags != 0) {
    return Invalid(kKeyword, "NEVER cannot be combined with other values");
  }
  return notify;
}

std::variant<DsnRet, DsnParamError> ParseRet(std::optional<std::string_view> value) {
  static constexpr std::string_view kKeyword = "RET";
  if (!value) return Invalid(kKeyword, "a value is required");
  if (Is(*value, "FULL")) return DsnRet::kFull;
  if (Is(*value, "HDRS")) return DsnRet::kHdrs;
  return Invalid(kKeyword, "expected FULL or HDRS");
}

std::variant<std::string, DsnParamError> ParseEnvid(std::optional<std::string_view> value) {
  static constexpr std::string_view kKeyword = "ENVID";
  if (!value) return Invalid(kKeyword, "a value is required");
  std::optional<std::string> decoded = DecodeXtext(*value);
  if (!decoded) return Invalid(kKeyword, "not xtext (RFC 3461 section 4)");
  if (decoded->empty()) return Invalid(kKeyword, "empty value");
  if (decoded->size() > kMaxEnvidBytes) return Invalid(kKeyword, "longer than 100 characters");
  // RFC 3461 section 4.4: printable US-ASCII only.
  if (!IsPrintableAscii(*decoded)) return Invalid(kKeyword, "not printable US-ASCII");
  return *std::move(decoded);
}

std::variant<DsnOrcpt, DsnParamError> ParseOrcpt(std::optional<std::string_view> value) {
  static constexpr std::string_view kKeyword = "ORCPT";
  if (!value) return Invalid(kKeyword, "a value is required");
  if (value->size() > kMaxOrcptBytes) return Invalid(kKeyword, "longer than 500 characters");
  const size_t semi = value->find(';');
  if (semi == std::string_view::npos) return Invalid(kKeyword, "expected addr-type;address");
  const std::string_view type = value->substr(0, semi);
  if (type.empty()) return Invalid(kKeyword, "empty address type");
  for (char c : type) {
    if (!IsAtext(static_cast<unsigned char>(c))) return Invalid(kKeyword, "bad address type");
  }
  std::optional<std::string> address = DecodeXtext(value->substr(semi + 1));
  if (!address) return Invalid(kKeyword, "address is not xtext (RFC 3461 section 4)");
  if (address->empty()) return Invalid(kKeyword, "empty address");
  // RFC 3461 section 4.2: printable US-ASCII before encoding.
  if (!IsPrintableAscii(*address)) return Invalid(kKeyword, "address is not printable US-ASCII");
  return DsnOrcpt{std::string(type), *std::move(address)};
}

bool IsDsnMailParam(std::string_view keyword) { return Is(keyword, "RET") || Is(keyword, "ENVID"); }

bool IsDsnRcptParam(std::string_view keyword) {
  return Is(keyword, "NOTIFY") || Is(keyword, "ORCPT");
}

std::optional<DsnParamError> ApplyDsnMailParam(std::string_view keyword,
                                               std::optional<std::string_view> value,
                                               DsnMailParams& params) {
  if (Is(keyword, "RET")) {
    if (params.ret != DsnRet::kUnspecified) return Duplicate("RET");
    auto parsed = ParseRet(value);
    if (auto* error = std::get_if<DsnParamError>(&parsed)) return std::move(*error);
    params.ret = std::get<DsnRet>(parsed);
    return std::nullopt;
  }
  if (Is(keyword, "ENVID")) {
    if (params.envid) return Duplicate("ENVID");
    auto parsed = ParseEnvid(value);
    if (auto* error = std::get_if<DsnParamError>(&parsed)) return std::move(*error);
    params.envid = std::move(std::get<std::string>(parsed));
    return std::nullopt;
  }
  return DsnParamError{"501 5.5.4 Unknown DSN parameter"};
}

std::optional<DsnParamError> ApplyDsnRcptParam(std::string_view keyword,
                                               std::optional<std::string_view> value,
                                               DsnRcptParams& params) {
  if (Is(keyword, "NOTIFY")) {
    if (params.notify.given) return Duplicate("NOTIFY");
    auto parsed = ParseNotify(value);
    if (auto* error = std::get_if<DsnParamError>(&parsed)) return std::move(*error);
    params.notify = std::get<DsnNotify>(parsed);
    return std::nullopt;
  }
  if (Is(keyword, "ORCPT")) {
    if (params.orcpt) return Duplicate("ORCPT");
    auto parsed = ParseOrcpt(value);
    if (auto* error = std::get_if<DsnParamError>(&parsed)) return std::move(*error);
    params.orcpt = std::move(std::get<DsnOrcpt>(parsed));
    return std::nullopt;
  }
  return DsnParamError{"501 5.5.4 Unknown DSN parameter"};
}

}  // namespace ringmx::smtp

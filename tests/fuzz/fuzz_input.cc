#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

bool InRange(std::string_view s, size_t i, uint8_t lo, uint8_t hi) {
  if (i >= s.size()) return false;
  const uint8_t b = static_cast<uint8_t>(s[i]);
  return b >= lo && b <= hi;
}

}  // namespace

size_t ReferenceUtf8Length(std::string_view s) {
  if (s.empty()) return 0;
  const uint8_t b0 = static_cast<uint8_t>(s[0]);
  // RFC 3629 section 4:
  //   UTF8-1 = %x00-7F
  //   UTF8-2 = %xC2-DF UTF8-tail
  //   UTF8-3 = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
  //            %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
  //   UTF8-4 = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
  //            %xF4 %x80-8F 2( UTF8-tail )
  const auto tail = [&](size_t i) { return InRange(s, i, 0x80, 0xBF); };
  if (b0 <= 0x7F) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return tail(1) ? 2 : 0;
  if (b0 == 0xE0) return InRange(s, 1, 0xA0, 0xBF) && tail(2) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return tail(1) && tail(2) ? 3 : 0;
  if (b0 == 0xED) return InRange(s, 1, 0x80, 0x9F) && tail(2) ? 3 : 0;
  if (b0 == 0xF0) return InRange(s, 1, 0x90, 0xBF) && tail(2) && tail(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return tail(1) && tail(2) && tail(3) ? 4 : 0;
  if (b0 == 0xF4) return InRange(s, 1, 0x80, 0x8F) && tail(2) && tail(3) ? 4 : 0;
  return 0;
}

bool ReferenceIsUtf8(std::string_view s) {
  while (!s.empty()) {
    const size_t n = ReferenceUtf8Length(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

std::string ReferenceReplaceInvalidUtf8(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    const size_t n = ReferenceUtf8Length(s);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");  // U+FFFD
      s.remove_prefix(1);
    } else {
      out.append(s.substr(0, n));
      s.remove_prefix(n);
    }
  }
  return out;
}

}  // namespace ringmx::fuzz

#include "smtp/reply.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::smtp {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Length of a run of 1..3 digits at `pos`, 0 if none (or more than 3).
size_t DigitRun(std::string_view s, size_t pos) {
  size_t n = 0;
  while (pos + n < s.size() && IsDigit(s[pos + n])) ++n;
  return n <= 3 ? n : 0;
}

// The length of an enhanced status code "c.sss.ddd" (RFC 3463) of class `cls` at the start of
// `text`, followed by the end or a space; 0 if there is none.
size_t EnhancedLength(std::string_view text, char cls) {
  if (text.size() < 5 || text[0] != cls || text[1] != '.') return 0;
  const size_t subject = DigitRun(text, 2);
  if (subject == 0 || 2 + subject >= text.size() || text[2 + subject] != '.') return 0;
  const size_t detail = DigitRun(text, 3 + subject);
  if (detail == 0) return 0;
  const size_t end = 3 + subject + detail;
  if (end < text.size() && text[end] != ' ') return 0;
  return end;
}

// The keyword line of an EHLO reply for `keyword`, or nullptr.
const std::string* FindKeyword(const Reply& reply, std::string_view keyword) {
  for (size_t i = 1; i < reply.lines.size(); ++i) {
    const std::string& line = reply.lines[i];
    if (line.size() < keyword.size()) continue;
    if (!absl::EqualsIgnoreCase(core::Av(std::string_view(line).substr(0, keyword.size())),
                                core::Av(keyword))) {
      continue;
    }
    if (line.size() == keyword.size() || line[keyword.size()] == ' ') return &line;
  }
  return nullptr;
}

}  // namespace

std::string Reply::Text() const {
  std::string out;
  const char cls = static_cast<char>('0' + code / 100);
  for (const std::string& line : lines) {
    std::string_view text = line;
    if (const size_t n = EnhancedLength(text, cls); n > 0) {
      text.remove_prefix(n);
      if (!text.empty()) text.remove_prefix(1);
    }
    if (!out.empty() && !text.empty()) out.push_back(' ');
    out.append(text);
  }
  return out;
}

std::string Reply::OneLine() const {
  std::string out = std::to_string(code);
  for (size_t i = 0; i < lines.size(); ++i) {
    out.append(i == 0 ? " " : "; ");
    out.append(lines[i]);
  }
  return out;
}

std::string Reply::ToWire() const {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out.append(std::to_string(code));
    if (i + 1 < lines.size()) {
      out.push_back('-');
    } else if (!lines[i].empty()) {
      out.push_back(' ');
    }
    out.append(lines[i]);
    out.append("\r\n");
  }
  return out;
}

bool Reply::HasKeyword(std::string_view keyword) const {
  return FindKeyword(*this, keyword) != nullptr;
}

std::string Reply::KeywordParams(std::string_view keyword) const {
  const std::string* line = FindKeyword(*this, keyword);
  if (line == nullptr || line->size() <= keyword.size()) return "";
  return std::string(
      absl::StripAsciiWhitespace(core::Av(std::string_view(*line).substr(keyword.size()))));
}

ReplyParser::Result ReplyParser::Fail(std::string why) {
  error_ = std::move(why);
  line_.clear();
  partial_ = Reply{};
  return Result::kError;
}

ReplyParser::Result ReplyParser::Parse(std::string_view& input, Reply& reply) {
  if (failed()) return Result::kError;
  while (!input.empty()) {
    const char c = input.front();
    if (saw_cr_) {
      if (c != '\n') return Fail("a CR not followed by LF in a reply line");
      saw_cr_ = false;
      input.remove_prefix(1);
      const Result r = TakeLine(reply);
      if (r != Result::kNeedMore) return r;
      continue;
    }
    if (c == '\r') {
      saw_cr_ = true;
      input.remove_prefix(1);
      continue;
    }
    if (c == '\n') {  // a bare LF ends the line too
      input.remove_prefix(1);
      const Result r = TakeLine(reply);
      if (r != Result::kNeedMore) return r;
      continue;
    }
    if (c == '\0') return Fail("a NUL in a reply line");
    // Take the run of ordinary bytes at once.
    size_t n = 0;
    while (n < input.size() && input[n] != '\r' && input[n] != '\n' && input[n] != '\0') ++n;
    // The line holds 3 digits and a separator before the text.
    const size_t max = limits_.max_line_bytes + 4;
    if (line_.size() + n > max) {
      return Fail(absl::StrCat("a reply line longer than ", limits_.max_line_bytes, " octets"));
    }
    line_.append(input.data(), n);
    input.remove_prefix(n);
  }
  return Result::kNeedMore;
}

ReplyParser::Result ReplyParser::TakeLine(Reply& reply) {
  const std::string_view line = line_;
  // RFC 5321 section 4.2: Reply-code = %x32-35 %x30-35 %x30-39; we accept any second digit.
  if (line.size() < 3 || line[0] < '2' || line[0] > '5' || !IsDigit(line[1]) || !IsDigit(line[2])) {
    return Fail("a reply line that does not start with a reply code");
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') {
    return Fail("a reply code followed by neither a space nor a hyphen");
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  if (partial_.lines.empty()) {
    partial_.code = code;
  } else if (code != partial_.code) {
    // RFC 5321 section 4.2.1: every line of a multiline reply carries the same code.
    return Fail("a multiline reply whose lines carry different codes");
  }
  if (partial_.lines.size() >= limits_.max_lines) {
    return Fail(absl::StrCat("a reply of more than ", limits_.max_lines, " lines"));
  }
  const bool more = line.size() > 3 && line[3] == '-';
  const char cls = line[0];
  partial_.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
  line_.clear();
  if (more) return Result::kNeedMore;
  const std::string& first = partial_.lines.front();
  const size_t n = EnhancedLength(first, cls);
  partial_.enhanced = first.substr(0, n);
  reply = std::move(partial_);
  partial_ = Reply{};
  return Result::kReply;
}

bool ParseOneReply(std::string_view bytes, Reply& reply, std::string* error) {
  ReplyParser parser;
  const ReplyParser::Result r = parser.Parse(bytes, reply);
  if (r == ReplyParser::Result::kReply && bytes.empty()) return true;
  if (error != nullptr) {
    if (r == ReplyParser::Result::kError) {
      *error = parser.error();
    } else if (r == ReplyParser::Result::kNeedMore) {
      *error = "an incomplete reply";
    } else {
      *error = "bytes after the reply";
    }
  }
  return false;
}

}  // namespace ringmx::smtp

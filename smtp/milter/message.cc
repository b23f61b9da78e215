// Header splitting and milter changes (smtp/milter/message.h).
#include "smtp/milter/message.h"

#include <stddef.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

#include "core/strings.h"

namespace ringmx::smtp::milter {
namespace {

// The line starting at `pos`: its end (after the LF, or the end of `s`).
size_t LineEnd(std::string_view s, size_t pos) {
  const size_t lf = s.find('\n', pos);
  return lf == std::string_view::npos ? s.size() : lf + 1;
}

// The line's content without its line end.
std::string_view Content(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// Length of the field name when `line` starts a field (name, optional WSP, ':'), else 0.
size_t FieldNameLength(std::string_view line, size_t& colon) {
  size_t i = 0;
  while (i < line.size()) {
    const unsigned char u = static_cast<unsigned char>(line[i]);
    if (u < 0x21 || u > 0x7E || line[i] == ':') break;
    ++i;
  }
  const size_t name = i;
  if (name == 0) return 0;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  if (i >= line.size() || line[i] != ':') return 0;
  colon = i;
  return name;
}

bool StartsWithWsp(std::string_view line) {
  return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

// One field of the message being rebuilt: either kept as it was or written anew.
struct Field {
  std::string name;
  std::string raw;  // the whole field, ending in CR LF
};

std::string FieldText(std::string_view name, std::string_view value, bool leading_space) {
  std::string out(name);
  out.push_back(':');
  if (!leading_space) out.push_back(' ');
  size_t start = 0;
  bool first = true;
  while (true) {
    const size_t lf = value.find('\n', start);
    std::string_view line =
        value.substr(start, lf == std::string_view::npos ? std::string_view::npos : lf - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!first) {
      out.append("\r\n");
      if (!StartsWithWsp(line)) out.push_back(' ');
    }
    for (char c : line) out.push_back(c == '\r' ? ' ' : c);
    first = false;
    if (lf == std::string_view::npos) break;
    start = lf + 1;
  }
  out.append("\r\n");
  return out;
}

std::string WithCrLf(std::string_view raw) {
  std::string out(raw);
  if (!out.ends_with("\n")) out.append("\r\n");
  return out;
}

// Bare LF -> CR LF; ends with CR LF unless empty.
std::string NormaliseBody(std::string_view body) {
  std::string out;
  out.reserve(body.size() + body.size() / 32 + 2);
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) out.push_back('\r');
    out.push_back(body[i]);
  }
  if (!out.empty() && !out.ends_with("\r\n")) {
    if (out.back() == '\r') {
      out.push_back('\n');
    } else {
      out.append("\r\n");
    }
  }
  return out;
}

std::string StripBrackets(std::string_view address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = address.substr(1, address.size() - 2);
  }
  return std::string(address);
}

}  // namespace

SplitMessage SplitHeaders(std::string_view message) {
  SplitMessage out;
  size_t pos = 0;
  size_t field_start = std::string_view::npos;  // start of the field being read
  std::string_view name;
  size_t value_start = 0;
  const auto finish_field = [&](size_t end) {
    if (field_start == std::string_view::npos) return;
    std::string_view raw = message.substr(field_start, end - field_start);
    std::string_view value = message.substr(value_start, end - value_start);
    // The value excludes the field's last line end.
    if (value.ends_with("\n")) value.remove_suffix(1);
    if (value.ends_with("\r")) value.remove_suffix(1);
    out.fields.push_back(HeaderField{name, value, raw});
    field_start = std::string_view::npos;
  };
  while (pos < message.size()) {
    const size_t end = LineEnd(message, pos);
    const std::string_view line = Content(message.substr(pos, end - pos));
    if (line.empty()) {
      finish_field(pos);
      out.header_end = pos;
      out.body_offset = end;
      return out;
    }
    if (StartsWithWsp(line) && field_start != std::string_view::npos) {
      pos = end;
      continue;
    }
    size_t colon = 0;
    const size_t name_length = FieldNameLength(line, colon);
    if (name_length == 0) break;  // neither a field nor a fold: the body starts here
    finish_field(pos);
    field_start = pos;
    name = message.substr(pos, name_length);
    value_start = pos + colon + 1;
    pos = end;
  }
  finish_field(pos);
  out.header_end = pos;
  out.body_offset = pos;
  return out;
}

std::string_view ClientMessage(std::string_view stored) {
  const SplitMessage split = SplitHeaders(stored);
  if (split.fields.empty()) return stored;
  const std::string_view first = split.fields.front().raw;
  return stored.substr(first.size());
}

std::string MilterHeaderValue(std::string_view raw_value, bool leading_space) {
  if (!leading_space && !raw_value.empty() && raw_value.front() == ' ') raw_value.remove_prefix(1);
  std::string out;
  out.reserve(raw_value.size());
  for (size_t i = 0; i < raw_value.size(); ++i) {
    if (raw_value[i] == '\r' && i + 1 < raw_value.size() && raw_value[i + 1] == '\n') continue;
    out.push_back(raw_value[i]);
  }
  return out;
}

ModifiedHeaders ModifyHeaderSection(std::string_view header_section,
                                    std::span<const Modification> mods, bool leading_space) {
  ModifiedHeaders result;
  const SplitMessage split = SplitHeaders(header_section);
  std::vector<Field> fields;
  fields.reserve(split.fields.size() + mods.size());
  for (const HeaderField& f : split.fields) {
    fields.push_back(Field{std::string(f.name), WithCrLf(f.raw)});
  }
  std::optional<std::string> new_body;
  bool headers_changed = false;

  for (const Modification& m : mods) {
    using Kind = Modification::Kind;
    switch (m.kind) {
      case Kind::kAddHeader:
        fields.push_back(Field{m.name, FieldText(m.name, m.value, leading_space)});
        headers_changed = true;
        break;
      case Kind::kInsertHeader: {
        const size_t at = std::min<size_t>(m.index, fields.size());
        fields.insert(fields.begin() + static_cast<ptrdiff_t>(at),
                      Field{m.name, FieldText(m.name, m.value, leading_space)});
        headers_changed = true;
        break;
      }
      case Kind::kChangeHeader: {
        const uint32_t want = m.index == 0 ? 1 : m.index;
        uint32_t seen = 0;
        auto it = fields.begin();
        for (; it != fields.end(); ++it) {
          if (absl::EqualsIgnoreCase(core::Av(it->name), core::Av(m.name)) && ++seen == want) break;
        }
        if (it != fields.end()) {
          if (m.value.empty()) {
            fields.erase(it);
          } else {
            it->raw = FieldText(it->name, m.value, leading_space);
          }
          headers_changed = true;
        } else if (!m.value.empty()) {
          fields.push_back(Field{m.name, FieldText(m.name, m.value, leading_space)});
          headers_changed = true;
        }
        break;
      }
      case Kind::kChangeSender:
        result.envelope.sender = StripBrackets(m.name);
        result.envelope.sender_args = m.value;
        break;
      case Kind::kAddRecipient:
        result.envelope.added_recipients.push_back({StripBrackets(m.name), m.value});
        break;
      case Kind::kDeleteRecipient:
        result.envelope.deleted_recipients.push_back(StripBrackets(m.name));
        break;
      case Kind::kReplaceBody:
        if (!new_body) new_body.emplace();
        new_body->append(m.value);
        break;
      case Kind::kQuarantine:
        result.envelope.quarantine = m.value;
        break;
    }
  }

  if (!headers_changed && !new_body) {
    result.header_section.assign(header_section);
    return result;
  }
  result.changed = true;
  std::string& out = result.header_section;
  out.reserve(header_section.size() + 256);
  for (const Field& f : fields) out.append(f.raw);
  if (new_body) {
    // A new body always follows an empty line.
    out.append("\r\n");
    result.body = NormaliseBody(*new_body);
  } else {
    // The separator as it was (the empty line, or nothing when a non-field line started the
    // body).
    out.append(header_section.substr(split.header_end, split.body_offset - split.header_end));
  }
  return result;
}

ModifiedMessage ApplyModifications(std::string_view stored, std::span<const Modification> mods,
                                   bool leading_space) {
  ModifiedMessage result;
  const SplitMessage outer = SplitHeaders(stored);
  const std::string_view received =
      outer.fields.empty() ? std::string_view() : outer.fields.front().raw;
  const std::string_view client = stored.substr(received.size());
  const SplitMessage split = SplitHeaders(client);
  ModifiedHeaders headers =
      ModifyHeaderSection(client.substr(0, split.body_offset), mods, leading_space);
  result.envelope = std::move(headers.envelope);
  if (!headers.changed) {
    result.bytes.assign(stored);
    return result;
  }
  result.bytes_changed = true;
  std::string& out = result.bytes;
  const std::string_view body =
      headers.body ? std::string_view(*headers.body) : client.substr(split.body_offset);
  out.reserve(received.size() + headers.header_section.size() + body.size() + 2);
  out.append(received);
  if (!received.empty() && !received.ends_with("\n")) out.append("\r\n");
  out.append(headers.header_section);
  out.append(body);
  return result;
}

}  // namespace ringmx::smtp::milter

#include "core/recipient_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

#include "core/internal/config_text.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"

namespace ringmx::core {
namespace {

// Far above any real site's list; stops a wrong path (a disk image, /dev/zero) from eating memory.
constexpr size_t kMaxFileBytes = size_t{256} << 20;
// Domain names are at most 253 octets (core/internal/config_text.h); one more for a final dot.
constexpr size_t kMaxDomainBytes = 254;

constexpr bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string Quote(std::string_view text) {
  // Bounded: a line may be long, the message should stay readable.
  const std::string_view shown = text.substr(0, 100);
  return absl::StrCat("\"", absl::CHexEscape(Av(shown)), text.size() > 100 ? "...\"" : "\"");
}

// Checks the local part of an address; "" when valid, else what is wrong with it.
std::string CheckLocalPart(std::string_view local) {
  if (local.size() > RecipientTable::kMaxLocalPartBytes) {
    return absl::StrCat("local part has ", local.size(), " octets, at most ",
                        RecipientTable::kMaxLocalPartBytes, " are allowed (RFC 5321)");
  }
  for (char c : local) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return "control character in the local part";
  }
  return "";
}

}  // namespace

absl::StatusOr<RecipientTable> RecipientTable::Parse(std::string_view text,
                                                     std::string_view source) {
  RecipientTable table;
  const auto error = [&](uint32_t line, std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(Av(source), ":", line, ": ", Av(what)));
  };
  uint32_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line_number;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) return error(line_number, "NUL character");

    while (!line.empty() && IsBlank(line.front())) line.remove_prefix(1);
    if (line.empty() || line.front() == '#') continue;
    // The address is the first blank-free token; only a comment may follow it.
    size_t token_end = 0;
    while (token_end < line.size() && !IsBlank(line[token_end])) ++token_end;
    const std::string_view address = line.substr(0, token_end);
    std::string_view rest = line.substr(token_end);
    while (!rest.empty() && IsBlank(rest.front())) rest.remove_prefix(1);
    if (!rest.empty() && rest.front() != '#') {
      return error(line_number, absl::StrCat("one address a line; unexpected ", Quote(rest),
                                             " after ", Quote(address)));
    }

    if (address.find_first_of("<>") != std::string_view::npos) {
      return error(line_number,
                   absl::StrCat("write the address without angle brackets: ", Quote(address)));
    }
    const size_t at = address.rfind('@');
    if (at == std::string_view::npos) {
      return error(line_number,
                   absl::StrCat("expected \"user@domain\" or \"@domain\", got ", Quote(address)));
    }
    const std::string_view local = address.substr(0, at);
    std::string domain = internal::CanonicalDomain(address.substr(at + 1));
    if (!internal::IsDomainName(domain, 1)) {
      return error(line_number,
                   absl::StrCat("expected a domain name after '@', got ",
                                Quote(address.substr(at + 1)), " in ", Quote(address)));
    }
    if (const std::string problem = CheckLocalPart(local); !problem.empty()) {
      return error(line_number, absl::StrCat(problem, ": ", Quote(address)));
    }
    auto [it, inserted] = table.domains_.try_emplace(std::move(domain));
    DomainEntry& entry = it->second;
    if (inserted) entry.first_line = line_number;
    if (local.empty()) {
      entry.catch_all = true;
    } else if (entry.local_parts.insert(absl::AsciiStrToLower(Av(local))).second) {
      ++table.address_count_;
    }
  }
  return table;
}

absl::StatusOr<std::shared_ptr<const RecipientTable>> RecipientTable::LoadFile(
    const std::string& path) {
  RINGMX_ASSIGN_OR_RETURN(
      std::string text,
      ReadWholeFile(path, absl::StrCat("read recipients file ", Quote(path)), kMaxFileBytes));
  absl::StatusOr<RecipientTable> table = Parse(text, path);
  if (!table.ok()) return table.status();
  return std::make_shared<const RecipientTable>(*std::move(table));
}

RecipientTable::Lookup RecipientTable::Find(std::string_view local_part,
                                            std::string_view domain) const {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty() || domain.size() > kMaxDomainBytes) return Lookup::kNoList;
  char domain_buffer[kMaxDomainBytes];
  const auto it = domains_.find(Av(AsciiLowerInto(domain, domain_buffer)));
  if (it == domains_.end()) return Lookup::kNoList;
  const DomainEntry& entry = it->second;
  if (entry.catch_all) return Lookup::kListed;
  if (local_part.empty() || local_part.size() > kMaxLocalPartBytes) return Lookup::kUnknown;
  char local_buffer[kMaxLocalPartBytes];
  return entry.local_parts.contains(Av(AsciiLowerInto(local_part, local_buffer)))
             ? Lookup::kListed
             : Lookup::kUnknown;
}

std::vector<RecipientTable::DomainLine> RecipientTable::Domains() const {
  std::vector<DomainLine> out;
  out.reserve(domains_.size());
  for (const auto& [domain, entry] : domains_) out.push_back(DomainLine{domain, entry.first_line});
  std::sort(out.begin(), out.end(),
            [](const DomainLine& a, const DomainLine& b) { return a.line < b.line; });
  return out;
}

}  // namespace ringmx::core

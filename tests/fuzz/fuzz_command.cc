// Fuzz target: the command-line parser (smtp/command.h) and the IP address parser behind address
// literals (core/ip.h). Every view the parser returns must point into the caller's text, every
// documented limit must hold, UTF-8 validation must agree with an RFC 3629 reference, and a parsed
// address must print back to text that parses to the same address.
//
// Input: [selector] then the text of one command line (or path, or parameter list).
#include <stddef.h>
#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/check.h"
#include "core/ip.h"
#include "smtp/command.h"
#include "smtp/limits.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

bool Inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

void CheckCommandLine(std::string_view line) {
  const smtp::CommandLine cmd = smtp::ParseCommandLine(line);
  RINGMX_CHECK(Inside(cmd.args, line));
  if (!cmd.args.empty()) {
    RINGMX_CHECK(!IsBlank(cmd.args.front()) && !IsBlank(cmd.args.back()));
  }
  if (cmd.verb != smtp::Verb::kUnknown) {
    // A known verb is the whole first word: 4 letters, or STARTTLS.
    const size_t word = cmd.verb == smtp::Verb::kStartTls ? 8 : 4;
    RINGMX_CHECK(line.size() >= word);
    RINGMX_CHECK(line.size() == word || IsBlank(line[word]));
    for (size_t i = 0; i < word; ++i) {
      const char c = line[i];
      RINGMX_CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
    }
  }
  RINGMX_CHECK(smtp::StartsWithIgnoreCase(line, line.substr(0, line.size() / 2)));
}

void CheckPath(std::string_view text, smtp::PathKind kind) {
  const std::optional<smtp::Path> path = smtp::ParsePath(text, kind);
  if (!path) return;
  RINGMX_CHECK(text.size() >= 2 && text[0] == '<');
  RINGMX_CHECK(Inside(path->mailbox, text) && Inside(path->local_part, text) &&
               Inside(path->domain, text) && Inside(path->rest, text));
  // `rest` is what follows the closing '>', and the path up to it is within the limit.
  RINGMX_CHECK(path->rest.data() + path->rest.size() == text.data() + text.size());
  const size_t consumed = text.size() - path->rest.size();
  RINGMX_CHECK(consumed >= 2 && text[consumed - 1] == '>');
  if (path->null) {
    RINGMX_CHECK(kind == smtp::PathKind::kReversePath && consumed == 2);
    RINGMX_CHECK(path->mailbox.empty() && path->local_part.empty() && path->domain.empty());
    return;
  }
  RINGMX_CHECK(consumed <= smtp::kMaxPathOctets);
  RINGMX_CHECK(!path->local_part.empty() && path->local_part.size() <= smtp::kMaxLocalPartOctets);
  RINGMX_CHECK(path->domain.size() <= smtp::kMaxDomainOctets);
  // mailbox = local-part [ "@" domain ], ending right before '>'.
  RINGMX_CHECK(path->mailbox.data() + path->mailbox.size() == text.data() + consumed - 1);
  RINGMX_CHECK(path->mailbox.substr(0, path->local_part.size()) == path->local_part);
  if (path->domain.empty()) {
    RINGMX_CHECK(kind == smtp::PathKind::kForwardPath);
    RINGMX_CHECK(path->mailbox == path->local_part && path->local_part.size() == 10);
  } else {
    RINGMX_CHECK(path->mailbox.size() == path->local_part.size() + 1 + path->domain.size());
    RINGMX_CHECK(path->mailbox[path->local_part.size()] == '@');
  }
  bool high = false;
  for (char c : path->mailbox) {
    high = high || static_cast<unsigned char>(c) >= 0x80;
    // No control octets: quoted pairs and qtext are printable, atext and domains are too.
    RINGMX_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F);
  }
  RINGMX_CHECK(high == path->non_ascii);
  if (high) RINGMX_CHECK(ReferenceIsUtf8(path->mailbox));
  // The parser is a function of the text: the mailbox alone, bracketed again, parses the same.
  std::string again(1, '<');
  again.append(path->mailbox);
  again.push_back('>');
  const std::optional<smtp::Path> reparsed = smtp::ParsePath(again, kind);
  RINGMX_CHECK(reparsed && reparsed->mailbox == path->mailbox && reparsed->domain == path->domain &&
               reparsed->local_part == path->local_part);
}

void CheckParams(std::string_view text) {
  smtp::ParamReader reader(text);
  smtp::Param param;
  size_t count = 0;
  while (reader.Next(param)) {
    RINGMX_CHECK(++count <= text.size());
    RINGMX_CHECK(Inside(param.keyword, text) && Inside(param.value, text));
    RINGMX_CHECK(param.has_value || param.value.empty());
    for (char c : param.keyword) RINGMX_CHECK(!IsBlank(c) && c != '=');
    for (char c : param.value) RINGMX_CHECK(!IsBlank(c));
    RINGMX_CHECK(!param.keyword.empty() || param.has_value);
  }
}

void CheckAddress(std::string_view text) {
  const std::optional<core::IpAddress> a = core::IpAddress::Parse(text);
  if (a) {
    const std::string printed = a->ToString();
    const std::optional<core::IpAddress> b = core::IpAddress::Parse(printed);
    RINGMX_CHECK(b && b->ToString() == printed);
  }
  const absl::StatusOr<core::Cidr> cidr = core::Cidr::Parse(text);
  if (cidr.ok()) {
    const std::string printed = cidr->ToString();
    const absl::StatusOr<core::Cidr> again = core::Cidr::Parse(printed);
    RINGMX_CHECK(again.ok() && again->ToString() == printed);
  }
  const absl::StatusOr<core::Endpoint> endpoint = core::Endpoint::Parse(text);
  if (endpoint.ok()) {
    const std::string printed = endpoint->ToString();
    const absl::StatusOr<core::Endpoint> again = core::Endpoint::Parse(printed);
    RINGMX_CHECK(again.ok() && again->ToString() == printed);
  }
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;
  using namespace ringmx::fuzz;
  FuzzInput in(data, size);
  in.Byte();  // reserved: keeps the corpus format open for later selectors
  const std::string_view text = in.Rest();
  // Copied, so that ASan sees a read past the end of exactly the text.
  const std::string owned(text);
  const std::string_view line = owned;
  RINGMX_CHECK(smtp::IsValidUtf8(line) == ReferenceIsUtf8(line));
  CheckCommandLine(line);
  // What the session does with MAIL/RCPT: "FROM:" / "TO:" then the path, then parameters.
  const smtp::CommandLine cmd = smtp::ParseCommandLine(line);
  std::string_view args = cmd.args;
  for (std::string_view prefix : {"FROM:", "TO:"}) {
    if (smtp::StartsWithIgnoreCase(args, prefix)) args.remove_prefix(prefix.size());
  }
  for (smtp::PathKind kind : {smtp::PathKind::kReversePath, smtp::PathKind::kForwardPath}) {
    CheckPath(args, kind);
    CheckPath(line, kind);
    if (const std::optional<smtp::Path> p = smtp::ParsePath(args, kind)) CheckParams(p->rest);
  }
  CheckParams(line);
  CheckAddress(line);
  if (!line.empty() && line[0] == '[') CheckAddress(line.substr(1, line.find(']') - 1));
  return 0;
}

#include "tests/testing/hostile_scripts.h"

#include "absl/strings/str_cat.h"

namespace ringmx::testing {
namespace {

constexpr char kEhlo[] = "EHLO hostile.test\r\n";

// Invalid UTF-8 of several sorts: a lone continuation octet, a truncated sequence, an overlong
// '/', a UTF-16 surrogate, a code point above U+10FFFF, and 0xFF.
constexpr const char* kBadUtf8[] = {"\x80",         "\xC3\x28",         "\xC0\xAF",
                                    "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF"};

// MAIL parameters that are malformed or not offered.
constexpr const char* kBadMailParams[] = {
    "SIZE=abc", "SIZE=", "SIZE=1 SIZE=2", "BODY=9BIT",       "BODY", "SMTPUTF8=yes",
    "FOO=bar",  "=x",    "AUTH=<>",       "RET=ALL ENVID=x",
};
// RCPT parameters that are malformed (RFC 3461 NOTIFY and ORCPT are offered) or not offered.
constexpr const char* kBadRcptParams[] = {"NOTIFY=NEVER,SUCCESS", "ORCPT=rfc822", "=", "X"};

}  // namespace

std::string_view HostileKindName(HostileKind kind) {
  switch (kind) {
    case HostileKind::kLongLines:
      return "long-lines";
    case HostileKind::kEndlessData:
      return "endless-data";
    case HostileKind::kTrickle:
      return "trickle";
    case HostileKind::kRcptFlood:
      return "rcpt-flood";
    case HostileKind::kNulBytes:
      return "nul-bytes";
    case HostileKind::kBadUtf8:
      return "bad-utf8";
    case HostileKind::kBadParameters:
      return "bad-parameters";
    case HostileKind::kNoRead:
      return "no-read";
  }
  return "?";
}

std::vector<SwarmStep> HostileScript(HostileKind kind, const HostileParams& params) {
  std::vector<SwarmStep> steps = {SwarmStep::AwaitReplies(1)};
  switch (kind) {
    case HostileKind::kLongLines:
      steps.push_back(SwarmStep::Send(std::string(kEhlo)));
      steps.push_back(SwarmStep::AwaitReplies(2));
      steps.push_back(
          SwarmStep::Send(std::string(params.long_line_bytes, 'A') + "\r\n", params.long_lines));
      break;
    case HostileKind::kEndlessData: {
      steps.push_back(SwarmStep::Send(absl::StrCat(
          kEhlo, "MAIL FROM:<e@remote.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")));
      steps.push_back(SwarmStep::AwaitReplies(5));  // EHLO, MAIL, RCPT, 354
      const std::string line = std::string(998, 'x') + "\r\n";
      steps.push_back(
          SwarmStep::Send(line, params.endless_factor * params.max_message_size / line.size()));
      break;
    }
    case HostileKind::kTrickle:
      steps.push_back(SwarmStep::Trickle(params.trickle_command, params.trickle_interval));
      break;
    case HostileKind::kRcptFlood:
      steps.push_back(SwarmStep::Send(absl::StrCat(kEhlo, "MAIL FROM:<f@remote.test>\r\n")));
      steps.push_back(SwarmStep::AwaitReplies(3));
      steps.push_back(SwarmStep::Send("RCPT TO:<u@example.test>\r\n", params.rcpt_flood));
      steps.push_back(SwarmStep::AwaitReplies(3 + params.rcpt_flood));
      steps.push_back(SwarmStep::Send("QUIT\r\n"));
      break;
    case HostileKind::kNulBytes: {
      steps.push_back(SwarmStep::Send(std::string(kEhlo)));
      steps.push_back(SwarmStep::AwaitReplies(2));
      std::string lines;
      for (size_t i = 0; i < params.repeats; ++i) {
        lines += i % 2 == 0 ? std::string("MAIL FROM:<a\0b@remote.test>\r\n", 29)
                            : std::string("NOOP\0\0\0\r\n", 9);
      }
      steps.push_back(SwarmStep::Send(lines));
      break;
    }
    case HostileKind::kBadUtf8: {
      steps.push_back(
          SwarmStep::Send(absl::StrCat(kEhlo, "MAIL FROM:<\xC3\xA9@remote.test> SMTPUTF8\r\n")));
      steps.push_back(SwarmStep::AwaitReplies(3));
      std::string lines;
      for (size_t i = 0; i < params.repeats; ++i) {
        const char* bad = kBadUtf8[i % std::size(kBadUtf8)];
        // RCPT inside the (valid) SMTPUTF8 transaction, MAIL outside it (nested MAIL is 503, so
        // the MAIL lines come after an RSET).
        if (i < params.repeats / 2) {
          absl::StrAppend(&lines, "RCPT TO:<u", bad, "@example.test>\r\n");
        } else {
          if (i == params.repeats / 2) lines += "RSET\r\n";
          absl::StrAppend(&lines, "MAIL FROM:<s", bad, "x@remote.test> SMTPUTF8\r\n");
        }
      }
      steps.push_back(SwarmStep::Send(lines));
      break;
    }
    case HostileKind::kBadParameters: {
      steps.push_back(SwarmStep::Send(std::string(kEhlo)));
      steps.push_back(SwarmStep::AwaitReplies(2));
      std::string lines;
      for (size_t i = 0; i < params.repeats; ++i) {
        if (i < params.repeats / 2) {
          absl::StrAppend(&lines, "MAIL FROM:<p@remote.test> ",
                          kBadMailParams[i % std::size(kBadMailParams)], "\r\n");
        } else {
          if (i == params.repeats / 2) lines += "MAIL FROM:<p@remote.test>\r\n";
          absl::StrAppend(&lines, "RCPT TO:<u@example.test> ",
                          kBadRcptParams[i % std::size(kBadRcptParams)], "\r\n");
        }
      }
      steps.push_back(SwarmStep::Send(lines));
      break;
    }
    case HostileKind::kNoRead: {
      steps.push_back(SwarmStep::StopReading());
      std::string noops;
      for (int i = 0; i < 10000; ++i) noops += "NOOP\r\n";
      steps.push_back(SwarmStep::Send(noops, params.no_read_bytes / noops.size()));
      break;
    }
  }
  steps.push_back(SwarmStep::AwaitClose());
  return steps;
}

std::vector<SwarmStep> GoodClientScript(size_t messages, size_t first) {
  std::vector<SwarmStep> steps = {SwarmStep::AwaitReplies(1), SwarmStep::Send("EHLO good.test\r\n"),
                                  SwarmStep::AwaitReplies(2)};
  size_t replies = 2;
  for (size_t i = first; i < first + messages; ++i) {
    steps.push_back(SwarmStep::Send(absl::StrCat("MAIL FROM:<s", i, "@remote.test>\r\n")));
    steps.push_back(SwarmStep::AwaitReplies(++replies));
    steps.push_back(SwarmStep::Send(absl::StrCat("RCPT TO:<u", i, "@example.test>\r\n")));
    steps.push_back(SwarmStep::AwaitReplies(++replies));
    steps.push_back(SwarmStep::Send("DATA\r\n"));
    steps.push_back(SwarmStep::AwaitReplies(++replies));
    steps.push_back(SwarmStep::Send(absl::StrCat("From: <s", i, "@remote.test>\r\nTo: <u", i,
                                                 "@example.test>\r\nSubject: good ", i,
                                                 "\r\n\r\nA well-behaved message.\r\n.\r\n")));
    steps.push_back(SwarmStep::AwaitReplies(++replies));
  }
  steps.push_back(SwarmStep::Send("QUIT\r\n"));
  steps.push_back(SwarmStep::AwaitReplies(++replies));
  return steps;
}

}  // namespace ringmx::testing

// Command-line parsing (smtp/command.h): the verb split, MAIL FROM and RCPT TO paths and ESMTP
// parameters, done the way smtp::Session does it for each command. Items are command lines.
#include <stddef.h>

#include <optional>
#include <string_view>

#include "benchmark/benchmark.h"

#include "smtp/command.h"

namespace ringmx::smtp {
namespace {

constexpr std::string_view kEhlo = "EHLO client-42.mail.example.net";
constexpr std::string_view kMailFrom =
    "MAIL FROM:<newsletter+bounce-1234@lists.example.com> SIZE=1048576 BODY=8BITMIME";
constexpr std::string_view kRcptTo = "RCPT TO:<john.doe@example.org>";

// What the session does with MAIL/RCPT arguments: skip "FROM:"/"TO:", parse the path, then walk
// the parameters. Returns a value that depends on every step so nothing is optimised away.
size_t ParsePathAndParams(std::string_view args, size_t prefix, PathKind kind) {
  std::string_view text = args.substr(prefix);
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  const std::optional<Path> path = ParsePath(text, kind);
  if (!path) return 0;
  size_t n = path->mailbox.size() + path->domain.size();
  ParamReader reader(path->rest);
  Param p;
  while (reader.Next(p)) n += p.keyword.size() + p.value.size();
  return n;
}

void BM_ParseCommandLine(benchmark::State& state, std::string_view line) {
  for (auto _ : state) {
    std::string_view in = line;
    benchmark::DoNotOptimize(in);
    CommandLine cmd = ParseCommandLine(in);
    benchmark::DoNotOptimize(cmd);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line.size()));
}
BENCHMARK_CAPTURE(BM_ParseCommandLine, Ehlo, kEhlo);
BENCHMARK_CAPTURE(BM_ParseCommandLine, MailFrom, kMailFrom);
BENCHMARK_CAPTURE(BM_ParseCommandLine, RcptTo, kRcptTo);
BENCHMARK_CAPTURE(BM_ParseCommandLine, Data, std::string_view("DATA"));

void BM_ParseMailFrom(benchmark::State& state) {
  for (auto _ : state) {
    std::string_view in = kMailFrom;
    benchmark::DoNotOptimize(in);
    const CommandLine cmd = ParseCommandLine(in);
    if (cmd.verb != Verb::kMail || !StartsWithIgnoreCase(cmd.args, "FROM:")) {
      state.SkipWithError("MAIL line not recognised");
      break;
    }
    benchmark::DoNotOptimize(ParsePathAndParams(cmd.args, 5, PathKind::kReversePath));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kMailFrom.size()));
}
BENCHMARK(BM_ParseMailFrom);

void BM_ParseRcptTo(benchmark::State& state) {
  for (auto _ : state) {
    std::string_view in = kRcptTo;
    benchmark::DoNotOptimize(in);
    const CommandLine cmd = ParseCommandLine(in);
    if (cmd.verb != Verb::kRcpt || !StartsWithIgnoreCase(cmd.args, "TO:")) {
      state.SkipWithError("RCPT line not recognised");
      break;
    }
    benchmark::DoNotOptimize(ParsePathAndParams(cmd.args, 3, PathKind::kForwardPath));
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kRcptTo.size()));
}
BENCHMARK(BM_ParseRcptTo);

// The paths alone, including the slower forms (quoted local part, address literal, UTF-8).
void BM_ParsePath(benchmark::State& state, std::string_view text, PathKind kind) {
  for (auto _ : state) {
    std::string_view in = text;
    benchmark::DoNotOptimize(in);
    std::optional<Path> path = ParsePath(in, kind);
    benchmark::DoNotOptimize(path);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK_CAPTURE(BM_ParsePath, Simple, std::string_view("<john.doe@example.org>"),
                  PathKind::kForwardPath);
BENCHMARK_CAPTURE(BM_ParsePath, Quoted, std::string_view("<\"john doe\"@example.org>"),
                  PathKind::kForwardPath);
BENCHMARK_CAPTURE(BM_ParsePath, AddressLiteral, std::string_view("<postmaster@[192.0.2.1]>"),
                  PathKind::kForwardPath);
BENCHMARK_CAPTURE(BM_ParsePath, Utf8,
                  std::string_view("<j\xc3\xb6rg@b\xc3\xbc"
                                   "cher.example>"),
                  PathKind::kForwardPath);
BENCHMARK_CAPTURE(BM_ParsePath, Null, std::string_view("<>"), PathKind::kReversePath);

}  // namespace
}  // namespace ringmx::smtp

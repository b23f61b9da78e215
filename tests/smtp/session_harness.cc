#include "tests/smtp/session_harness.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "core/queue_id.h"
#include "smtp/limits.h"

namespace ringmx::smtp::testing {

core::Config TestConfig() {
  core::Config config;
  config.hostname = std::string(kHostname);
  core::ListenerConfig listener;
  listener.name = "mx";
  listener.address = *core::Endpoint::Parse("192.0.2.10:25");
  config.listeners.push_back(listener);
  config.policy.local_domains = {"example.test", "Example.ORG"};
  config.policy.relay_networks = {*core::Cidr::Parse("10.0.0.0/8")};
  config.policy.max_recipients = kMaxRecipients;
  config.policy.max_message_size = kMaxMessageSize;
  config.timeouts.idle = absl::Seconds(300);
  config.timeouts.data = absl::Seconds(600);
  return config;
}

Env::Env(core::Config config) : snapshot(core::Snapshot::Build(std::move(config), 1)) {
  facts.client = *core::Endpoint::Parse("203.0.113.5:40000");
  facts.local = *core::Endpoint::Parse("192.0.2.10:25");
  facts.listener = &snapshot->config.listeners[0];
}

namespace {

// Drains `out` into `t` the way the driver does: a delivery is answered at once, which may
// produce more output (buffered input is processed then).
// What the driver side keeps between calls: which store results come next, and the pieces of
// messages streaming in, by id.
struct DriverState {
  size_t next_result = 0;
  size_t next_fragment_result = 0;
  size_t next_check = 0;
  std::map<std::string, std::string> streams;
};

void Drain(const Env& env, Session& session, Output& out, DriverState& d, Transcript& t) {
  size_t& next_result = d.next_result;
  size_t& next_fragment_result = d.next_fragment_result;
  std::map<std::string, std::string>& streams = d.streams;
  while (true) {
    t.replies.append(out.replies);
    if (out.start_tls) {
      ++t.tls_starts;
      t.replies.append(kTlsHandshake);
    }
    for (const std::string& id : out.abort_streams) {
      EXPECT_TRUE(streams.contains(id)) << "abort of a stream never started: " << id;
      streams.erase(id);
      t.aborted_streams.push_back(id);
    }
    std::optional<core::SpoolFragment> fragment = std::move(out.fragment);
    std::optional<core::SpoolRecord> record = std::move(out.deliver);
    std::optional<CheckRequest> check = std::move(out.check);
    t.log.insert(t.log.end(), out.log.begin(), out.log.end());
    out.Clear();
    if (check) {
      EXPECT_FALSE(record.has_value() || fragment.has_value()) << "a check with a message";
      EXPECT_NE(check->token, 0u);
      EXPECT_EQ(session.check_outstanding(), check->token);
      const CheckAnswer answer = d.next_check < env.check_answers.size()
                                     ? env.check_answers[d.next_check]
                                     : CheckAnswer{CheckAnswer::Decision::kAccept, ""};
      ++d.next_check;
      t.checks.push_back(std::move(*check));
      session.OnCheckAnswer(t.checks.back().token, answer, kT0, out);
      continue;
    }
    if (fragment) {
      EXPECT_FALSE(record.has_value()) << "a piece and its message in one Output";
      EXPECT_LE(fragment->bytes.size(), kStreamChunkBytes);
      streams[fragment->id].append(fragment->bytes.Flatten());
      ++t.fragments;
      const absl::Status result = next_fragment_result < env.fragment_results.size()
                                      ? env.fragment_results[next_fragment_result]
                                      : absl::OkStatus();
      ++next_fragment_result;
      session.OnFragmentStored(result, kT0, out);
      continue;
    }
    if (!record) break;
    if (record->fragments > 0) {
      auto it = streams.find(record->id);
      EXPECT_NE(it, streams.end()) << "a streamed message without its pieces: " << record->id;
      if (it != streams.end()) {
        record->body = it->second + record->body.Flatten();
        streams.erase(it);
      }
    }
    t.records.push_back(std::move(*record));
    const absl::Status result = next_result < env.delivery_results.size()
                                    ? env.delivery_results[next_result]
                                    : absl::OkStatus();
    ++next_result;
    session.OnDelivered(result, kT0, out);
  }
  t.max_memory = std::max(t.max_memory, session.MemoryUsageForTest());
}

bool SameRecords(const std::vector<core::SpoolRecord>& a, const std::vector<core::SpoolRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].trace_headers != b[i].trace_headers ||
        a[i].body.Flatten() != b[i].body.Flatten() || a[i].envelope_json != b[i].envelope_json) {
      return false;
    }
  }
  return true;
}

bool Same(const Transcript& a, const Transcript& b) {
  return a.replies == b.replies && SameRecords(a.records, b.records) && a.closed == b.closed &&
         a.end_reason == b.end_reason && a.stats.messages_accepted == b.stats.messages_accepted &&
         a.stats.messages_rejected == b.stats.messages_rejected &&
         a.stats.bytes_accepted == b.stats.bytes_accepted && a.stats.commands == b.stats.commands &&
         a.tls_starts == b.tls_starts && a.tls == b.tls && a.helo == b.helo &&
         a.checks.size() == b.checks.size() && a.log == b.log && a.auth_identity == b.auth_identity;
}

// Returns false (after one failure message) if `t` differs from `whole`.
bool ExpectSame(const Transcript& whole, const Transcript& t, std::string_view how) {
  if (Same(whole, t)) return true;
  ADD_FAILURE() << "transcript differs when the input is fed " << how << "\nwhole replies:\n"
                << absl::CHexEscape(whole.replies) << "\nthis run:\n"
                << absl::CHexEscape(t.replies) << "\nrecords " << whole.records.size() << " vs "
                << t.records.size() << ", closed " << whole.closed << " vs " << t.closed;
  return false;
}

// The most net/ hands the session per call (net/connection.cc).
constexpr size_t kDriverSliceBytes = 64 * 1024;

// Feeds `input` cut at `cuts` to `session`, draining after each call.
void Feed(const Env& env, Session& session, std::string_view input, const std::vector<size_t>& cuts,
          Output& out, DriverState& d, Transcript& t) {
  size_t pos = 0;
  for (size_t i = 0; i <= cuts.size(); ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : input.size();
    // Like the driver: never more than kDriverSliceBytes per call (a session that is waiting for
    // the store buffers at most that much besides what it waits with).
    for (size_t from = pos; from < end; from += kDriverSliceBytes) {
      session.OnInput(input.substr(from, std::min(kDriverSliceBytes, end - from)), kT0, out);
      Drain(env, session, out, d, t);
    }
    pos = end;
  }
}

Transcript Drive(const Env& env, std::string_view input, const std::vector<size_t>& cuts,
                 const TlsPlan* plan, const std::vector<size_t>& tls_cuts) {
  core::QueueIdGenerator ids(0);
  Session session(env.snapshot, env.facts, ids);
  Transcript t;
  Output out;
  DriverState d;
  if (env.implicit_tls) session.OnTlsEstablished(*env.implicit_tls, kT0, out);
  session.Start(kT0, out);
  Drain(env, session, out, d, t);
  Feed(env, session, input, cuts, out, d, t);
  if (plan != nullptr) {
    if (plan->fail) {
      session.OnTlsFailed(kT0, out);
    } else {
      session.OnTlsEstablished(plan->facts, kT0, out);
    }
    Drain(env, session, out, d, t);
    Feed(env, session, plan->over_tls, tls_cuts, out, d, t);
  }
  t.closed = session.closed();
  t.end_reason = std::string(session.end_reason());
  t.stats = session.stats();
  t.tls = session.facts().tls;
  t.helo = std::string(session.helo());
  t.auth_identity = session.facts().auth_identity;
  return t;
}

std::vector<size_t> EveryOffset(std::string_view input) {
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
  return every;
}

}  // namespace

Transcript Run(const Env& env, std::string_view input, const std::vector<size_t>& cuts) {
  return Drive(env, input, cuts, nullptr, {});
}

Transcript RunTls(const Env& env, std::string_view plaintext, const TlsPlan& plan,
                  const std::vector<size_t>& cuts, const std::vector<size_t>& tls_cuts) {
  return Drive(env, plaintext, cuts, &plan, tls_cuts);
}

Transcript CheckTls(const Env& env, std::string_view plaintext, const TlsPlan& plan) {
  Transcript whole = RunTls(env, plaintext, plan);
  for (size_t split = 1; split < plaintext.size(); ++split) {
    if (!ExpectSame(whole, RunTls(env, plaintext, plan, {split}),
                    absl::StrCat("with the plaintext split at ", split))) {
      break;
    }
  }
  for (size_t split = 1; split < plan.over_tls.size(); ++split) {
    if (!ExpectSame(whole, RunTls(env, plaintext, plan, {}, {split}),
                    absl::StrCat("with the TLS part split at ", split))) {
      break;
    }
  }
  ExpectSame(whole,
             RunTls(env, plaintext, plan, EveryOffset(plaintext), EveryOffset(plan.over_tls)),
             "one byte at a time");
  return whole;
}

Transcript Check(const Env& env, std::string_view input) {
  Transcript whole = Run(env, input);
  std::vector<size_t> splits;
  if (input.size() <= 4096) {
    for (size_t i = 1; i < input.size(); ++i) splits.push_back(i);
  } else {
    for (size_t i = 1; i < input.size(); i += (i < 700 || i + 700 > input.size()) ? 1 : 499) {
      splits.push_back(i);
    }
  }
  for (size_t split : splits) {
    if (!ExpectSame(whole, Run(env, input, {split}), absl::StrCat("split at ", split))) break;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < input.size(); ++i) every.push_back(i);
  ExpectSame(whole, Run(env, input, every), "one byte at a time");
  return whole;
}

std::string Lines(std::initializer_list<std::string_view> lines) {
  std::string out;
  for (std::string_view line : lines) out.append(line).append("\r\n");
  return out;
}

std::string Greeting() { return absl::StrCat("220 ", kHostname, " ESMTP ringmx\r\n"); }

std::string EhloReply() {
  return Lines({"250-mx.example.test", "250-PIPELINING", "250-SIZE 10000", "250-8BITMIME",
                "250-ENHANCEDSTATUSCODES", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"});
}

}  // namespace ringmx::smtp::testing

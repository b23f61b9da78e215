// End-to-end: 100 hostile connections beside one well-behaved client (issue 9, item 8). The
// hostile kinds (tests/testing/hostile_scripts.h): 100 KB command lines, endless DATA, one octet
// per second, thousands of RCPT, NUL octets, invalid UTF-8 with SMTPUTF8, malformed MAIL/RCPT
// parameters. Checks that every hostile session gets the refusal its kind calls for (5xx, 452
// or 421, each with an enhanced status code) and is closed by the server (the endless DATA is cut
// with 552 once it is far past max_message_size, the 100 KB lines with 421 once 128 KiB of them
// have come; the server then stops reading them), that the server's memory stays bounded (far below
// what buffering the hostile input would take), that the server stays up, and that every message
// of the good client got 250 and is in the spool.
//
// The server runs on a test clock (`ringmx serve --test-clock`) with timeouts of minutes, which
// the real seconds of a slow machine never reach: the kinds that must end by their protocol
// errors cannot end by a timeout instead. Once they and the good client are done, the test moves
// the server's clock past the idle and DATA deadlines, while the trickling clients go on sending,
// so that the kinds that only a timeout ends get their 421 4.4.2. Every wait is a generous
// "until it happens" bound; nothing asserts how long anything took.
#include <signal.h>
#include <stdio.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "tests/e2e/e2e_util.h"
#include "tests/testing/conn_swarm.h"
#include "tests/testing/hostile_scripts.h"
#include "tests/testing/proc_stats.h"
#include "tests/testing/sanitizers.h"

namespace ringmx::testing {
namespace {

constexpr size_t kHostile = 100;
constexpr size_t kGoodMessages = 200;
constexpr uint64_t kMaxMessageSize = 1024 * 1024;
constexpr int kMaxRecipients = 100;
// How much the server may grow while the hostile clients run: the receive-buffer rings of two
// shards (16 MiB once touched), up to max_message_size per endless-DATA session, 256 KiB of
// replies per client that does not read them, and allocator slack; times what a sanitizer adds.
constexpr int64_t kMaxGrowthKib = 64 * 1024 * kSanitizerMemoryFactor;
// The server's timeouts, on its test clock.
constexpr int kIdleSeconds = 300;
constexpr int kDataSeconds = 600;
// How far each move of the clock goes while the trickling clients send: three moves pass the
// idle timeout, two do not.
constexpr int kTrickleStepSeconds = 120;

std::string Describe(const SwarmConn& c) {
  std::string out = absl::StrCat(c.label, ": ", c.replies.size(), " replies, closed=", c.closed,
                                 " reset=", c.reset, " error=", c.error, " sent=", c.bytes_sent);
  const size_t from = c.replies.size() > 4 ? c.replies.size() - 4 : 0;
  for (size_t i = from; i < c.replies.size(); ++i) absl::StrAppend(&out, "\n  ", c.replies[i].text);
  return out;
}

// The refusals each kind must get (after its greeting and set-up replies), and how it ends.
struct Expectation {
  std::set<int> refusals;        // every reply after the set-up is one of these (or 421)
  std::string refusal_enhanced;  // the enhanced code of the first refusal
  std::string final_enhanced;    // the last reply: `final_code` with this enhanced code
  size_t setup_replies;          // greeting and the replies of the set-up commands
  int final_code = 421;          // ignored when `final_enhanced` is "" (the last reply is 221)
};

Expectation Expect(HostileKind kind) {
  switch (kind) {
    case HostileKind::kLongLines:
      // 500 for the first line; the second is cut once 128 KiB of over-long lines have come
      // (smtp/limits.h): 500, then 421.
      return {{500}, "5.5.2", "4.7.0", 2, 421};
    case HostileKind::kEndlessData:
      // Cut at max_message_size + 1 MiB, long before the data timeout.
      return {{552}, "5.3.4", "5.3.4", 5, 552};
    case HostileKind::kTrickle:
      return {{}, "", "4.4.2", 1};  // the idle timeout: octets alone do not extend it
    case HostileKind::kRcptFlood:
      // max_recipients 250s, then 452 4.5.3 (RFC 5321 §4.5.3.1.10); past the overshoot limit
      // they count as errors and the session ends with 421 4.7.0.
      return {{250, 452}, "4.5.3", "4.7.0", 3};
    case HostileKind::kNulBytes:
      return {{500}, "5.5.2", "4.7.0", 2};
    case HostileKind::kBadUtf8:
      return {{501, 250}, "5.1.3", "4.7.0", 3};  // RCPT 501 5.1.3, then RSET 250, MAIL 501 5.1.7
    case HostileKind::kBadParameters:
      return {{501, 555, 250}, "5.5.4", "4.7.0", 2};
    case HostileKind::kNoRead:
      return {{}, "", "", 1};  // reads its greeting, then nothing (checked apart)
  }
  return {};
}

// Kinds that only the idle timeout ends (no error of theirs ever reaches the limit).
bool EndedByTimeout(HostileKind kind) {
  return kind == HostileKind::kTrickle || kind == HostileKind::kNoRead;
}

// The session-end log lines with `result=<reason>`.
size_t CountEnds(const std::string& log, const std::string& reason) {
  size_t n = 0;
  const std::string needle = absl::StrCat(" result=", reason, " ");
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

class HostileTest : public ServerTest {
 protected:
  void StartServerWithTestClock(const std::string& config) {
    std::string error;
    server_ = ServerProcess::Start(dir_, config, &error, absl::Seconds(30), /*test_clock=*/true);
    ASSERT_NE(server_, nullptr) << error;
  }
};

TEST_F(HostileTest, HundredHostileClientsAreRefusedWhileAGoodClientDelivers) {
  ConnSwarm::RaiseFileLimit();
  ASSERT_NO_FATAL_FAILURE(StartServerWithTestClock(BasicConfig(
      dir_,
      absl::StrCat("max_message_size = ", kMaxMessageSize, "\nmax_recipients = ", kMaxRecipients,
                   "\n"),
      absl::StrCat("[timeouts]\nidle_s = ", kIdleSeconds, "\ndata_s = ", kDataSeconds, "\n"))));
  const pid_t pid = server_->pid();
  const int64_t rss_before = RssKib(pid);
  ASSERT_GT(rss_before, 0);

  HostileParams params;
  params.max_message_size = kMaxMessageSize;
  params.max_recipients = kMaxRecipients;
  // 500 octets, 500 s at one a second: the command never ends while the test runs.
  params.trickle_command = "EHLO " + std::string(480, 's') + ".hostile.test\r\n";
  ConnSwarm swarm(server_->port());
  std::map<size_t, HostileKind> kinds;
  std::vector<size_t> trickling;
  uint64_t hostile_input = 0;  // octets the hostile scripts send, at most
  for (size_t i = 0; i < kHostile; ++i) {
    const HostileKind kind = kAllHostileKinds[i % std::size(kAllHostileKinds)];
    std::vector<SwarmStep> script = HostileScript(kind, params);
    for (const SwarmStep& s : script) hostile_input += s.bytes.size() * s.repeat;
    const size_t index = swarm.Add(std::string(HostileKindName(kind)), std::move(script));
    kinds[index] = kind;
    if (kind == HostileKind::kTrickle) trickling.push_back(index);
  }
  const size_t good = swarm.Add("good", GoodClientScript(kGoodMessages));

  // Runs the swarm (the server's RSS sampled as it goes) until `until` holds or `timeout` has
  // passed; whether it holds.
  int64_t rss_peak = rss_before;
  auto run_until = [&](const std::function<bool()>& until, absl::Duration timeout) {
    swarm.Run(
        absl::Now() + timeout, /*max_unanswered=*/256,
        [&] {
          rss_peak = std::max(rss_peak, RssKib(pid));
          return !until();
        },
        absl::Milliseconds(50));
    rss_peak = std::max(rss_peak, RssKib(pid));
    return until();
  };
  auto all_done = [&] { return swarm.done_count() == swarm.size(); };

  // 1. The good client delivers, the protocol-error kinds end by their errors, and the
  // endless-DATA clients are cut; the clock has not moved.
  const bool by_protocol = run_until(
      [&] {
        if (!swarm.conn(good).Done()) return false;
        for (const auto& [index, kind] : kinds) {
          if (!EndedByTimeout(kind) && !swarm.conn(index).Done()) return false;
        }
        return true;
      },
      absl::Minutes(3));
  EXPECT_TRUE(by_protocol) << swarm.done_count() << " of " << swarm.size() << " finished";

  // 2. The clock moves 120 s at a time, each time after every trickling client has sent another
  // octet. Octets that never make a whole command do not extend the 300 s idle timeout: the third
  // move ends those sessions.
  for (int i = 0; i < 3; ++i) {
    std::map<size_t, uint64_t> sent;
    for (size_t index : trickling) sent[index] = swarm.conn(index).bytes_sent;
    ASSERT_TRUE(run_until(
        [&] {
          for (const auto& [index, before] : sent) {
            const SwarmConn& c = swarm.conn(index);
            if (!c.Done() && c.bytes_sent == before) return false;
          }
          return true;
        },
        absl::Minutes(1)))
        << "the trickling clients stopped sending";
    ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(kTrickleStepSeconds)));
  }
  EXPECT_TRUE(run_until(
      [&] {
        for (size_t index : trickling) {
          if (!swarm.conn(index).Done()) return false;
        }
        return true;
      },
      absl::Minutes(1)))
      << "a trickling client kept its session open past the idle timeout";

  // 3. Past the DATA timeout: the no-read sessions, whose 421 cannot leave, are dropped after the
  // linger. Should one of them still have been read when the clock moved, its idle timer
  // restarted then: move the clock again for it.
  ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(kDataSeconds + 1 - 3 * kTrickleStepSeconds)));
  bool finished = run_until(all_done, absl::Minutes(1));
  int extra_moves = 0;
  for (; extra_moves < 3 && !finished; ++extra_moves) {
    ASSERT_TRUE(server_->AdvanceClock(absl::Seconds(kIdleSeconds + 1)));
    finished = run_until(all_done, absl::Minutes(1));
  }
  EXPECT_TRUE(finished) << swarm.done_count() << " of " << swarm.size() << " finished";
  printf("hostile: extra moves of the clock past the idle timeout: %d\n", extra_moves);

  // The good client: every message 250, then 221.
  const SwarmConn& g = swarm.conn(good);
  ASSERT_EQ(g.replies.size(), 2 + 4 * kGoodMessages + 1) << Describe(g);
  std::set<std::string> queued;
  for (size_t i = 0; i < kGoodMessages; ++i) {
    const SmtpReply& r = g.replies[GoodClientDataReply(i)];
    EXPECT_EQ(r.code, 250) << "message " << i << ": " << r.text;
    queued.insert(QueuedId(r.text));
  }
  EXPECT_EQ(g.replies.back().code, 221);
  EXPECT_EQ(queued.size(), kGoodMessages);

  // Every hostile session got the refusals of its kind, with enhanced codes, and was closed
  // by the server after its 421 (or its QUIT).
  std::map<std::string, size_t> per_kind;
  std::map<std::string, std::map<std::string, size_t>> codes_per_kind;  // "421 4.7.0" -> count
  for (const auto& [index, kind] : kinds) {
    const SwarmConn& c = swarm.conn(index);
    const Expectation e = Expect(kind);
    SCOPED_TRACE(Describe(c));
    ++per_kind[c.label];
    for (const SmtpReply& r : c.replies) {
      ++codes_per_kind[c.label][absl::StrCat(r.code, " ", r.Enhanced())];
    }
    if (kind == HostileKind::kNoRead) {
      // It never reads its replies: the server stopped reading it too (its memory stays
      // bounded), ended the session at the idle timeout and dropped the connection once the
      // last reply could not leave.
      EXPECT_EQ(c.replies.size(), 1u);
      EXPECT_TRUE(c.closed);
      EXPECT_LT(c.bytes_sent, params.no_read_bytes);
      continue;
    }
    EXPECT_TRUE(c.closed);
    // The cut kinds too: past 64 KiB after the end the server stops reading them (TCP flow control
    // stops their stream) and waits out the linger, on the test clock, while they read their
    // last reply and the FIN.
    EXPECT_FALSE(c.reset) << "the server must close cleanly, after its last reply";
    ASSERT_GT(c.replies.size(), e.setup_replies);
    EXPECT_EQ(c.replies[0].code, 220);
    std::string first_refusal;
    for (size_t i = e.setup_replies; i < c.replies.size(); ++i) {
      const SmtpReply& r = c.replies[i];
      const bool last = i + 1 == c.replies.size();
      if (last && r.code == 421) continue;
      EXPECT_TRUE(e.refusals.count(r.code)) << "reply " << i << ": " << r.text;
      if (r.code >= 400) {
        EXPECT_NE(r.Enhanced(), "") << r.text;
        if (first_refusal.empty()) first_refusal = r.Enhanced();
      }
    }
    if (!e.refusal_enhanced.empty()) {
      EXPECT_EQ(first_refusal, e.refusal_enhanced);
    }
    const SmtpReply& last = c.replies.back();
    if (e.final_enhanced.empty()) {
      EXPECT_EQ(last.code, 221) << last.text;
    } else {
      EXPECT_EQ(last.code, e.final_code) << last.text;
      EXPECT_EQ(last.Enhanced(), e.final_enhanced) << last.text;
    }
  }
  // The server's log says how those sessions ended: cut, not timed out or ended by errors.
  const std::string log = server_->Log();
  EXPECT_EQ(CountEnds(log, "too-big-stream"),
            per_kind[std::string(HostileKindName(HostileKind::kEndlessData))]);
  EXPECT_EQ(CountEnds(log, "too-long-line"),
            per_kind[std::string(HostileKindName(HostileKind::kLongLines))]);
  EXPECT_EQ(per_kind.size(), std::size(kAllHostileKinds));
  for (const auto& [label, codes] : codes_per_kind) {
    std::string line;
    for (const auto& [code, n] : codes) absl::StrAppend(&line, " ", code, " x", n, ";");
    printf("hostile: %-14s %2zu sessions, replies:%s\n", label.c_str(), per_kind[label],
           line.c_str());
  }

  // Memory: what the server grew by stays far below the hostile input it was sent (which a
  // server buffering everyone's input would hold). Endless DATA may hold up to max_message_size
  // per session before the size limit frees it; the shared receive-buffer rings are touched.
  const int64_t growth_kib = rss_peak - rss_before;
  printf("hostile: server RSS %.1f MiB before, peak %.1f MiB (+%.1f MiB); hostile input %.1f MiB\n",
         rss_before / 1024.0, rss_peak / 1024.0, growth_kib / 1024.0, hostile_input / 1048576.0);
  EXPECT_LT(growth_kib, kMaxGrowthKib) << "server memory grew by " << growth_kib << " KiB";
  if (kSanitizerMemoryFactor == 1) {
    EXPECT_LT(growth_kib * 1024, static_cast<int64_t>(hostile_input / 2));
  }

  // The server is still up and takes mail; the spool holds exactly the good client's messages.
  ASSERT_EQ(kill(pid, 0), 0);
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  const SmtpReply after = client->SendMail("after@remote.test", {"u@example.test"},
                                           "Subject: after\r\n\r\nstill up\r\n");
  EXPECT_EQ(after.code, 250) << after.text;
  queued.insert(QueuedId(after.text));
  const std::vector<std::string> ids = CommittedIds(server_->spool());
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), queued);
}

}  // namespace
}  // namespace ringmx::testing

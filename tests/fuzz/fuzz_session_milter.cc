// Fuzz target: the SMTP session with milters (smtp/session.h, smtp/session_milter.cc): the
// client's bytes (the header section the session scans and holds back, the body it streams) and
// the milters' answers both come from the fuzzer. After every call: replies are complete lines,
// memory stays bounded, a stored record starts with our Received, and when everything has been
// answered the session never waits for a milter.
//
// Input: [flags][n][n answer bytes][client bytes...]
//   flags bit 0: two milters (else one); bit 1: the milters set every NR flag (rspamd); bit 2:
//   answers are fed one byte at a time; bit 3: default_action accept (else tempfail); bit 4:
//   client bytes in slices of 7 (else 64 KiB); bit 5: SMFIP_RCPT_REJ.
//   answer byte: what the milters answer to the next command that expects an answer (see Answer);
//   once they run out, every command is continued.
#include <stddef.h>
#include <stdint.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

#include "core/check.h"
#include "core/config.h"
#include "core/queue_id.h"
#include "core/snapshot.h"
#include "smtp/limits.h"
#include "smtp/milter/codec.h"
#include "smtp/session.h"
#include "tests/fuzz/fuzz_input.h"

namespace ringmx::fuzz {
namespace {

using namespace std::string_literals;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

std::string Be32(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
          static_cast<char>(n)};
}
std::string Pkt(char command, std::string_view data) {
  return Be32(static_cast<uint32_t>(data.size() + 1)) + command + std::string(data);
}

namespace proto = smtp::milter::proto;
constexpr uint32_t kAllNr = proto::kNrConnect | proto::kNrHelo | proto::kNrMail | proto::kNrRcpt |
                            proto::kNrData | proto::kNrUnknown | proto::kNrHeader | proto::kNrEoh |
                            proto::kNrBody;

// The answer a byte stands for; "" = a failure of the milter (OnMilterError).
std::string Answer(uint8_t b) {
  switch (b % 18) {
    case 0:
      return Pkt('c', "");
    case 1:
      return Pkt('a', "");
    case 2:
      return Pkt('r', "");
    case 3:
      return Pkt('t', "");
    case 4:
      return Pkt('d', "");
    case 5:
      return Pkt('y', "554 5.7.1 Spam\0"s);
    case 6:
      return Pkt('4', "");
    case 7:
      return Pkt('p', "") + Pkt('c', "");
    case 8:
      return Pkt('s', "");
    case 9:
      return Pkt('h', "X-Fuzz\0a\nb\0"s) + Pkt('c', "");
    case 10:
      return "";
    case 11:
      return "\xff\xff\xff\xff garbage";
    case 12:
      return Pkt('q', "held\0"s) + Pkt('a', "");
    case 13:
      return Pkt('b', "new\nbody") + Pkt('c', "");
    case 14:
      return Pkt('e', "<s@example.org>\0"s) + Pkt('+', "<n@example.test>\0"s) +
             Pkt('-', "<b@example.test>\0"s) + Pkt('c', "");
    case 15:
      return Pkt('m', Be32(1) + "Subject\0\0"s) + Pkt('i', Be32(0) + "X-I\0v\0"s) + Pkt('c', "");
    case 16:
      return Pkt('-', "<b@example.test>\0"s) + Pkt('-', "<c@example.test>\0"s) + Pkt('c', "");
    default:
      return Pkt('O', Be32(6));  // a malformed reply
  }
}

struct Milter {
  uint32_t protocol = 0;
  std::string buffer;
};

void Run(uint8_t flags, std::string_view answers, std::string_view client) {
  core::Config config;
  config.hostname = "mx.example.test";
  core::ListenerConfig listener;
  listener.name = "mx";
  listener.address = *core::Endpoint::Parse("192.0.2.10:25");
  const size_t count = (flags & 1) != 0 ? 2 : 1;
  for (size_t i = 0; i < count; ++i) {
    core::MilterConfig m;
    m.name = i == 0 ? "one" : "two";
    m.inet = *core::Endpoint::Parse("127.0.0.1:11332");
    m.default_action = (flags & 8) != 0 ? core::MilterDefaultAction::kAccept
                                        : core::MilterDefaultAction::kTempfail;
    config.milters.push_back(m);
    listener.milters.push_back(m.name);
  }
  config.listeners.push_back(listener);
  config.policy.local_domains = {"example.test"};
  config.policy.max_recipients = 5;
  config.policy.max_message_size = 2 << 20;
  config.timeouts.idle = absl::Seconds(300);
  config.timeouts.data = absl::Seconds(600);
  std::shared_ptr<const core::Snapshot> snapshot = core::Snapshot::Build(std::move(config), 1);
  policy::ConnectionFacts facts;
  facts.client = *core::Endpoint::Parse("203.0.113.5:40000");
  facts.local = *core::Endpoint::Parse("192.0.2.10:25");
  facts.listener = &snapshot->config.listeners[0];
  core::QueueIdGenerator ids(0);
  smtp::Session session(snapshot, facts, ids);
  std::vector<Milter> milters(count);
  for (Milter& m : milters) {
    m.protocol = ((flags & 2) != 0 ? kAllNr : 0) | ((flags & 32) != 0 ? proto::kRcptRej : 0);
  }
  size_t next_answer = 0;
  std::deque<std::pair<uint32_t, std::string>> pending;  // answers to feed
  std::vector<uint32_t> failures;
  std::map<std::string, std::string> streams;
  smtp::Output out;
  const size_t memory_bound =
      512 + 4 * smtp::kStreamChunkBytes + smtp::kMaxPendingInputBytes + 256 * 1024 + 64 * 1024;

  // The milter's side of `bytes` for milter `i`: an answer per packet that expects one.
  const auto feed_milter = [&](uint32_t i, std::string_view bytes) {
    Milter& m = milters[i];
    m.buffer.append(bytes);
    while (m.buffer.size() >= 5) {
      const uint32_t n = (uint32_t{static_cast<uint8_t>(m.buffer[0])} << 24) |
                         (uint32_t{static_cast<uint8_t>(m.buffer[1])} << 16) |
                         (uint32_t{static_cast<uint8_t>(m.buffer[2])} << 8) |
                         uint32_t{static_cast<uint8_t>(m.buffer[3])};
      if (m.buffer.size() < 4 + n) break;
      const char command = m.buffer[4];
      m.buffer.erase(0, 4 + n);
      if (command == 'O') {
        pending.emplace_back(i, Pkt('O', Be32(6) + Be32(0x1FF) + Be32(m.protocol)));
        continue;
      }
      if (command == 'D' || command == 'A' || command == 'Q' || command == 'K') continue;
      const bool nr = (m.protocol & kAllNr) != 0 && command != 'E';
      if (nr) continue;
      std::string answer = next_answer < answers.size()
                               ? Answer(static_cast<uint8_t>(answers[next_answer++]))
                               : Pkt('c', "");
      if (answer.empty()) {
        failures.push_back(i);
      } else {
        pending.emplace_back(i, std::move(answer));
      }
    }
  };

  const auto drain = [&] {
    for (int guard = 0; guard < 100000; ++guard) {
      RINGMX_CHECK(session.MemoryUsageForTest() <= memory_bound);
      smtp::Output o = std::move(out);
      out.Clear();
      // Complete reply lines only.
      if (!o.replies.empty()) RINGMX_CHECK(o.replies.ends_with("\r\n"));
      for (const std::string& id : o.abort_streams) streams.erase(id);
      for (const smtp::MilterSend& send : o.milter_send) {
        RINGMX_CHECK(send.milter < count);
        feed_milter(send.milter, send.bytes);
      }
      bool progressed = false;
      if (o.fragment) {
        RINGMX_CHECK(o.fragment->bytes.size() <= smtp::kStreamChunkBytes);
        streams[o.fragment->id] += o.fragment->bytes.Flatten();
        session.OnFragmentStored(absl::OkStatus(), kT0, out);
        progressed = true;
      }
      if (o.deliver) {
        RINGMX_CHECK(o.deliver->trace_headers.starts_with("Received: from "));
        RINGMX_CHECK(!o.deliver->recipients.empty());
        streams.erase(o.deliver->id);
        session.OnDelivered(absl::OkStatus(), kT0, out);
        progressed = true;
      }
      if (!progressed && !failures.empty()) {
        const uint32_t i = failures.front();
        failures.erase(failures.begin());
        session.OnMilterError(i, "fuzz failure", kT0, out);
        progressed = true;
      }
      if (!progressed && !pending.empty()) {
        auto [i, bytes] = std::move(pending.front());
        pending.pop_front();
        if ((flags & 4) != 0) {
          for (char c : bytes) session.OnMilterInput(i, std::string_view(&c, 1), kT0, out);
        } else {
          session.OnMilterInput(i, bytes, kT0, out);
        }
        progressed = true;
      }
      if (!progressed && out.replies.empty() && out.milter_send.empty() && !out.fragment &&
          !out.deliver && out.abort_streams.empty()) {
        return;
      }
    }
    RINGMX_CHECK(false);  // never settles
  };

  session.Start(kT0, out);
  drain();
  const size_t slice = (flags & 16) != 0 ? 7 : 64 * 1024;
  while (!client.empty() && !session.closed()) {
    RINGMX_CHECK(!session.input_blocked());
    const std::string_view piece = client.substr(0, slice);
    client.remove_prefix(piece.size());
    session.OnInput(piece, kT0, out);
    drain();
  }
  // Everything was answered: nothing is left waiting on a milter.
  RINGMX_CHECK(!session.milter_outstanding());
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ringmx::fuzz::FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  const size_t n = in.Byte();
  const std::string_view answers = in.Bytes(n);
  ringmx::fuzz::Run(flags, answers, in.Rest());
  return 0;
}

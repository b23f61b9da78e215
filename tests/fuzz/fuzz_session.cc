// Fuzz target: the SMTP state machine (smtp/session.h), driven the way net/ drives it, with the
// events between reads chosen by the fuzzer: client bytes cut anywhere, spool results (OK or an
// error) at any time, the STARTTLS handshake ending well or badly, time passing, timeouts and
// shutdown. After every call the promises of the header are checked (replies well-formed and
// complete, nothing after close, one delivery at a time, STARTTLS only where offered and nothing
// read while the handshake runs, memory bounded, deadlines), and every spool record is checked
// (a clean body within the limit, a well-formed Received header, an envelope JSON that an
// independent parser accepts). Finally the same run is repeated with consecutive reads joined into
// one: how the client's bytes were cut must not change anything.
//
// Input: [config][n][n event bytes][client bytes...]
//   config bits 0-1: listener (plain, STARTTLS, implicit TLS, STARTTLS with tls_required);
//     bit 2: small limits (300-octet messages, 2 recipients); bit 3: greet pause (input may come
//     before the greeting); bit 4: client certificates requested; bit 5: the client is in
//     no_tls_hosts; bit 6: the implicit-TLS handshake fails; bit 7: the client may relay.
//   event byte: low 4 bits the event, high 4 bits its argument (see Event below).
// When the events run out, the driver greets, answers every delivery with OK, completes every
// handshake and feeds whatever client bytes are left, as a well-behaved driver would.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

#include "core/check.h"
#include "core/config.h"
#include "core/next_hop.h"
#include "core/queue_id.h"
#include "core/snapshot.h"
#include "core/spool_record.h"
#include "core/tls_facts.h"
#include "policy/policy.h"
#include "smtp/envelope.h"
#include "smtp/limits.h"
#include "smtp/sasl.h"
#include "smtp/session.h"
#include "tests/fuzz/fuzz_input.h"

#include <nlohmann/json.hpp>

namespace ringmx::fuzz {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

enum Event : uint8_t {
  kFeedSmall = 0,   // arg + 1 client bytes
  kFeedMedium = 1,  // (arg + 1) * 16
  kFeedLarge = 2,   // (arg + 1) * 1024
  kFeedRest = 3,    // every client byte left
  kDeliveredOk = 4,
  kDeliveredError = 5,
  kTlsUp = 6,  // OnTlsEstablished with facts variant `arg` (also when no handshake is due)
  kTlsFailed = 7,
  kTimePasses = 8,  // (arg + 1) * 37 s
  kTimeout = 9,     // at the deadline; odd arg: a stale timer (now, maybe before the deadline)
  kShutdown = 10,
  kGreet = 11,
  kFeedBytewise = 12,  // arg + 1 bytes, one call each
  kCheckAnswer = 13,   // answers the outstanding check (AUTH, RCPT verification): decision arg & 3
  // 14-15: like kFeedSmall
};

bool IsFeed(uint8_t event) {
  const uint8_t e = event & 0x0F;
  return e == kFeedSmall || e == kFeedMedium || e == kFeedLarge || e == kFeedRest ||
         e == kFeedBytewise || e >= 14;
}

struct Setup {
  std::shared_ptr<const core::Snapshot> snapshot;
  policy::ConnectionFacts facts;
  bool implicit = false;
  bool implicit_fails = false;
  bool greet_pause = false;
};

Setup MakeSetup(uint8_t bits) {
  core::Config config;
  config.hostname = "mx.example.test";
  core::ListenerConfig listener;
  listener.name = "mx";
  listener.address = *core::Endpoint::Parse("192.0.2.10:25");
  switch (bits & 3) {
    case 0:
      listener.tls = core::TlsMode::kNone;
      break;
    case 1:
      listener.tls = core::TlsMode::kStartTls;
      break;
    case 2:
      listener.tls = core::TlsMode::kImplicit;
      break;
    case 3:
      listener.tls = core::TlsMode::kStartTls;
      listener.tls_required = true;
      break;
  }
  // AUTH on every TLS listener: reachable once TLS is up.
  listener.auth = (bits & 3) != 0;
  if ((bits & 16) != 0) listener.client_certs = core::ClientCertMode::kOptional;
  if ((bits & 32) != 0) listener.no_tls_hosts = {*core::Cidr::Parse("203.0.113.0/24")};
  config.listeners.push_back(listener);
  config.policy.local_domains = {"example.test", "example.org"};
  config.policy.relay_networks = {
      *core::Cidr::Parse((bits & 128) != 0 ? "203.0.113.0/24" : "10.0.0.0/8")};
  config.policy.max_recipients = (bits & 4) != 0 ? 2 : 100;
  config.policy.max_message_size = (bits & 4) != 0 ? 300 : 100000;
  config.timeouts.idle = absl::Seconds(300);
  config.timeouts.data = absl::Seconds(600);
  if ((bits & 4) != 0) {
    // Delivery configured: RCPTs for example.test wait for a verification check, example.org
    // (no route) is refused at RCPT.
    core::RouteConfig route;
    route.domains = {"example.test"};
    route.next_hop = {*core::NextHop::Parse("lmtp:127.0.0.1:24")};
    route.tls = core::RouteTls::kNone;
    route.verify_recipients = true;
    config.routes.push_back(route);
  }
  Setup setup;
  setup.snapshot = core::Snapshot::Build(std::move(config), 1);
  setup.facts.client = *core::Endpoint::Parse("203.0.113.5:40000");
  setup.facts.local = *core::Endpoint::Parse("192.0.2.10:25");
  setup.facts.listener = &setup.snapshot->config.listeners[0];
  setup.implicit = (bits & 3) == 2;
  setup.implicit_fails = (bits & 64) != 0;
  setup.greet_pause = (bits & 8) != 0;
  return setup;
}

core::TlsFacts MakeTlsFacts(uint8_t variant, bool implicit) {
  core::TlsFacts t;
  t.version = (variant & 1) != 0 ? "TLSv1.2" : "TLSv1.3";
  t.cipher = (variant & 1) != 0 ? "ECDHE-RSA-AES256-GCM-SHA384" : "TLS_AES_256_GCM_SHA384";
  t.cipher_bits = 256;
  t.cipher_alg_bits = 256;
  t.sni = (variant & 2) != 0 ? "mx.example.test" : "";
  t.sni_fallback = (variant & 2) == 0;
  t.implicit = implicit;
  t.ktls = (variant & 8) != 0;
  if ((variant & 4) != 0) {
    t.client_cert.result = (variant & 8) != 0 ? core::ClientCertResult::kVerified
                                              : core::ClientCertResult::kNotVerified;
    // Names from a client's certificate may hold anything.
    t.client_cert.subject = "CN=\"client\\\r\n\xff\",O=Ex";
    t.client_cert.issuer = "CN=Test CA";
    t.client_cert.subject_cn = "client\"\r\n\xc3\xa9\x01";
    t.client_cert.issuer_cn = std::string(300, 'x');
    t.client_cert.sha256_fingerprint = std::string(64, 'a');
    if ((variant & 8) == 0) t.client_cert.verify_error = "unable to get local issuer certificate";
  }
  return t;
}

absl::Status DeliveryError(uint8_t arg) {
  switch (arg & 3) {
    case 0:
      return absl::ResourceExhaustedError("disk full");
    case 1:
      return absl::InternalError("fsync failed");
    case 2:
      return absl::UnavailableError("spool unavailable");
    default:
      return absl::DataLossError("short write");
  }
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// `replies` (one call's output) is complete replies: lines "DDD-text" or "DDD text" (or just
// "DDD") ending in CR LF, no CR or LF inside, at most 512 octets with the CR LF (RFC 5321 section
// 4.5.3.1.5), a multi-line reply keeping one code and ending with a "DDD " line.
void CheckReplies(std::string_view replies) {
  std::string_view open_code;  // the code of a multi-line reply under way
  while (!replies.empty()) {
    const size_t crlf = replies.find("\r\n");
    RINGMX_CHECK(crlf != std::string_view::npos);
    const std::string_view line = replies.substr(0, crlf);
    replies.remove_prefix(crlf + 2);
    RINGMX_CHECK(line.size() + 2 <= 512);
    RINGMX_CHECK(line.find('\r') == std::string_view::npos);
    RINGMX_CHECK(line.find('\n') == std::string_view::npos);
    RINGMX_CHECK(line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && IsDigit(line[1]) &&
                 IsDigit(line[2]));
    RINGMX_CHECK(line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!open_code.empty()) RINGMX_CHECK(line.substr(0, 3) == open_code);
    open_code = line.size() > 3 && line[3] == '-' ? line.substr(0, 3) : std::string_view();
  }
  RINGMX_CHECK(open_code.empty());
}

void CheckHeader(std::string_view header) {
  RINGMX_CHECK(header.substr(0, 15) == "Received: from ");
  RINGMX_CHECK(header.size() >= 2 && header.substr(header.size() - 2) == "\r\n");
  size_t start = 0;
  while (start < header.size()) {
    const size_t crlf = header.find("\r\n", start);
    RINGMX_CHECK(crlf != std::string_view::npos);
    const std::string_view line = header.substr(start, crlf - start);
    RINGMX_CHECK(line.size() <= 998);
    RINGMX_CHECK(line.find_first_of("\r\n") == std::string_view::npos);
    if (start > 0) RINGMX_CHECK(!line.empty() && line[0] == '\t');
    start = crlf + 2;
  }
}

// A message body as stored: CR LF line endings only, lines of at most 998 octets. The last line
// may lack its CR LF (BDAT chunks carry any octets; DATA bodies always end in CR LF).
void CheckBody(std::string_view body, uint64_t max_bytes) {
  RINGMX_CHECK(body.size() <= max_bytes);
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) {
      end = body.size();
    } else {
      RINGMX_CHECK(end > start && body[end - 1] == '\r');
      --end;
    }
    const std::string_view line = body.substr(start, end - start);
    RINGMX_CHECK(line.size() <= smtp::kMaxTextLineOctets);
    RINGMX_CHECK(line.find('\r') == std::string_view::npos);
    start = end + 2;
  }
}

void CheckRecord(const core::SpoolRecord& record, const smtp::Session& session,
                 const core::Config& config) {
  RINGMX_CHECK(!record.id.empty());
  CheckHeader(record.trace_headers);
  CheckBody(record.body.Flatten(), config.policy.max_message_size);
  const nlohmann::json j =
      nlohmann::json::parse(record.envelope_json, nullptr, /*allow_exceptions=*/false);
  RINGMX_CHECK(!j.is_discarded() && j.is_object());
  const auto id = j.find("id");
  RINGMX_CHECK(id != j.end() && id->is_string() && id->get<std::string>() == record.id);
  const auto rcpts = j.find("rcpt_to");
  RINGMX_CHECK(rcpts != j.end() && rcpts->is_array() && !rcpts->empty() &&
               rcpts->size() <= static_cast<size_t>(config.policy.max_recipients));
  const auto size = j.find("size");
  RINGMX_CHECK(size != j.end() && size->is_number_unsigned() &&
               size->get<uint64_t>() == record.body.size());
  const auto tls = j.find("tls");
  RINGMX_CHECK(tls != j.end() && tls->is_null() == !session.facts().tls);
  const auto helo = j.find("helo");
  RINGMX_CHECK(helo != j.end() && helo->is_string() && !helo->get<std::string>().empty());
  // What the delivery driver will read: every envelope the session writes is readable, with one
  // set of DSN parameters per recipient (whatever NOTIFY/ORCPT/RET/ENVID the client sent).
  const absl::StatusOr<smtp::StoredEnvelope> stored =
      smtp::ParseStoredEnvelope(record.envelope_json);
  RINGMX_CHECK(stored.ok() && stored->rcpt_to.size() == record.recipients.size() &&
               stored->rcpt_dsn.size() == record.recipients.size());
}

// Everything a run produced, compared between the two runs.
struct Transcript {
  std::string replies;
  std::vector<core::SpoolRecord> records;
  bool closed = false;
  std::string end_reason;
  smtp::SessionStats stats;

  bool operator==(const Transcript& o) const {
    if (records.size() != o.records.size()) return false;
    for (size_t i = 0; i < records.size(); ++i) {
      const core::SpoolRecord& a = records[i];
      const core::SpoolRecord& b = o.records[i];
      if (a.id != b.id || a.trace_headers != b.trace_headers ||
          a.body.Flatten() != b.body.Flatten() || a.envelope_json != b.envelope_json) {
        return false;
      }
    }
    return replies == o.replies && closed == o.closed && end_reason == o.end_reason &&
           stats.messages_accepted == o.stats.messages_accepted &&
           stats.messages_rejected == o.stats.messages_rejected &&
           stats.bytes_accepted == o.stats.bytes_accepted && stats.commands == o.stats.commands;
  }
};

// One resolved event: feeds carry their byte count, fixed before the run (it depends only on how
// many client bytes are left), so that two runs can join reads without changing anything else.
struct Step {
  uint8_t event = 0;
  size_t feed = 0;  // bytes for a feed event
};

class Driver {
 public:
  // `until_full`: feed through OnInputUntilFull as net/ does, keeping what the session leaves
  // (a full body buffer) and offering it again before newer bytes; otherwise through OnInput.
  Driver(const Setup& setup, bool until_full)
      : setup_(setup),
        ids_(0),
        session_(setup.snapshot, setup.facts, ids_),
        until_full_(until_full) {}

  // One call into the session, checked against its promises.
  template <typename F>
  void Call(F&& call, std::string_view fed = {}) {
    const bool was_closed = session_.closed();
    const bool was_outstanding = session_.delivery_outstanding();
    const bool was_tls_pending = session_.tls_handshake_pending();
    const bool had_tls = session_.facts().tls;
    call(session_, out_);
    for (char c : fed) lines_fed_ += c == '\n' ? 1 : 0;
    ++calls_;
    if (was_closed) {
      // Nothing after close.
      RINGMX_CHECK(out_.replies.empty() && !out_.deliver && !out_.start_tls);
    }
    if (was_tls_pending && !fed.empty()) {
      // Plaintext during the handshake is dropped unread.
      RINGMX_CHECK(out_.replies.empty() && !out_.deliver && !out_.start_tls && !out_.close);
    }
    RINGMX_CHECK(!(out_.deliver && out_.start_tls));
    CheckReplies(out_.replies);
    if (out_.deliver) {
      // At most one delivery at a time: a new one only once the last was answered (possibly by
      // this very call, which then went on with pipelined input).
      RINGMX_CHECK(!was_outstanding || answering_);
      RINGMX_CHECK(session_.delivery_outstanding());
      CheckRecord(*out_.deliver, session_, setup_.snapshot->config);
    }
    if (out_.start_tls) {
      RINGMX_CHECK(!had_tls && setup_.facts.listener->tls == core::TlsMode::kStartTls);
      RINGMX_CHECK(session_.tls_handshake_pending());
      const std::string_view ready = "220 2.0.0 Ready to start TLS\r\n";
      RINGMX_CHECK(out_.replies.size() >= ready.size() &&
                   out_.replies.substr(out_.replies.size() - ready.size()) == ready);
    }
    if (out_.close) RINGMX_CHECK(session_.closed());
    if (session_.closed() || session_.delivery_outstanding()) {
      RINGMX_CHECK(session_.deadline() == absl::InfiniteFuture());
    }
    // (A session may close with a delivery outstanding, e.g. a TLS error while the spool writes:
    // delivery_outstanding() then stays true; OnDelivered() is ignored after close.)
    const core::Config& config = setup_.snapshot->config;
    if (out_.check) {
      // One check at a time, AUTH only over TLS, a recipient check only with routes, and the
      // session waits for it.
      RINGMX_CHECK(check_token_ == 0 || answering_check_);
      RINGMX_CHECK(out_.check->token != 0 && session_.check_outstanding() == out_.check->token);
      RINGMX_CHECK(session_.input_blocked());
      if (out_.check->kind == smtp::CheckRequest::Kind::kCredentials) {
        RINGMX_CHECK(session_.facts().tls);
      } else {
        RINGMX_CHECK(!config.routes.empty() && !out_.check->address.empty());
      }
      RINGMX_CHECK(!out_.deliver && !out_.start_tls);
      check_token_ = out_.check->token;
    }
    if (session_.check_outstanding() == 0) {
      if (!out_.check) check_token_ = 0;
    }
    RINGMX_CHECK(session_.MemoryUsageForTest() <= smtp::kMaxSaslLineBytes +
                                                      config.policy.max_message_size +
                                                      smtp::kMaxPendingInputBytes);
    // Output bounded by what asked for it: at most two replies (a BDAT line and its chunk) per
    // line the client sent, and one per other call, none longer than an EHLO reply.
    transcript_.replies.append(out_.replies);
    RINGMX_CHECK(transcript_.replies.size() <= 1024 * (2 * lines_fed_ + calls_));
    if (out_.deliver) transcript_.records.push_back(std::move(*out_.deliver));
    out_.Clear();
  }

  void Feed(std::string_view bytes) {
    if (!until_full_) {
      if (bytes.empty()) return;
      Call([&](smtp::Session& s, smtp::Output& o) { s.OnInput(bytes, now_, o); }, bytes);
      return;
    }
    held_.append(bytes);
    if (held_.empty()) return;
    const std::string input = std::move(held_);
    held_.clear();
    size_t used = 0;
    Call([&](smtp::Session& s, smtp::Output& o) { used = s.OnInputUntilFull(input, now_, o); },
         input);
    RINGMX_CHECK(used <= input.size());
    // Only a full body buffer leaves bytes to the caller, and the session then waits.
    if (used < input.size()) RINGMX_CHECK(session_.input_blocked() && !session_.closed());
    held_.assign(input, used);
  }

  void Greet() {
    if (started_) return;
    started_ = true;
    if (setup_.implicit) {
      // RFC 8314: the handshake first; the greeting goes out over TLS.
      if (setup_.implicit_fails) {
        Call([&](smtp::Session& s, smtp::Output& o) { s.OnTlsFailed(now_, o); });
        RINGMX_CHECK(session_.closed());
        return;
      }
      TlsUp(0, /*due=*/true);
    }
    Call([&](smtp::Session& s, smtp::Output& o) { s.Start(now_, o); });
  }

  void TlsUp(uint8_t variant, bool due) {
    const bool had_tls = session_.facts().tls;
    const bool was_closed = session_.closed();
    const core::TlsFacts facts = MakeTlsFacts(variant, setup_.implicit);
    Call([&](smtp::Session& s, smtp::Output& o) { s.OnTlsEstablished(facts, now_, o); });
    if (was_closed || !due) {
      RINGMX_CHECK(session_.facts().tls == had_tls);  // ignored
    } else {
      // RFC 3207 section 4.2: back to the start, the client must say EHLO again.
      RINGMX_CHECK(session_.facts().tls && !session_.tls_handshake_pending());
      RINGMX_CHECK(session_.helo().empty());
    }
  }

  void Delivered(const absl::Status& result) {
    if (!session_.delivery_outstanding()) return;  // net/ answers only an outstanding delivery
    answering_ = true;
    Call([&](smtp::Session& s, smtp::Output& o) { s.OnDelivered(result, now_, o); });
    answering_ = false;
  }

  // The driver's answer to the outstanding check, if any; decisions by `arg` & 3.
  void AnswerCheck(uint8_t arg) {
    if (check_token_ == 0) return;  // net/ answers only a check it was given
    smtp::CheckAnswer answer;
    answer.decision = static_cast<smtp::CheckAnswer::Decision>(arg & 3);
    const uint64_t token = check_token_;
    answering_check_ = true;
    Call([&](smtp::Session& s, smtp::Output& o) { s.OnCheckAnswer(token, answer, now_, o); });
    answering_check_ = false;
    RINGMX_CHECK(session_.check_outstanding() != token);
    if (answer.decision == smtp::CheckAnswer::Decision::kRefuse) RINGMX_CHECK(session_.closed());
  }

  void Run(const Step& step, std::string_view& text) {
    const uint8_t arg = step.event >> 4;
    if (IsFeed(step.event)) {
      const std::string_view piece = text.substr(0, step.feed);
      text.remove_prefix(piece.size());
      Feed(piece);
      return;
    }
    switch (step.event & 0x0F) {
      case kDeliveredOk:
        Delivered(absl::OkStatus());
        break;
      case kDeliveredError:
        Delivered(DeliveryError(arg));
        break;
      case kTlsUp:
        // Due after STARTTLS; otherwise (TLS already up, or none asked for) it must be ignored.
        // Before the greeting net/ calls it only on an implicit listener, which Greet() covers.
        if (session_.tls_handshake_pending()) {
          TlsUp(arg, /*due=*/true);
        } else if (started_) {
          TlsUp(arg, /*due=*/false);
        }
        break;
      case kTlsFailed:
        // net/ reports a failed handshake, or a TLS error once TLS is up.
        if (session_.tls_handshake_pending() || session_.facts().tls) {
          Call([&](smtp::Session& s, smtp::Output& o) { s.OnTlsFailed(now_, o); });
          RINGMX_CHECK(session_.closed());
        }
        break;
      case kTimePasses:
        now_ += absl::Seconds(37 * (arg + 1));
        break;
      case kTimeout: {
        const absl::Time deadline = session_.deadline();
        if (deadline == absl::InfiniteFuture()) break;
        if ((arg & 1) == 0) now_ = std::max(now_, deadline);  // else a stale timer
        const bool due = now_ >= deadline;
        const bool was_closed = session_.closed();
        Call([&](smtp::Session& s, smtp::Output& o) { s.OnTimeout(now_, o); });
        if (!was_closed) RINGMX_CHECK(session_.closed() == due);
        break;
      }
      case kShutdown:
        Call([&](smtp::Session& s, smtp::Output& o) { s.OnShutdown(now_, o); });
        break;
      case kGreet:
        Greet();
        break;
      case kCheckAnswer:
        AnswerCheck(arg);
        break;
    }
  }

  // What a well-behaved driver does once the scripted events are over.
  void Finish(std::string_view& text) {
    Greet();
    for (int round = 0; round < 4 && !session_.closed(); ++round) {
      if (session_.tls_handshake_pending()) TlsUp(0, /*due=*/true);
      AnswerCheck(0);
      Delivered(absl::OkStatus());
      Feed(text);
      text = {};
    }
    Delivered(absl::OkStatus());
  }

  Transcript Result() {
    transcript_.closed = session_.closed();
    transcript_.end_reason = std::string(session_.end_reason());
    transcript_.stats = session_.stats();
    RINGMX_CHECK(transcript_.stats.messages_accepted <= transcript_.records.size());
    return std::move(transcript_);
  }

 private:
  const Setup& setup_;
  core::QueueIdGenerator ids_;
  smtp::Session session_;
  smtp::Output out_;
  absl::Time now_ = kT0;
  bool started_ = false;          // Start() called (or the implicit handshake failed)
  bool answering_ = false;        // inside OnDelivered()
  bool answering_check_ = false;  // inside OnCheckAnswer()
  uint64_t check_token_ = 0;      // the check the session waits for, 0 if none
  uint64_t lines_fed_ = 0;
  uint64_t calls_ = 0;
  Transcript transcript_;
  const bool until_full_;
  std::string held_;  // until_full_: what the session left to the driver
};

Transcript Drive(const Setup& setup, const std::vector<Step>& steps, std::string_view text,
                 bool until_full = false) {
  Driver d(setup, until_full);
  if (!setup.greet_pause || setup.implicit) d.Greet();
  for (const Step& step : steps) d.Run(step, text);
  d.Finish(text);
  return d.Result();
}

// Resolves feed sizes against the client bytes left; a bytewise feed becomes single-byte feeds.
std::vector<Step> Resolve(const std::vector<uint8_t>& events, size_t text_size) {
  std::vector<Step> steps;
  size_t left = text_size;
  const auto feed = [&](size_t n) {
    n = std::min(n, left);
    left -= n;
    steps.push_back({kFeedSmall, n});
  };
  for (uint8_t event : events) {
    const size_t arg = event >> 4;
    switch (event & 0x0F) {
      case kFeedMedium:
        feed((arg + 1) * 16);
        break;
      case kFeedLarge:
        feed((arg + 1) * 1024);
        break;
      case kFeedRest:
        feed(left);
        break;
      case kFeedBytewise:
        for (size_t i = 0; i <= arg; ++i) feed(1);
        break;
      default:
        if (IsFeed(event)) {
          feed(arg + 1);
        } else {
          steps.push_back({event, 0});
        }
    }
  }
  return steps;
}

// The same steps with every run of consecutive feeds joined into one.
std::vector<Step> JoinFeeds(const std::vector<Step>& steps) {
  std::vector<Step> joined;
  for (const Step& step : steps) {
    if (IsFeed(step.event) && !joined.empty() && IsFeed(joined.back().event)) {
      joined.back().feed += step.feed;
    } else {
      joined.push_back(step);
    }
  }
  return joined;
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;
  using namespace ringmx::fuzz;
  if (size > 1 << 20) return 0;
  FuzzInput in(data, size);
  const Setup setup = MakeSetup(in.Byte());
  const size_t n = in.Byte();
  std::vector<uint8_t> events;
  for (size_t i = 0; i < n && !in.empty(); ++i) events.push_back(in.Byte());
  const std::string text(in.Rest());

  const std::vector<Step> steps = Resolve(events, text.size());
  const Transcript scripted = Drive(setup, steps, text);
  // How the client's bytes were cut into reads must not change anything.
  const Transcript joined = Drive(setup, JoinFeeds(steps), text);
  RINGMX_CHECK(scripted == joined);
  // The driver's entry (OnInputUntilFull, the rest kept by the driver) answers the same.
  RINGMX_CHECK(scripted == Drive(setup, steps, text, /*until_full=*/true));
  if (getenv("RINGMX_FUZZ_TRACE") != nullptr) {
    // For whoever writes seeds: what the session answered.
    fprintf(stderr, "%s[%zu records, %s]\n", scripted.replies.c_str(), scripted.records.size(),
            scripted.closed ? scripted.end_reason.c_str() : "open");
  }
  return 0;
}

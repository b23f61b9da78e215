#include "smtp/session.h"

#include <string.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#include "core/secret.h"
#include "core/strings.h"
#include "smtp/command.h"
#include "smtp/data_decoder.h"
#include "smtp/dsn_params.h"
#include "smtp/envelope.h"
#include "smtp/internal/bounded_string.h"
#include "smtp/internal/session_state.h"
#include "smtp/limits.h"

namespace ringmx::smtp {

using internal::EqualsIgnoreCase;
using internal::Hello;
using internal::IsBlank;
using internal::kTlsRequiredReply;
using internal::kTooBigReply;
using internal::Mode;
using internal::ParseDecimalSaturating;

namespace {

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Client text echoed in a reply: printable ASCII only, bounded.
void AppendPrintable(std::string& out, std::string_view text) {
  text = text.substr(0, 100);
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    out.push_back(c >= 0x20 && c < 0x7F ? ch : '?');
  }
}

// Commands refused with 530 while the listener requires TLS and the connection has none. RFC 3207
// section 4: before STARTTLS only NOOP, EHLO, STARTTLS and QUIT are usable; everything else,
// HELO, RSET, unknown and unimplemented verbs included, gets the 530. BDAT is refused after its
// chunk is read (DoBdat), never before, so its octets are not taken for commands.
bool NeedsTls(Verb verb) {
  switch (verb) {
    case Verb::kNoop:
    case Verb::kEhlo:
    case Verb::kStartTls:
    case Verb::kQuit:
    case Verb::kBdat:
      return false;
    default:
      return true;
  }
}

constexpr std::string_view kLineTooLongReply = "500 5.5.2 Error: line too long";

}  // namespace

Session::Session(std::shared_ptr<const core::Snapshot> snapshot, policy::ConnectionFacts facts,
                 core::QueueIdGenerator& ids)
    : Session(*snapshot, std::move(facts), ids) {
  owned_snapshot_ = std::move(snapshot);
}

Session::Session(const core::Snapshot& snapshot, policy::ConnectionFacts facts,
                 core::QueueIdGenerator& ids)
    : snapshot_(&snapshot), facts_(std::move(facts)), ids_(ids), state_(std::make_unique<State>()) {
  state_->decoder.set_buffer_limit(kStreamChunkBytes);
  if (facts_.listener != nullptr && !facts_.listener->milters.empty()) {
    std::vector<milter::SessionConfig> configs;
    for (const std::string& name : facts_.listener->milters) {
      for (const core::MilterConfig& m : snapshot_->config.milters) {
        if (m.name != name) continue;
        milter::SessionConfig c;
        c.name = m.name;
        switch (m.default_action) {
          case core::MilterDefaultAction::kTempfail:
            c.default_action = milter::DefaultAction::kTempfail;
            break;
          case core::MilterDefaultAction::kAccept:
            c.default_action = milter::DefaultAction::kAccept;
            break;
          case core::MilterDefaultAction::kReject:
            c.default_action = milter::DefaultAction::kReject;
            break;
        }
        c.max_changes_bytes = snapshot_->config.policy.max_message_size;
        configs.push_back(std::move(c));
        break;
      }
    }
    if (!configs.empty()) state_->milters = std::make_unique<internal::MilterChain>(configs);
  }
}

Session::~Session() = default;

std::string_view Session::helo() const { return state_->helo; }

bool Session::delivery_outstanding() const { return state_->awaiting_delivery; }

bool Session::input_blocked() const {
  const State& s = *state_;
  if (s.awaiting_delivery || s.deliver_after_fragment || s.check_token != 0) return true;
  if (s.milter_wait != internal::MilterWait::kNone) return true;
  return StreamFull();
}

bool Session::StreamFull() const {
  const State& s = *state_;
  // The body buffer is full and its predecessor not stored yet.
  return receiving_message() && s.fragment_outstanding && s.decoder.StreamRoom() == 0;
}

std::string_view Session::streaming_id() const { return state_->stream_id; }

bool Session::receiving_message() const {
  const State& s = *state_;
  return s.mode == Mode::kData ||
         (s.mode == Mode::kChunk && s.chunk_disposition == Disposition::kStore);
}

bool Session::receiving_large_message() const {
  const State& s = *state_;
  // A client that announced a large message (SIZE=) is read one receive at a time from its first
  // body octet, so that nothing of a multishot receive's burst waits in the driver; without SIZE=
  // from a quarter of a body buffer on.
  return !s.stream_id.empty() ||
         (receiving_message() &&
          (s.decoder.size() >= kStreamChunkBytes / 4 || s.announced_size >= kStreamChunkBytes / 4));
}

bool Session::tls_handshake_pending() const { return state_->tls_pending; }

size_t Session::MemoryUsageForTest() const {
  return internal::HeapBytes(state_->line) + state_->decoder.capacity() +
         internal::HeapBytes(state_->pending) + internal::HeapBytes(state_->milter_headers) +
         state_->milter_body.capacity();
}

void Session::Reply(Output& out, std::string_view line) {
  out.replies.append(line);
  out.replies.append("\r\n");
}

// kMaxProtocolErrors is the default of `[limits] max_errors`; the session reads the configured one.
static_assert(core::LimitsConfig::kDefaultMaxErrors == kMaxProtocolErrors);

void Session::ReplyError(Output& out, std::string_view line) {
  Reply(out, line);
  if (++state_->errors >= snapshot_->config.limits.max_errors && !closed_) {
    absl::StrAppend(&out.replies, "421 4.7.0 ", snapshot_->config.hostname,
                    " Error: too many errors\r\n");
    Close(out, "too-many-errors");
  }
}

void Session::Close(Output& out, std::string_view reason) {
  State& s = *state_;
  closed_ = true;
  out.close = true;
  end_reason_.assign(reason);
  deadline_ = absl::InfiniteFuture();
  s.in_mail = false;
  s.envelope.Clear();
  s.decoder.Clear();
  AbandonStream(out);
  EndSasl();
  s.check_token = 0;
  std::string().swap(s.line);
  std::string().swap(s.pending);
  if (s.milters != nullptr) s.milters->Quit(out);
  s.milter_wait = internal::MilterWait::kNone;
}

void Session::SetProxiedClient(const core::Endpoint& client, const core::Endpoint& local,
                               const core::Endpoint& balancer) {
  if (closed_ || state_->started || facts_.tls) return;
  facts_.client = client;
  facts_.local = local;
  facts_.proxied_by = balancer;
}

void Session::Start(absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || s.started) return;
  s.started = true;
  deadline_ = now + snapshot_->config.timeouts.idle;
  if (s.milters != nullptr) {
    // The greeting waits for the milters' CONNECT verdicts (docs/milter.md).
    SetConnectMacros();
    internal::MilterEvent event;
    event.kind = internal::MilterEvent::Kind::kConnect;
    const core::IpAddress& client = facts_.client.address;
    event.connect.hostname = absl::StrCat("[", client.ToString(), "]");
    event.connect.family = client.is_v4() ? milter::Family::kInet : milter::Family::kInet6;
    event.connect.port = facts_.client.port;
    event.connect.address = client.ToString();
    RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kConnect), now, out);
    return;
  }
  absl::StrAppend(&out.replies, "220 ", snapshot_->config.hostname, " ESMTP ringmx\r\n");
}

void Session::OnInput(std::string_view input, absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || input.empty()) return;
  if (s.tls_pending) return;  // plaintext after STARTTLS: dropped (see `tls_pending`)
  if (!s.started) {
    // The client spoke before our greeting: a spambot that does not wait (RFC 5321 section
    // 4.3.1 requires the client to wait for the 220).
    Reply(out, "554 5.5.1 Error: talked before greeting");
    Close(out, "early-talk");
    return;
  }
  if (input_blocked()) {
    BufferPending(input);
    return;
  }
  const size_t n = Process(input, now, out);
  // After an accepted STARTTLS the rest of `input` is dropped, not kept.
  if (!closed_ && !s.tls_pending && n < input.size()) BufferPending(input.substr(n));
}

size_t Session::OnInputUntilFull(std::string_view input, absl::Time now, Output& out) {
  State& s = *state_;
  if (!closed_ && StreamFull()) return 0;  // nothing fits: the caller keeps it all
  if (closed_ || input.empty() || s.tls_pending || !s.started || input_blocked()) {
    OnInput(input, now, out);
    return input.size();
  }
  const size_t n = Process(input, now, out);
  if (!closed_ && !s.tls_pending && n < input.size()) {
    if (StreamFull()) return n;  // the caller keeps the rest
    BufferPending(input.substr(n));
  }
  return input.size();
}

void Session::OnTlsEstablished(const core::TlsFacts& facts, absl::Time now, Output& out) {
  State& s = *state_;
  // Due after an accepted STARTTLS, or before Start() on an implicit listener.
  if (closed_ || (s.started && !s.tls_pending)) return;
  facts_.tls = true;
  facts_.tls_facts = facts;
  s.tls_pending = false;
  // RFC 3207 section 4.2: the server must discard any knowledge obtained from the client (the
  // HELO/EHLO argument, a transaction) and the client must send EHLO again. The error count is
  // the connection's, not the protocol state's, and carries over.
  s.hello = Hello::kNone;
  s.helo.clear();
  ResetTransaction(out);
  s.mode = Mode::kCommand;
  s.discarding_line = false;
  s.discarded_line_octets = 0;
  std::string().swap(s.line);
  std::string().swap(s.pending);
  s.pending_overflow = false;
  if (s.started) deadline_ = now + snapshot_->config.timeouts.idle;
  MaybeCloseForShutdown(out);
}

void Session::OnTlsFailed(absl::Time /*now*/, Output& out) {
  if (closed_) return;
  Close(out, "tls-failed");
}

void Session::OnDelivered(const absl::Status& result, absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || !s.awaiting_delivery) return;
  s.awaiting_delivery = false;
  deadline_ = now + snapshot_->config.timeouts.idle;
  if (result.ok()) {
    absl::StrAppend(&out.replies, "250 2.0.0 Ok: queued as ", s.outstanding_id, "\r\n");
    ++stats_.messages_accepted;
    stats_.bytes_accepted += s.outstanding_size;
    out.log.push_back(
        absl::StrCat("message id=", s.outstanding_id, " ", s.outstanding_log, " result=queued"));
  } else {
    Reply(out, "452 4.3.1 Insufficient system storage");
    ++stats_.messages_rejected;
    out.log.push_back(absl::StrCat("message id=", s.outstanding_id, " ", s.outstanding_log,
                                   " result=refused reply=452 store=\"",
                                   absl::CEscape(result.message()), "\""));
  }
  s.outstanding_id.clear();
  s.outstanding_size = 0;
  s.outstanding_log.clear();
  ResumeInput(now, out);
  // After a shutdown request the message just answered is not followed by an unsolicited 421:
  // the client may already be sending its next command, and closing under it could lose the
  // 250 to a reset. That command gets the 421.
}

void Session::OnFragmentStored(const absl::Status& result, absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || !s.fragment_outstanding) return;
  s.fragment_outstanding = false;
  if (!result.ok()) s.stream_failed = true;  // answered 452 at the end of the data
  if (s.deliver_after_fragment) {
    s.deliver_after_fragment = false;
    deadline_ = now + snapshot_->config.timeouts.idle;
    FinishMessage(now, out);
  }
  ResumeInput(now, out);
}

void Session::ResumeInput(absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || input_blocked()) return;
  if (s.pending_overflow) {
    absl::StrAppend(&out.replies, "421 4.7.0 ", snapshot_->config.hostname,
                    " Error: too much pipelined input\r\n");
    Close(out, "too-much-pipelining");
    return;
  }
  if (!s.pending.empty()) {
    std::string input;
    input.swap(s.pending);
    const size_t n = Process(input, now, out);
    if (!closed_ && !s.tls_pending && n < input.size()) {
      // Blocked again (another delivery, or a full buffer): keep the rest (it was within the
      // bound already).
      input.erase(0, n);
      s.pending.swap(input);
    }
  }
}

void Session::OnTimeout(absl::Time now, Output& out) {
  if (closed_ || now < deadline_) return;
  if (state_->tls_pending) {
    // The client is in its TLS handshake: a plaintext reply would be read as a broken record.
    Close(out, "timeout");
    return;
  }
  absl::StrAppend(&out.replies, "421 4.4.2 ", snapshot_->config.hostname,
                  " Error: timeout exceeded\r\n");
  Close(out, "timeout");
}

void Session::OnShutdown(absl::Time /*now*/, Output& out) {
  State& s = *state_;
  if (closed_) return;
  s.shutdown = true;
  MaybeCloseForShutdown(out);
}

bool Session::Idle() const {
  const State& s = *state_;
  return s.mode == Mode::kCommand && !s.in_mail && s.line.empty() && !s.discarding_line &&
         !s.awaiting_delivery && s.pending.empty() && !s.tls_pending && s.check_token == 0 &&
         !s.sasl_active && s.milter_wait == internal::MilterWait::kNone;
}

void Session::MaybeCloseForShutdown(Output& out) {
  if (closed_ || !state_->shutdown || !Idle()) return;
  Reply(out, "421 4.3.2 Service shutting down");
  Close(out, "shutdown");
}

void Session::BufferPending(std::string_view input) {
  State& s = *state_;
  if (s.pending_overflow) return;
  if (s.pending.size() + input.size() > kMaxPendingInputBytes) {
    s.pending_overflow = true;
    std::string().swap(s.pending);
    return;
  }
  internal::GrowWithin(s.pending, input.size(), kMaxPendingInputBytes);
  s.pending.append(input);
}

size_t Session::Process(std::string_view input, absl::Time now, Output& out) {
  size_t pos = 0;
  // Each Consume* call takes at least one octet, so this loop ends.
  while (pos < input.size() && !closed_ && !input_blocked() && !state_->tls_pending) {
    const std::string_view rest = input.substr(pos);
    switch (state_->mode) {
      case Mode::kCommand:
        pos += ConsumeCommandBytes(rest, now, out);
        break;
      case Mode::kData:
        pos += ConsumeData(rest, now, out);
        break;
      case Mode::kChunk:
        pos += ConsumeChunk(rest, now, out);
        break;
    }
  }
  return pos;
}

size_t Session::ConsumeCommandBytes(std::string_view input, absl::Time now, Output& out) {
  State& s = *state_;
  const char* lf = static_cast<const char*>(memchr(input.data(), '\n', input.size()));
  // Octets of the current line before its LF, as far as this input shows them. The cut depends
  // only on the lines' lengths, never on how the input was split into reads.
  const size_t before_lf =
      static_cast<size_t>((lf == nullptr ? input.data() + input.size() : lf) - input.data());
  const size_t line_octets =
      (s.discarding_line ? s.discarded_line_octets : s.line.size()) + before_lf;
  // RFC 5321 section 4.5.3.1.4: 512 octets with the CR LF, so at most 511 before the LF.
  const size_t limit = LineLimit(input);
  const bool overlong = line_octets >= limit;
  if (overlong && s.overlong_octets + line_octets >= kMaxOverlongCommandOctets) {
    CutLongLine(out);
    return input.size();
  }
  if (overlong && lf != nullptr) s.overlong_octets += line_octets;
  if (s.discarding_line) {
    if (lf == nullptr) {
      s.discarded_line_octets = line_octets;
      return input.size();
    }
    s.discarding_line = false;
    s.discarded_line_octets = 0;
    HandleLine({}, now, out);  // an empty view: the line was too long
    return before_lf + 1;
  }
  if (lf == nullptr) {
    if (overlong) {
      // RFC 5321 section 4.5.3.1.4: even with its LF this line would exceed 512 octets. Drop it
      // now instead of buffering it; the 500 goes out when its LF arrives, in command order.
      std::string().swap(s.line);
      s.discarding_line = true;
      s.discarded_line_octets = line_octets;
    } else {
      if (s.line.capacity() < kMaxCommandLineOctets) s.line.reserve(kMaxCommandLineOctets);
      s.line.append(input);
    }
    return input.size();
  }
  const size_t n = static_cast<size_t>(lf - input.data()) + 1;
  if (s.line.size() + n > limit) {
    s.line.clear();
    HandleLine({}, now, out);
  } else if (s.line.empty()) {
    HandleLine(input.substr(0, n), now, out);  // the common case: no copy
  } else {
    s.line.append(input.data(), n);
    HandleLine(s.line, now, out);
    if (limit == kMaxSaslLineBytes) {
      core::WipeString(s.line);  // it may have held a password (AUTH PLAIN, a LOGIN answer)
    } else {
      s.line.clear();
    }
  }
  return n;
}

void Session::CutLongLine(Output& out) {
  Reply(out, kLineTooLongReply);
  absl::StrAppend(&out.replies, "421 4.7.0 ", snapshot_->config.hostname,
                  " Error: line too long\r\n");
  Close(out, "too-long-line");
}

void Session::HandleLine(std::string_view line, absl::Time now, Output& out) {
  State& s = *state_;
  ++stats_.commands;
  deadline_ = now + snapshot_->config.timeouts.idle;

  // An empty `line` means "too long". Otherwise it ends in LF; it must end in CR LF, and hold no
  // other CR and no NUL. A bare LF is refused rather than tolerated (Postfix tolerates it): the
  // same ambiguity is what SMTP smuggling exploits.
  std::string_view problem;
  CommandLine cmd;
  if (line.empty()) {
    problem = kLineTooLongReply;
  } else if (line.size() < 2 || line[line.size() - 2] != '\r') {
    problem = "500 5.5.2 Error: bare CR or LF in command line";
  } else {
    const std::string_view content = line.substr(0, line.size() - 2);
    if (memchr(content.data(), '\r', content.size()) != nullptr) {
      problem = "500 5.5.2 Error: bare CR or LF in command line";
    } else if (memchr(content.data(), '\0', content.size()) != nullptr) {
      problem = "500 5.5.2 Error: NUL character in command line";
    } else {
      cmd = ParseCommandLine(content);
    }
  }

  if (s.sasl_active) {
    // The line is the client's answer to our 334, not a command (RFC 4954 section 4).
    if (s.shutdown) {
      EndSasl();
      Reply(out, "421 4.3.2 Service shutting down");
      Close(out, "shutdown");
    } else if (!problem.empty()) {
      EndSasl();
      ReplyError(out, problem);
    } else {
      HandleSaslLine(line.substr(0, line.size() - 2), out);
    }
    return;
  }
  if (s.shutdown) {
    // DESIGN.md section 8: 421 at the next command. QUIT still gets its 221, and a BDAT
    // transfer already under way may finish its message.
    const bool quit = cmd.verb == Verb::kQuit && cmd.args.empty();
    const bool bdat_continues = cmd.verb == Verb::kBdat && s.bdat_used;
    if (!quit && !bdat_continues) {
      Reply(out, "421 4.3.2 Service shutting down");
      Close(out, "shutdown");
      return;
    }
  }
  if (!problem.empty()) {
    ReplyError(out, problem);
    return;
  }
  if (NeedsTls(cmd.verb) && policy::TlsRequiredViolated(*snapshot_, facts_)) {
    ReplyError(out, kTlsRequiredReply);
    return;
  }

  switch (cmd.verb) {
    case Verb::kEhlo:
      DoHello(/*ehlo=*/true, cmd.args, out);
      break;
    case Verb::kHelo:
      DoHello(/*ehlo=*/false, cmd.args, out);
      break;
    case Verb::kMail:
      DoMail(cmd.args, now, out);
      break;
    case Verb::kRcpt:
      DoRcpt(cmd.args, out);
      break;
    case Verb::kData:
      DoData(cmd.args, now, out);
      break;
    case Verb::kBdat:
      DoBdat(cmd.args, now, out);
      break;
    case Verb::kRset:
      if (!cmd.args.empty()) {
        ReplyError(out, "501 5.5.4 Syntax: RSET");
        break;
      }
      ResetTransaction(out);
      Reply(out, "250 2.0.0 Ok");
      break;
    case Verb::kNoop:  // RFC 5321 section 4.1.1.9: an argument is allowed and ignored
      Reply(out, "250 2.0.0 Ok");
      break;
    case Verb::kQuit:
      if (!cmd.args.empty()) {
        ReplyError(out, "501 5.5.4 Syntax: QUIT");
        break;
      }
      Reply(out, "221 2.0.0 Bye");
      Close(out, "quit");
      break;
    case Verb::kVrfy:
      if (cmd.args.empty()) {
        ReplyError(out, "501 5.5.4 Syntax: VRFY address");
        break;
      }
      // RFC 5321 section 3.5.3: 252 when we will not verify but will accept.
      Reply(out, "252 2.0.0 Cannot VRFY user; try RCPT to attempt delivery");
      break;
    case Verb::kHelp:
      Reply(out, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT");
      break;
    case Verb::kStartTls:
      DoStartTls(cmd.args, now, out);
      break;
    case Verb::kAuth:
      DoAuth(cmd.args, out);
      break;
    case Verb::kNotImplemented:
      ReplyError(out, "502 5.5.1 Error: command not implemented");
      break;
    case Verb::kUnknown:
      if (s.milters != nullptr) {
        // The milters see unknown commands (SMFIC_UNKNOWN) before the 500.
        internal::MilterEvent event;
        event.kind = internal::MilterEvent::Kind::kUnknown;
        event.text.assign(line.substr(0, line.size() - 2));
        RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kUnknown), now,
                   out);
        break;
      }
      ReplyError(out, "500 5.5.2 Error: command not recognized");
      break;
  }
}

void Session::DoHello(bool ehlo, std::string_view args, Output& out) {
  State& s = *state_;
  if (args.empty()) {
    ReplyError(out, ehlo ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
    return;
  }
  // RFC 5321 section 4.1.4: EHLO/HELO mid-transaction resets it.
  ResetTransaction(out);
  s.hello = ehlo ? Hello::kEhlo : Hello::kHelo;
  s.helo.assign(args);
  if (s.milters != nullptr) {
    const core::TlsFacts* tls = facts_.tls_facts ? &*facts_.tls_facts : nullptr;
    if (tls != nullptr) {
      s.milters->SetMacro("tls_version", tls->version);
      s.milters->SetMacro("cipher", tls->cipher);
      s.milters->SetMacro("cipher_bits", absl::StrCat(tls->cipher_bits));
      if (tls->client_cert.result != core::ClientCertResult::kNone) {
        s.milters->SetMacro("cert_subject", tls->client_cert.subject);
        s.milters->SetMacro("cert_issuer", tls->client_cert.issuer);
      }
    }
    internal::MilterEvent event;
    event.kind = internal::MilterEvent::Kind::kHelo;
    event.text.assign(args);
    s.milter_ehlo = ehlo;
    RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kHelo),
               absl::InfinitePast(), out);
    return;
  }
  ReplyHello(ehlo, out);
}

void Session::ReplyHello(bool ehlo, Output& out) {
  const std::string& host = snapshot_->config.hostname;
  if (!ehlo) {
    absl::StrAppend(&out.replies, "250 ", host, "\r\n");
    return;
  }
  // RFC 2034 section 3: no enhanced status codes on the EHLO reply. RFC 3207 section 4.2:
  // STARTTLS is not advertised once TLS is up.
  absl::StrAppend(&out.replies, "250-", host, "\r\n250-PIPELINING\r\n250-SIZE ",
                  snapshot_->config.policy.max_message_size, "\r\n",
                  policy::OfferStartTls(*snapshot_, facts_) ? "250-STARTTLS\r\n" : "",
                  // RFC 4954: AUTH only once TLS protects the credentials.
                  facts_.listener->auth && facts_.tls ? "250-AUTH PLAIN LOGIN\r\n" : "",
                  // RFC 3461: DSN (NOTIFY, RET, ENVID, ORCPT; docs/dsn.md).
                  "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n"
                  "250-SMTPUTF8\r\n250 CHUNKING\r\n");
}

void Session::DoStartTls(std::string_view args, absl::Time /*now*/, Output& out) {
  State& s = *state_;
  // RFC 3207 section 4: "STARTTLS" CRLF, no parameters. The checks and texts are Postfix's.
  if (!args.empty()) {
    ReplyError(out, "501 5.5.4 Syntax: STARTTLS");
    return;
  }
  if (facts_.tls) {
    ReplyError(out, "554 5.5.1 Error: TLS already active");
    return;
  }
  if (!policy::OfferStartTls(*snapshot_, facts_)) {
    ReplyError(out, "502 5.5.1 Error: command not implemented");
    return;
  }
  // STARTTLS inside a transaction is accepted and the transaction dropped, as Postfix does: RFC
  // 3207 section 4.2 resets the session after the handshake anyway, so nothing of it could be
  // used, and refusing would only keep a confused client in plaintext.
  ResetTransaction(out);
  Reply(out, "220 2.0.0 Ready to start TLS");
  out.start_tls = true;
  // From here every octet is dropped until the handshake ends, including the rest of this input
  // (Process stops; OnInput and OnDelivered do not keep the remainder).
  s.tls_pending = true;
}

void Session::DoMail(std::string_view args, absl::Time now, Output& out) {
  State& s = *state_;
  if (s.hello == Hello::kNone) {
    ReplyError(out, "503 5.5.1 Error: send HELO/EHLO first");
    return;
  }
  if (s.in_mail) {
    ReplyError(out, "503 5.5.1 Error: nested MAIL command");
    return;
  }
  if (!StartsWithIgnoreCase(args, "FROM:")) {
    ReplyError(out, "501 5.5.4 Syntax: MAIL FROM:<address>");
    return;
  }
  std::string_view text = args.substr(5);
  while (!text.empty() && IsBlank(text.front())) text.remove_prefix(1);  // "FROM: <a@b>"
  const std::optional<Path> path = ParsePath(text, PathKind::kReversePath);
  if (!path || (!path->rest.empty() && !IsBlank(path->rest.front()))) {
    ReplyError(out, "501 5.1.7 Bad sender address syntax");
    return;
  }

  bool smtputf8 = false;
  bool body_8bit = false;
  bool seen_size = false;
  bool seen_body = false;
  uint64_t declared_size = 0;
  DsnMailParams dsn;
  ParamReader reader(path->rest);
  Param p;
  while (reader.Next(p)) {
    if (IsDsnMailParam(p.keyword)) {  // RFC 3461 RET, ENVID
      const std::optional<std::string_view> value =
          p.has_value ? std::optional<std::string_view>(p.value) : std::nullopt;
      if (std::optional<DsnParamError> error = ApplyDsnMailParam(p.keyword, value, dsn)) {
        ReplyError(out, error->reply);
        return;
      }
    } else if (EqualsIgnoreCase(p.keyword, "SIZE")) {  // RFC 1870
      if (seen_size || !p.has_value || !AllDigits(p.value)) {
        ReplyError(out, "501 5.5.4 Bad message size syntax");
        return;
      }
      seen_size = true;
      declared_size = ParseDecimalSaturating(p.value);
    } else if (EqualsIgnoreCase(p.keyword, "BODY")) {  // RFC 6152
      if (!seen_body && p.has_value && EqualsIgnoreCase(p.value, "7BIT")) {
        body_8bit = false;
      } else if (!seen_body && p.has_value && EqualsIgnoreCase(p.value, "8BITMIME")) {
        body_8bit = true;
      } else if (p.has_value && EqualsIgnoreCase(p.value, "BINARYMIME")) {
        // RFC 3030 BINARYMIME is not offered in EHLO.
        ReplyError(out, "555 5.5.4 Unsupported option: BODY=BINARYMIME");
        return;
      } else {
        ReplyError(out, "501 5.5.4 Bad BODY keyword syntax");
        return;
      }
      seen_body = true;
    } else if (EqualsIgnoreCase(p.keyword, "SMTPUTF8")) {  // RFC 6531 section 3.4
      if (p.has_value) {
        ReplyError(out, "501 5.5.4 Bad SMTPUTF8 parameter syntax");
        return;
      }
      smtputf8 = true;
    } else {
      std::string reply = "555 5.5.4 Unsupported option: ";
      AppendPrintable(reply, p.keyword);
      ReplyError(out, reply);
      return;
    }
  }
  if (path->non_ascii && !smtputf8) {
    Reply(out, "553 5.6.7 Error: non-ASCII address requires SMTPUTF8");
    return;
  }
  if (declared_size > snapshot_->config.policy.max_message_size) {
    Reply(out, "552 5.3.4 Message size exceeds fixed maximum message size");
    return;
  }

  s.in_mail = true;
  s.announced_size = declared_size;
  s.envelope.Clear();
  s.envelope.mail_from.assign(path->mailbox);
  s.envelope.smtputf8 = smtputf8;
  s.envelope.body_8bitmime = body_8bit;
  s.envelope.dsn = std::move(dsn);
  reader = ParamReader(path->rest);
  while (reader.Next(p)) {
    MailParam& mp = s.envelope.mail_params.emplace_back();
    mp.keyword.reserve(p.keyword.size());
    for (char c : p.keyword) mp.keyword.push_back((c >= 'a' && c <= 'z') ? c - 32 : c);
    mp.value.assign(p.value);
    mp.has_value = p.has_value;
  }
  if (MiltersFor(/*transaction=*/true)) {
    s.milter_txn = true;
    s.txn_id = ids_.Next(now);
    s.milters->BeginMessage();
    s.milters->SetMacro("i", s.txn_id);
    s.milters->SetMacro("mail_addr", s.envelope.mail_from);
    if (!facts_.auth_identity.empty()) {
      s.milters->SetMacro("auth_type", s.auth_mechanism);
      s.milters->SetMacro("auth_authen", facts_.auth_identity);
    }
    internal::MilterEvent event;
    event.kind = internal::MilterEvent::Kind::kMail;
    event.text = absl::StrCat("<", s.envelope.mail_from, ">");
    for (const MailParam& mp : s.envelope.mail_params) {
      event.args.push_back(mp.has_value ? absl::StrCat(mp.keyword, "=", mp.value) : mp.keyword);
    }
    RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kMail), now, out);
    return;
  }
  Reply(out, "250 2.1.0 Ok");
}

void Session::DoRcpt(std::string_view args, Output& out) {
  State& s = *state_;
  if (!s.in_mail) {
    ReplyError(out, "503 5.5.1 Error: need MAIL command");
    return;
  }
  if (!StartsWithIgnoreCase(args, "TO:")) {
    ReplyError(out, "501 5.5.4 Syntax: RCPT TO:<address>");
    return;
  }
  std::string_view text = args.substr(3);
  while (!text.empty() && IsBlank(text.front())) text.remove_prefix(1);
  const std::optional<Path> path = ParsePath(text, PathKind::kForwardPath);
  if (!path || (!path->rest.empty() && !IsBlank(path->rest.front()))) {
    ReplyError(out, "501 5.1.3 Bad recipient address syntax");
    return;
  }
  // RFC 3461 NOTIFY and ORCPT are the only RCPT parameters offered.
  DsnRcptParams dsn;
  ParamReader reader(path->rest);
  Param p;
  while (reader.Next(p)) {
    if (!IsDsnRcptParam(p.keyword)) {
      std::string reply = "555 5.5.4 Unsupported option: ";
      AppendPrintable(reply, p.keyword);
      ReplyError(out, reply);
      return;
    }
    const std::optional<std::string_view> value =
        p.has_value ? std::optional<std::string_view>(p.value) : std::nullopt;
    if (std::optional<DsnParamError> error = ApplyDsnRcptParam(p.keyword, value, dsn)) {
      ReplyError(out, error->reply);
      return;
    }
  }
  if (path->non_ascii && !s.envelope.smtputf8) {
    Reply(out, "553 5.6.7 Error: non-ASCII address requires SMTPUTF8");
    return;
  }
  const int max_recipients = snapshot_->config.policy.max_recipients;
  if (max_recipients > 0 && s.envelope.rcpt_to.size() >= static_cast<size_t>(max_recipients)) {
    // RFC 5321 section 4.5.3.1.10: 452 (the client may send the rest in another transaction).
    // Past kMaxRecipientOvershoot of them the client is flooding, not retrying: each further one
    // counts as an error, so the session ends with 421 after kMaxProtocolErrors.
    if (s.recipient_overshoot < kMaxRecipientOvershoot) {
      ++s.recipient_overshoot;
      Reply(out, "452 4.5.3 Error: too many recipients");
    } else {
      ReplyError(out, "452 4.5.3 Error: too many recipients");
    }
    return;
  }
  const policy::RecipientDecision decision =
      policy::DecideRecipient(*snapshot_, facts_, path->local_part, path->domain);
  // Relays and refusals are logged with their reason. Mail for our own domains, the common case
  // of an MX, is not: its session line counts it, and a line per recipient would cost a write each.
  if (decision.rule != policy::RecipientRule::kLocalDomain &&
      decision.rule != policy::RecipientRule::kPostmaster) {
    std::string& log = out.log.emplace_back("rcpt=<");
    policy::AppendLogSafe(log, path->mailbox);
    absl::StrAppend(&log, "> decision=", core::Av(policy::DecisionName(decision)),
                    " reason=", policy::DecisionReason(decision));
  }
  switch (decision.verdict) {
    case policy::RecipientVerdict::kAccept:
      break;
    case policy::RecipientVerdict::kUnknownUser:
      RefuseRecipient(path->mailbox, path->rest,
                      absl::StrCat("550 5.1.1 <", core::Av(path->mailbox),
                                   ">: Recipient address rejected: User unknown"),
                      out);
      return;
    case policy::RecipientVerdict::kRelayDenied:
      RefuseRecipient(
          path->mailbox, path->rest,
          absl::StrCat("554 5.7.1 <", core::Av(path->mailbox), ">: Relay access denied"), out);
      return;
  }
  // Once delivery is configured, mail we could never pass on is refused now rather than bounced
  // later; and a route that verifies recipients asks its next hop first (docs/delivery.md).
  if (!snapshot_->routes.empty()) {
    const core::RouteConfig* route = snapshot_->routes.Lookup(path->domain);
    if (route == nullptr) {
      RefuseRecipient(path->mailbox, path->rest,
                      absl::StrCat("550 5.4.4 <", core::Av(path->mailbox),
                                   ">: Recipient address rejected: no route to its domain"),
                      out);
      return;
    }
    if (route->verify_recipients && decision.rule != policy::RecipientRule::kPostmaster) {
      CheckRequest check;
      check.token = ++s.next_token;
      check.kind = CheckRequest::Kind::kRecipient;
      check.address = path->mailbox;
      s.check_token = check.token;
      s.check_kind = check.kind;
      s.check_rcpt = path->mailbox;
      s.check_rcpt_dsn = std::move(dsn);
      s.check_rcpt_params.assign(path->rest);
      out.check = std::move(check);
      return;
    }
  }
  AddRecipient(path->mailbox, std::move(dsn), path->rest, out);
}

void Session::AddRecipient(std::string_view mailbox, DsnRcptParams dsn, std::string_view params,
                           Output& out) {
  State& s = *state_;
  if (s.milter_txn) {
    s.milters->SetMacro("rcpt_addr", std::string(mailbox));
    const size_t at = mailbox.rfind('@');
    s.milters->SetMacro("rcpt_host",
                        std::string(at == std::string_view::npos ? "" : mailbox.substr(at + 1)));
    s.milters->SetMacro("rcpt_mailer", "smtp");
    internal::MilterEvent event;
    event.kind = internal::MilterEvent::Kind::kRcpt;
    event.text = absl::StrCat("<", core::Av(mailbox), ">");
    event.args = absl::StrSplit(core::Av(params), ' ', absl::SkipEmpty());
    s.milter_rcpt.assign(mailbox);
    s.milter_rcpt_dsn = std::move(dsn);
    RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kRcpt),
               absl::InfinitePast(), out);
    return;
  }
  AppendRecipient(mailbox, std::move(dsn), out);
}

void Session::RefuseRecipient(std::string_view mailbox, std::string_view params, std::string reply,
                              Output& out) {
  State& s = *state_;
  if (!s.milter_txn || !s.milters->WantsRejectedRcpts()) {
    Reply(out, reply);
    return;
  }
  internal::MilterEvent event;
  event.kind = internal::MilterEvent::Kind::kRejectedRcpt;
  event.text = absl::StrCat("<", core::Av(mailbox), ">");
  event.args = absl::StrSplit(core::Av(params), ' ', absl::SkipEmpty());
  // "CODE X.Y.Z text" (our refusals, a check's reply): split for the milters' macros.
  const bool coded = reply.size() >= 4 && reply[0] >= '4' && reply[0] <= '5' && reply[1] >= '0' &&
                     reply[1] <= '9' && reply[2] >= '0' && reply[2] <= '9' && reply[3] == ' ';
  event.our_reply.code =
      coded ? (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0') : 550;
  const std::string_view text = coded ? std::string_view(reply).substr(4) : reply;
  const size_t sp = text.find(' ');
  if (coded && sp != std::string_view::npos && text.size() > 0 && text[0] == reply[0]) {
    event.our_reply.enhanced.assign(text.substr(0, sp));
  }
  event.our_reply.lines.emplace_back(text);
  s.milter_rcpt.assign(mailbox);
  s.milter_reply = std::move(reply);
  RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kRejectedRcpt),
             absl::InfinitePast(), out);
}

void Session::AppendRecipient(std::string_view mailbox, DsnRcptParams dsn, Output& out) {
  State& s = *state_;
  s.envelope.rcpt_to.emplace_back(mailbox);
  // Kept the same length as rcpt_to (Envelope's invariant): entry i is recipient i's.
  s.envelope.rcpt_dsn.resize(s.envelope.rcpt_to.size() - 1);
  s.envelope.rcpt_dsn.push_back(std::move(dsn));
  Reply(out, "250 2.1.5 Ok");
}

void Session::FinishRcptCheck(const CheckAnswer& answer, Output& out) {
  State& s = *state_;
  std::string mailbox = std::move(s.check_rcpt);
  s.check_rcpt.clear();
  std::string_view result;
  switch (answer.decision) {
    case CheckAnswer::Decision::kAccept:
      result = "known";
      // The transaction may have ended meanwhile only through input, which waited: it is open.
      AddRecipient(mailbox, std::move(s.check_rcpt_dsn), s.check_rcpt_params, out);
      break;
    case CheckAnswer::Decision::kReject:
      result = "unknown";
      RefuseRecipient(
          mailbox, s.check_rcpt_params,
          answer.reply.empty()
              ? absl::StrCat("550 5.1.1 <", mailbox, ">: Recipient address rejected: User unknown")
              : answer.reply,
          out);
      break;
    case CheckAnswer::Decision::kTempFail:
      result = "tempfail";
      RefuseRecipient(mailbox, s.check_rcpt_params,
                      answer.reply.empty()
                          ? absl::StrCat("450 4.4.1 <", mailbox,
                                         ">: Recipient address verification failed, try later")
                          : answer.reply,
                      out);
      break;
    case CheckAnswer::Decision::kRefuse:
      result = "refused";
      Reply(out, answer.reply.empty() ? "421 4.7.0 Closing connection" : answer.reply);
      Close(out, "verify-refused");
      break;
  }
  s.check_rcpt_dsn = DsnRcptParams();
  std::string& log = out.log.emplace_back("rcpt=<");
  policy::AppendLogSafe(log, mailbox);
  absl::StrAppend(&log, "> verify=", core::Av(result));
}

void Session::ResetTransaction(Output& out) {
  State& s = *state_;
  AbandonStream(out);
  s.in_mail = false;
  s.announced_size = 0;
  s.envelope.Clear();
  s.recipient_overshoot = 0;
  s.bdat_used = false;
  s.rejection_counted = false;
  s.decoder.Clear();
  if (s.milter_txn && s.milters != nullptr && !s.milters->busy()) s.milters->Abort(out);
  if (s.milters != nullptr && !s.txn_id.empty()) s.milters->ClearMacro("i");
  s.milter_txn = false;
  s.txn_id.clear();
  s.milter_discard = false;
  s.milter_refusal.reset();
  s.milter_content = false;
  s.milter_headers_done = false;
  s.milter_headers_sent = false;
  s.milter_header_too_large = false;
  s.milter_end_started = false;
  s.milter_header_scan = 0;
  s.milter_header_field_open = false;
  std::string().swap(s.milter_headers);
  s.milter_body.clear();
  s.milter_body_bytes = 0;
  s.milter_changes.clear();
  s.milter_quarantine.reset();
  s.milter_quarantine_by.clear();
  s.milter_data_refused = false;
}

}  // namespace ringmx::smtp

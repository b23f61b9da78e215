// smtp::Session, part 4: the milters (docs/milter.md, DESIGN.md section 6b). The session runs its
// listener's milters through an internal::MilterChain and parks the command (or the greeting, or
// a piece of the message) until they have answered; the driver moves their bytes.
//
// The content: while milters see a message, the client's header section is held here (at most
// kMaxMilterHeaderBytes) instead of being streamed, so that their header changes can be applied
// to it; the body streams to the store as usual, each piece once the milters have taken it. The
// stored message is then our Received + the (changed) header section as `trace_headers`, and the
// body as fragments and tail.
#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#include "core/json.h"
#include "core/strings.h"
#include "smtp/dsn_params.h"
#include "smtp/envelope.h"
#include "smtp/internal/session_state.h"
#include "smtp/milter/message.h"
#include "smtp/session.h"

namespace ringmx::smtp {

using internal::MilterEvent;
using internal::MilterOutcome;
using internal::MilterWait;
using internal::Mode;
using VK = milter::Verdict::Kind;

namespace {

// Length of the field name when `line` starts a header field (name, optional WSP, ':'), else 0
// (the rule of milter::SplitHeaders).
bool StartsField(std::string_view line) {
  size_t i = 0;
  while (i < line.size()) {
    const unsigned char u = static_cast<unsigned char>(line[i]);
    if (u < 0x21 || u > 0x7E || line[i] == ':') break;
    ++i;
  }
  if (i == 0) return false;
  while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
  return i < line.size() && line[i] == ':';
}

}  // namespace

size_t Session::milter_count() const {
  return state_->milters == nullptr ? 0 : state_->milters->size();
}

const core::MilterConfig& Session::milter_config(size_t i) const {
  const std::string& name = state_->milters->engine(i).config().name;
  for (const core::MilterConfig& m : snapshot_->config.milters) {
    if (m.name == name) return m;
  }
  return snapshot_->config.milters.front();  // not reached: the chain is built from these
}

milter::Session::Waiting Session::MilterWaiting(size_t i) const {
  if (state_->milters == nullptr || i >= state_->milters->size()) {
    return milter::Session::Waiting::kNothing;
  }
  return state_->milters->engine(i).waiting_for();
}

bool Session::milter_outstanding() const { return state_->milter_wait != MilterWait::kNone; }

bool Session::MiltersFor(bool transaction) const {
  const State& s = *state_;
  if (s.milters == nullptr) return false;
  if (!transaction) return true;
  // milters_skip: from MAIL on, such a session's transactions are not shown to the milters.
  const core::MiltersSkip skip = facts_.listener->milters_skip;
  const bool authenticated = !facts_.auth_identity.empty();
  bool relay = false;
  for (const core::Cidr& cidr : snapshot_->config.policy.relay_networks) {
    if (cidr.Contains(facts_.client.address)) {
      relay = true;
      break;
    }
  }
  switch (skip) {
    case core::MiltersSkip::kNone:
      return true;
    case core::MiltersSkip::kAuthenticated:
      return !authenticated;
    case core::MiltersSkip::kRelay:
      return !relay;
    case core::MiltersSkip::kBoth:
      return !authenticated && !relay;
  }
  return true;
}

void Session::SetConnectMacros() {
  internal::MilterChain& m = *state_->milters;
  const std::string client = facts_.client.address.ToString();
  m.SetMacro("j", snapshot_->config.hostname);
  m.SetMacro("daemon_name", facts_.listener->name);
  m.SetMacro("daemon_addr", facts_.local.address.ToString());
  m.SetMacro("v", "ringmx");
  m.SetMacro("_", absl::StrCat("unknown [", client, "]"));
  m.SetMacro("client_addr", client);
  m.SetMacro("client_name", "unknown");
}

void Session::RunMilters(MilterEvent&& event, uint8_t wait, absl::Time now, Output& out) {
  State& s = *state_;
  s.milters->Start(std::move(event), out);
  if (s.milters->busy()) {
    s.milter_wait = static_cast<MilterWait>(wait);
    s.milter_parked_at = now;
    s.milter_saved_deadline = deadline_;
    deadline_ = absl::InfiniteFuture();  // the milters' own timeouts run (the driver's)
    return;
  }
  MiltersAnswered(wait, now, out);
}

void Session::OnMilterInput(uint32_t milter, std::string_view bytes, absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || s.milters == nullptr) return;
  s.milters->OnInput(milter, bytes, out);
  if (s.milter_wait == MilterWait::kNone || s.milters->busy()) return;
  const MilterWait wait = s.milter_wait;
  s.milter_wait = MilterWait::kNone;
  if (wait == MilterWait::kContentPiece && s.milter_saved_deadline != absl::InfiniteFuture() &&
      s.milter_parked_at != absl::InfinitePast()) {
    // The data timeout runs for the client's transfer, not for the milters' time.
    deadline_ = s.milter_saved_deadline + (now - s.milter_parked_at);
  } else {
    deadline_ = now + snapshot_->config.timeouts.idle;
  }
  MiltersAnswered(static_cast<uint8_t>(wait), now, out);
  ResumeInput(now, out);
  MaybeCloseForShutdown(out);
}

void Session::OnMilterError(uint32_t milter, std::string_view why, absl::Time now, Output& out) {
  State& s = *state_;
  if (closed_ || s.milters == nullptr) return;
  s.milters->OnError(milter, why, out);
  // The failure may have answered what the session waits for: go on as with input.
  OnMilterInput(milter, {}, now, out);
}

void Session::ReplyMilterRefusal(const MilterOutcome& outcome, Output& out) {
  out.replies.append(outcome.reply.ToWire());
  if (outcome.kind == VK::kShutdown) Close(out, "milter-shutdown");
}

void Session::MiltersAnswered(uint8_t wait_value, absl::Time now, Output& out) {
  State& s = *state_;
  const MilterWait wait = static_cast<MilterWait>(wait_value);
  if (wait == MilterWait::kContentPiece || wait == MilterWait::kContentEnd) {
    MilterContentAnswered(wait == MilterWait::kContentEnd, now, out);
    return;
  }
  const MilterOutcome outcome = s.milters->TakeOutcome();
  const bool refused = outcome.refused();
  switch (wait) {
    case MilterWait::kNone:
    case MilterWait::kContentPiece:
    case MilterWait::kContentEnd:
      break;
    case MilterWait::kConnect:
      // A refusal at connect holds for the session: each engine answers every later event with
      // it. Only a shutdown ends the session now.
      if (outcome.kind == VK::kShutdown) {
        ReplyMilterRefusal(outcome, out);
        break;
      }
      absl::StrAppend(&out.replies, "220 ", snapshot_->config.hostname, " ESMTP ringmx\r\n");
      break;
    case MilterWait::kHelo:
      if (refused) {
        // The HELO name stays: every later command gets the milter's refusal (sticky), not 503.
        ReplyMilterRefusal(outcome, out);
        break;
      }
      ReplyHello(s.milter_ehlo, out);
      break;
    case MilterWait::kMail:
      if (refused) {
        ReplyMilterRefusal(outcome, out);
        if (!closed_) ResetTransaction(out);
        break;
      }
      if (outcome.kind == VK::kDiscard) s.milter_discard = true;
      Reply(out, "250 2.1.0 Ok");
      break;
    case MilterWait::kRcpt:
      if (refused) {
        ReplyMilterRefusal(outcome, out);
        break;
      }
      if (outcome.kind == VK::kDiscard) s.milter_discard = true;
      AppendRecipient(s.milter_rcpt, std::move(s.milter_rcpt_dsn), out);
      s.milter_rcpt_dsn = DsnRcptParams();
      break;
    case MilterWait::kRejectedRcpt:
      Reply(out, s.milter_reply);
      s.milter_reply.clear();
      break;
    case MilterWait::kData:
      if (refused) {
        ReplyMilterRefusal(outcome, out);
        if (!closed_) ResetTransaction(out);
        break;
      }
      if (outcome.kind == VK::kDiscard) s.milter_discard = true;
      BeginData(now, out);
      break;
    case MilterWait::kBdat:
      if (refused) {
        // The chunk is read and answered with the refusal, as is every chunk up to LAST.
        s.chunk_disposition = Disposition::kMilterRefused;
        s.milter_data_refused = true;
        s.milter_refusal = outcome;
        if (outcome.kind == VK::kShutdown) {
          ReplyMilterRefusal(outcome, out);
          break;
        }
      } else {
        if (outcome.kind == VK::kDiscard) s.milter_discard = true;
        s.milter_content = !s.milter_discard && s.milters->WantsContent();
      }
      if (s.mode == Mode::kChunk && s.chunk_remaining == 0) CompleteChunk(now, out);
      break;
    case MilterWait::kUnknown:
      if (refused) {
        ReplyMilterRefusal(outcome, out);
        break;
      }
      ReplyError(out, "500 5.5.2 Error: command not recognized");
      break;
  }
}

void Session::MilterContent(core::BodyBlocks bytes, bool end, absl::Time now, Output& out) {
  State& s = *state_;
  if (s.milter_header_too_large || s.milter_refusal.has_value() || s.milter_discard) {
    // The message is decided: the rest of its data is read and dropped.
    if (end) FinishMilterMessage(now, out);
    return;
  }
  core::BodyBlocks body;
  if (!s.milter_headers_done) {
    // The header section is held whole (the milters get it in one step): copied out of the blocks.
    for (std::string_view block : bytes.views()) s.milter_headers.append(block);
    bytes.clear();
    std::string& h = s.milter_headers;
    size_t body_offset = std::string::npos;
    while (true) {
      const size_t lf = h.find('\n', s.milter_header_scan);
      if (lf == std::string::npos) break;
      std::string_view line(h.data() + s.milter_header_scan, lf - s.milter_header_scan);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) {
        body_offset = lf + 1;  // the empty line ends the header section
        break;
      }
      const bool fold = line[0] == ' ' || line[0] == '\t';
      if (!(fold && s.milter_header_field_open) && !StartsField(line)) {
        body_offset = s.milter_header_scan;  // a line that is no field starts the body
        break;
      }
      s.milter_header_field_open = true;
      s.milter_header_scan = lf + 1;
    }
    const size_t header_bytes = body_offset != std::string::npos ? body_offset : h.size();
    if (header_bytes > internal::kMaxMilterHeaderBytes) {
      s.milter_header_too_large = true;
      std::string().swap(h);
      out.log.push_back(absl::StrCat("milter header section over ", internal::kMaxMilterHeaderBytes,
                                     " bytes: refused"));
      if (end) FinishMilterMessage(now, out);
      return;
    } else if (body_offset != std::string::npos) {
      body = h.substr(body_offset);
      h.resize(body_offset);
      s.milter_headers_done = true;
    } else if (end) {
      s.milter_headers_done = true;  // a message without body
    } else {
      return;  // more of the header section to come
    }
  } else {
    body = std::move(bytes);
  }
  s.milter_body = std::move(body);
  MilterEvent event;
  event.kind = MilterEvent::Kind::kContent;
  event.send_headers = s.milter_headers_done && !s.milter_headers_sent;
  event.headers = s.milter_headers;
  event.body = s.milter_body.views();
  event.end = end;
  if (event.send_headers) s.milter_headers_sent = true;
  if (!event.send_headers && s.milter_body.empty() && !end) return;
  RunMilters(std::move(event),
             static_cast<uint8_t>(end ? MilterWait::kContentEnd : MilterWait::kContentPiece), now,
             out);
}

void Session::MilterContentAnswered(bool end, absl::Time now, Output& out) {
  State& s = *state_;
  MilterOutcome outcome = s.milters->TakeOutcome();
  for (MilterOutcome::Changes& c : outcome.changes) s.milter_changes.push_back(std::move(c));
  if (outcome.refused() && !s.milter_refusal.has_value()) s.milter_refusal = outcome;
  if (outcome.kind == VK::kDiscard) s.milter_discard = true;
  if (!end) {
    if (s.milter_refusal.has_value() || s.milter_discard || s.milter_body.empty()) {
      s.milter_body.clear();
      return;
    }
    // The milters have this piece: on to the store.
    if (s.stream_id.empty()) s.stream_id = s.txn_id.empty() ? ids_.Next(now) : s.txn_id;
    core::SpoolFragment fragment;
    fragment.id = s.stream_id;
    fragment.index = s.fragments++;
    s.milter_body_bytes += s.milter_body.size();
    fragment.bytes = std::move(s.milter_body);
    s.milter_body.clear();
    out.fragment = std::move(fragment);
    s.fragment_outstanding = true;
    return;
  }
  FinishMilterMessage(now, out);
}

void Session::FinishMilterMessage(absl::Time now, Output& out) {
  State& s = *state_;
  if (s.milter_header_too_large) {
    Reply(out, "552 5.3.4 Message header too large");
    ++stats_.messages_rejected;
    ResetTransaction(out);
    return;
  }
  if (s.milter_refusal.has_value()) {
    const MilterOutcome refusal = *s.milter_refusal;
    ++stats_.messages_rejected;
    out.replies.append(refusal.reply.ToWire());
    ResetTransaction(out);
    if (refusal.kind == VK::kShutdown) Close(out, "milter-shutdown");
    return;
  }
  if (s.milter_discard) {
    // Accepted and dropped (Postfix answers the same way).
    const std::string id = s.txn_id.empty() ? ids_.Next(now) : s.txn_id;
    absl::StrAppend(&out.replies, "250 2.0.0 Ok: queued as ", id, "\r\n");
    out.log.push_back(absl::StrCat("milter discarded message id=", id));
    ResetTransaction(out);
    return;
  }
  Deliver(now, out);
}

void Session::ApplyMilterChanges(Output& out) {
  State& s = *state_;
  std::optional<std::string> new_body;
  std::optional<std::string> quarantine;
  std::string quarantined_by;
  for (const MilterOutcome::Changes& c : s.milter_changes) {
    milter::ModifiedHeaders m =
        milter::ModifyHeaderSection(s.milter_headers, c.modifications, c.leading_space);
    if (m.changed) s.milter_headers = std::move(m.header_section);
    if (m.body) new_body = std::move(m.body);
    milter::EnvelopeChanges& e = m.envelope;
    if (e.sender) {
      s.envelope.mail_from = *e.sender;
      if (!e.sender_args.empty()) {
        s.envelope.mail_params.clear();
        for (absl::string_view arg :
             absl::StrSplit(core::Av(e.sender_args), ' ', absl::SkipEmpty())) {
          MailParam& p = s.envelope.mail_params.emplace_back();
          const size_t eq = arg.find('=');
          p.keyword = absl::AsciiStrToUpper(arg.substr(0, eq));
          if (eq != absl::string_view::npos) {
            p.value = std::string(arg.substr(eq + 1));
            p.has_value = true;
          }
        }
      }
    }
    for (const std::string& gone : e.deleted_recipients) {
      for (size_t i = 0; i < s.envelope.rcpt_to.size(); ++i) {
        if (absl::EqualsIgnoreCase(core::Av(s.envelope.rcpt_to[i]), core::Av(gone))) {
          s.envelope.rcpt_to.erase(s.envelope.rcpt_to.begin() + static_cast<ptrdiff_t>(i));
          if (i < s.envelope.rcpt_dsn.size()) {
            s.envelope.rcpt_dsn.erase(s.envelope.rcpt_dsn.begin() + static_cast<ptrdiff_t>(i));
          }
          break;
        }
      }
    }
    for (const milter::EnvelopeChanges::Recipient& r : e.added_recipients) {
      DsnRcptParams dsn;
      for (absl::string_view arg : absl::StrSplit(core::Av(r.args), ' ', absl::SkipEmpty())) {
        const size_t eq = arg.find('=');
        const std::string_view keyword(arg.data(), std::min(eq, arg.size()));
        if (!IsDsnRcptParam(keyword)) continue;
        const std::optional<std::string_view> value =
            eq == absl::string_view::npos ? std::nullopt
                                          : std::optional<std::string_view>(std::string_view(
                                                arg.data() + eq + 1, arg.size() - eq - 1));
        DsnRcptParams tried = dsn;
        if (!ApplyDsnRcptParam(keyword, value, tried).has_value()) dsn = std::move(tried);
      }
      s.envelope.rcpt_dsn.resize(s.envelope.rcpt_to.size());
      s.envelope.rcpt_to.push_back(r.address);
      s.envelope.rcpt_dsn.push_back(std::move(dsn));
    }
    if (e.quarantine) {
      quarantine = *e.quarantine;
      quarantined_by = c.milter;
    }
    if (m.changed || m.body || e.sender || !e.added_recipients.empty() ||
        !e.deleted_recipients.empty()) {
      out.log.push_back(absl::StrCat("milter=", c.milter, s.txn_id.empty() ? "" : " id=", s.txn_id,
                                     " changed", m.changed ? " headers" : "", m.body ? " body" : "",
                                     e.sender ? " sender" : "",
                                     e.added_recipients.empty() ? "" : " +rcpt",
                                     e.deleted_recipients.empty() ? "" : " -rcpt"));
    }
  }
  s.milter_changes.clear();
  if (quarantine) {
    std::string line = absl::StrCat(
        "milter=", quarantined_by, s.txn_id.empty() ? "" : " id=", s.txn_id, " quarantine reason=");
    core::AppendJsonString(line, *quarantine);
    out.log.push_back(std::move(line));
    s.milter_quarantine = std::move(quarantine);
    s.milter_quarantine_by = std::move(quarantined_by);
  }
  if (new_body) {
    // The body streamed to the store is not the message any more: the replacement is stored
    // whole, under a new queue id.
    if (!s.stream_id.empty()) {
      out.abort_streams.push_back(std::move(s.stream_id));
      s.stream_id.clear();
    }
    s.fragments = 0;
    s.milter_body_bytes = 0;
    s.milter_body = std::move(*new_body);
    if (!s.txn_id.empty()) {
      // The message line that follows names the new id; this line joins the two.
      out.log.push_back(absl::StrCat("milter id=", s.txn_id,
                                     " body replaced: the message is stored under a new id"));
    }
    s.txn_id.clear();
  }
}

}  // namespace ringmx::smtp

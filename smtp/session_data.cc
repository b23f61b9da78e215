// smtp::Session, part 2: DATA and BDAT, the body's pieces streamed to the store, and the hand-over
// of a finished message (session.h). Commands and the connection's life are in session.cc.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

#include "core/json.h"
#include "smtp/data_decoder.h"
#include "smtp/envelope.h"
#include "smtp/internal/session_state.h"
#include "smtp/limits.h"
#include "smtp/session.h"

namespace ringmx::smtp {

using internal::EqualsIgnoreCase;
using internal::Hello;
using internal::IsBlank;
using internal::kTlsRequiredReply;
using internal::kTooBigReply;
using internal::Mode;
using internal::ParseDecimalSaturating;

namespace {

// "from=<a@b> to=<c@d>,<e@f> nrcpt=2 size=1234 tls=TLSv1.3 auth=user" (auth=- when none): the
// accepted-message log line after its id. Addresses cannot hold CR, LF or other controls (the
// command parser refuses them), so the line cannot be split or forged.
std::string MessageLogFields(const Envelope& envelope, uint64_t size,
                             const policy::ConnectionFacts& facts) {
  std::string line = absl::StrCat("from=<", envelope.mail_from, "> to=");
  for (size_t i = 0; i < envelope.rcpt_to.size(); ++i) {
    absl::StrAppend(&line, i == 0 ? "<" : ",<", envelope.rcpt_to[i], ">");
  }
  absl::StrAppend(
      &line, " nrcpt=", envelope.rcpt_to.size(), " size=", size,
      " tls=", facts.tls_facts.has_value() ? facts.tls_facts->version : "none",
      " auth=", facts.auth_identity.empty() ? "-" : internal::PrintableForLog(facts.auth_identity));
  return line;
}

std::string_view DecoderErrorReply(DataDecoder::Error error) {
  switch (error) {
    case DataDecoder::Error::kBareCrLf:
      return "550 5.6.0 Message contains bare CR or LF";
    case DataDecoder::Error::kLineTooLong:
      return "550 5.6.0 Message line too long";
    case DataDecoder::Error::kTooBig:
      return kTooBigReply;
    case DataDecoder::Error::kNone:
      break;
  }
  return "451 4.3.0 Error: internal state";  // not reached
}

// The size the client announced with MAIL FROM SIZE= (RFC 1870), 0 if none or unreadable.
uint64_t AnnouncedSize(const Envelope& envelope) {
  for (const MailParam& param : envelope.mail_params) {
    if (!EqualsIgnoreCase(param.keyword, "SIZE") || !param.has_value) continue;
    uint64_t size = 0;
    for (char c : param.value) {
      if (c < '0' || c > '9' || size > (UINT64_MAX - 9) / 10) return 0;
      size = size * 10 + static_cast<uint64_t>(c - '0');
    }
    return size;
  }
  return 0;
}

}  // namespace

void Session::DoData(std::string_view args, absl::Time now, Output& out) {
  State& s = *state_;
  if (!s.in_mail) {
    ReplyError(out, "503 5.5.1 Error: need MAIL command");
    return;
  }
  if (s.bdat_used) {  // RFC 3030 section 2
    ReplyError(out, "503 5.5.1 Error: DATA not allowed after BDAT");
    return;
  }
  if (s.envelope.rcpt_to.empty()) {
    ReplyError(out, "503 5.5.1 Error: need RCPT command");
    return;
  }
  if (!args.empty()) {
    ReplyError(out, "501 5.5.4 Syntax: DATA");
    return;
  }
  if (s.milter_txn) {
    internal::MilterEvent event;
    event.kind = internal::MilterEvent::Kind::kData;
    RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kData), now, out);
    return;
  }
  BeginData(now, out);
}

void Session::BeginData(absl::Time now, Output& out) {
  State& s = *state_;
  // The content goes to the milters when one of them still wants it (docs/milter.md).
  s.milter_content = s.milter_txn && !s.milter_discard && s.milters->WantsContent();
  Reply(out, "354 End data with <CR><LF>.<CR><LF>");
  s.mode = Mode::kData;
  s.decoder.Begin(DataDecoder::Mode::kDotStuffed, snapshot_->config.policy.max_message_size,
                  AnnouncedSize(s.envelope));
  s.data_octets = 0;
  s.rejection_counted = false;
  deadline_ = now + snapshot_->config.timeouts.data;  // the whole transfer, not per read
}

void Session::DoBdat(std::string_view args, absl::Time now, Output& out) {
  State& s = *state_;
  // RFC 3030: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF.
  size_t i = 0;
  while (i < args.size() && args[i] >= '0' && args[i] <= '9') ++i;
  const std::string_view count_text = args.substr(0, i);
  std::string_view tail = args.substr(i);
  bool last = false;
  bool ok = !count_text.empty() && count_text.size() <= 19;  // < 10^19 fits in uint64_t
  if (ok && !tail.empty()) {
    ok = IsBlank(tail.front());
    while (!tail.empty() && IsBlank(tail.front())) tail.remove_prefix(1);
    last = EqualsIgnoreCase(tail, "LAST");
    ok = ok && last;
  }
  if (!ok) {
    // Without a valid count the chunk cannot be skipped, and its octets must never be read as
    // commands (that would be smuggling): answer and hang up, as Postfix does.
    Reply(out, "521 5.5.4 Syntax: BDAT count [LAST]");
    Close(out, "bad-bdat");
    return;
  }
  const uint64_t count = ParseDecimalSaturating(count_text);
  const uint64_t max_size = snapshot_->config.policy.max_message_size;
  // The count says how much is coming: a chunk that would take the transaction far past the
  // limit (or a chunk that large out of sequence) is not read at all (StreamCutOctets).
  const uint64_t cut = StreamCutOctets(max_size);
  const uint64_t so_far = s.bdat_used ? s.decoder.size() : 0;
  if (count > cut || so_far > cut - count) {
    CutOversizedStream(out);
    return;
  }

  deadline_ = now + snapshot_->config.timeouts.data;
  bool first_chunk = false;
  if (policy::TlsRequiredViolated(*snapshot_, facts_)) {
    s.chunk_disposition = Disposition::kNeedTls;
  } else if (!s.in_mail) {
    s.chunk_disposition = Disposition::kNeedMail;
  } else if (s.envelope.rcpt_to.empty()) {
    s.chunk_disposition = Disposition::kNeedRcpt;
  } else if (s.milter_data_refused) {
    s.chunk_disposition = Disposition::kMilterRefused;
  } else {
    s.chunk_disposition = Disposition::kStore;
    if (!s.bdat_used) {
      first_chunk = true;
      s.bdat_used = true;
      s.rejection_counted = false;
      s.decoder.Begin(DataDecoder::Mode::kChunked, max_size, AnnouncedSize(s.envelope));
    }
    // RFC 3030 section 2: a chunk that would exceed the limit is still read, then refused.
    if (s.decoder.error() == DataDecoder::Error::kNone &&
        (s.decoder.size() > max_size || count > max_size - s.decoder.size())) {
      s.decoder.FailTooBig();
    }
  }
  s.chunk_size = count;
  s.chunk_remaining = count;
  s.chunk_last = last;
  s.mode = Mode::kChunk;
  if (first_chunk && s.milter_txn) {
    // The milters' DATA stage comes before the first chunk is taken; their answer completes an
    // empty chunk.
    internal::MilterEvent event;
    event.kind = internal::MilterEvent::Kind::kData;
    RunMilters(std::move(event), static_cast<uint8_t>(internal::MilterWait::kBdat), now, out);
    return;
  }
  if (count == 0) CompleteChunk(now, out);
}

size_t Session::ConsumeChunk(std::string_view input, absl::Time now, Output& out) {
  State& s = *state_;
  size_t n = static_cast<size_t>(std::min<uint64_t>(s.chunk_remaining, input.size()));
  if (s.chunk_disposition == Disposition::kStore) {
    if (!MakeRoom(now, out)) return 0;  // input_blocked(): Process() stops
    n = std::min(n, s.decoder.StreamRoom());
    s.decoder.Consume(input.substr(0, n));
  }
  s.chunk_remaining -= n;
  if (s.chunk_remaining == 0) CompleteChunk(now, out);
  return n;
}

void Session::CompleteChunk(absl::Time now, Output& out) {
  State& s = *state_;
  s.mode = Mode::kCommand;
  deadline_ = now + snapshot_->config.timeouts.idle;
  switch (s.chunk_disposition) {
    case Disposition::kNeedMail:
      ReplyError(out, "503 5.5.1 Error: need MAIL command");
      return;
    case Disposition::kNeedRcpt:
      ReplyError(out, "503 5.5.1 Error: need RCPT command");
      return;
    case Disposition::kNeedTls:
      ReplyError(out, kTlsRequiredReply);
      return;
    case Disposition::kMilterRefused:
      if (s.milter_refusal.has_value()) out.replies.append(s.milter_refusal->reply.ToWire());
      if (!s.rejection_counted) {
        ++stats_.messages_rejected;
        s.rejection_counted = true;
      }
      if (s.chunk_last) ResetTransaction(out);
      return;
    case Disposition::kStore:
      break;
  }
  if (s.chunk_last) s.decoder.Finish();
  if (s.decoder.error() != DataDecoder::Error::kNone) {
    // The transaction has failed. Every further chunk of it gets the same answer; LAST (or RSET)
    // ends it.
    Reply(out, DecoderErrorReply(s.decoder.error()));
    if (!s.rejection_counted) {
      ++stats_.messages_rejected;
      s.rejection_counted = true;
    }
    if (s.chunk_last) ResetTransaction(out);
    return;
  }
  if (s.chunk_last) {
    FinishMessage(now, out);
    return;
  }
  absl::StrAppend(&out.replies, "250 2.0.0 ", s.chunk_size, " octets received\r\n");
}

size_t Session::ConsumeData(std::string_view input, absl::Time now, Output& out) {
  State& s = *state_;
  const uint64_t cut = StreamCutOctets(snapshot_->config.policy.max_message_size);
  // Never more than the cut: whether the end of the data comes within it must not depend on how
  // the input was split into reads. Invariant: data_octets < cut while in kData.
  if (!MakeRoom(now, out)) return 0;  // input_blocked(): Process() stops
  const std::string_view part = input.substr(
      0, static_cast<size_t>(
             std::min<uint64_t>({input.size(), cut - s.data_octets, s.decoder.StreamRoom()})));
  const size_t n = s.decoder.Consume(part);
  s.data_octets += n;
  if (s.decoder.done()) {
    EndOfData(now, out);
  } else if (s.data_octets >= cut) {
    CutOversizedStream(out);
  }
  return n;
}

void Session::CutOversizedStream(Output& out) {
  State& s = *state_;
  Reply(out, kTooBigReply);
  if (s.in_mail && !s.rejection_counted) ++stats_.messages_rejected;
  Close(out, "too-big-stream");
}

void Session::EndOfData(absl::Time now, Output& out) {
  State& s = *state_;
  s.mode = Mode::kCommand;
  deadline_ = now + snapshot_->config.timeouts.idle;
  if (s.decoder.error() != DataDecoder::Error::kNone) {
    RejectMessage(out);
    return;
  }
  FinishMessage(now, out);
}

void Session::FinishMessage(absl::Time now, Output& out) {
  State& s = *state_;
  if (s.fragment_outstanding) {
    // The last piece handed over is not stored yet: the message goes once it is.
    s.deliver_after_fragment = true;
    deadline_ = absl::InfiniteFuture();  // the store answers; the client is not on the clock
    return;
  }
  if (s.stream_failed) {
    Reply(out, "452 4.3.1 Insufficient system storage");
    ++stats_.messages_rejected;
    ResetTransaction(out);  // aborts the stream
    return;
  }
  if (s.milter_discard && !s.milter_content) {
    FinishMilterMessage(now, out);
    return;
  }
  if (s.milter_content && !s.milter_end_started) {
    // The rest of the message, then end of message, through the milters.
    s.milter_end_started = true;
    MilterContent(s.decoder.TakeBody(), /*end=*/true, now, out);
    return;
  }
  Deliver(now, out);
}

bool Session::MakeRoom(absl::Time now, Output& out) {
  State& s = *state_;
  if (s.decoder.StreamRoom() > 0) return true;
  if (s.stream_failed) {
    s.decoder.TakeChunk();  // the store failed: the rest of the data is read and dropped
    return true;
  }
  if (s.fragment_outstanding) return false;
  EmitFragment(now, out);
  // A piece that went to the milters first may wait for their answer (input_blocked()): nothing
  // more is consumed until then, so the end of the data cannot reach the milters while they
  // still have the piece.
  return !input_blocked();
}

void Session::EmitFragment(absl::Time now, Output& out) {
  State& s = *state_;
  if (s.milter_content) {
    // The header section is held, the body goes to the milters first (session_milter.cc).
    MilterContent(s.decoder.TakeChunk(), /*end=*/false, now, out);
    return;
  }
  if (s.stream_id.empty()) s.stream_id = ids_.Next(now);
  core::SpoolFragment fragment;
  fragment.id = s.stream_id;
  fragment.index = s.fragments++;
  fragment.bytes = s.decoder.TakeChunk();
  out.fragment = std::move(fragment);
  s.fragment_outstanding = true;
}

void Session::AbandonStream(Output& out) {
  State& s = *state_;
  if (!s.stream_id.empty()) out.abort_streams.push_back(std::move(s.stream_id));
  s.stream_id.clear();
  s.fragments = 0;
  s.fragment_outstanding = false;
  s.stream_failed = false;
  s.deliver_after_fragment = false;
}

void Session::RejectMessage(Output& out) {
  State& s = *state_;
  Reply(out, DecoderErrorReply(s.decoder.error()));
  if (!s.rejection_counted) ++stats_.messages_rejected;
  ResetTransaction(out);
}

void Session::Deliver(absl::Time now, Output& out) {
  State& s = *state_;
  core::SpoolRecord record;
  uint64_t size = s.decoder.size();  // every piece, the ones already stored included
  const bool milters = s.milter_content;
  if (milters) {
    ApplyMilterChanges(out);
    if (s.envelope.rcpt_to.empty()) {
      // The milters deleted every recipient: nothing to deliver.
      s.milter_discard = true;
      FinishMilterMessage(now, out);
      return;
    }
    record.held = s.milter_quarantine.has_value();
    // Stored: our Received, the (changed) header section, the body (fragments and tail).
    size = s.milter_headers.size() + s.milter_body_bytes + s.milter_body.size();
  }
  record.id = !s.stream_id.empty() ? std::move(s.stream_id)
              : !s.txn_id.empty()  ? s.txn_id
                                   : ids_.Next(now);
  record.fragments = s.fragments;
  record.body = milters ? std::move(s.milter_body) : s.decoder.TakeBody();
  s.stream_id.clear();  // the record carries the stream now: nothing to abort
  s.fragments = 0;
  TraceContext context;
  context.id = record.id;
  context.received_at = now;
  context.hostname = snapshot_->config.hostname;
  context.helo = s.helo;
  context.ehlo = s.hello == Hello::kEhlo;
  context.facts = &facts_;
  context.size = size;
  record.trace_headers = BuildReceivedHeader(s.envelope, context);
  record.envelope_json = BuildEnvelopeJson(s.envelope, context);
  s.outstanding_log = MessageLogFields(s.envelope, size, facts_);
  if (record.held) s.outstanding_log.append(" held=quarantine");
  if (milters) {
    record.trace_headers.append(s.milter_headers);
    if (s.milter_quarantine.has_value() && record.envelope_json.ends_with("}")) {
      // `quarantine`: {milter, reason} of a message a milter put on hold.
      record.envelope_json.pop_back();
      record.envelope_json.append(",\"quarantine\":{\"milter\":");
      core::AppendJsonString(record.envelope_json, s.milter_quarantine_by);
      record.envelope_json.append(",\"reason\":");
      core::AppendJsonString(record.envelope_json, *s.milter_quarantine);
      record.envelope_json.append("}}");
    }
  }
  record.sender = std::move(s.envelope.mail_from);  // the envelope is cleared below
  record.recipients = std::move(s.envelope.rcpt_to);
  record.received_unix_us = absl::ToUnixMicros(now);
  s.outstanding_id = record.id;
  s.outstanding_size = size;
  out.deliver = std::move(record);
  s.awaiting_delivery = true;
  deadline_ = absl::InfiniteFuture();  // the store answers; the client is not on the clock
  ResetTransaction(out);
}

}  // namespace ringmx::smtp

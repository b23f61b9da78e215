// The milter client engine (smtp/milter/session.h). The stage and reply rules follow Postfix's
// src/milter/milter8.c (milter8_event, milter8_negotiate); differences are noted where they are.
#include "smtp/milter/session.h"

#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

#include "core/check.h"
#include "core/strings.h"

namespace ringmx::smtp::milter {
namespace {

std::string_view MacroKey(std::string_view name) {
  if (name.size() >= 2 && name.front() == '{' && name.back() == '}') {
    name = name.substr(1, name.size() - 2);
  }
  return name;
}

Reply MakeReply(int code, std::string_view enhanced, std::string_view text) {
  Reply r;
  r.code = code;
  r.enhanced = std::string(enhanced);
  r.lines.push_back(absl::StrCat(core::Av(enhanced), " ", core::Av(text)));
  return r;
}

bool IsConnectionStage(Stage stage) { return stage == Stage::kConnect || stage == Stage::kHelo; }

// The action a change needs to have been negotiated (SMFIF_*).
uint32_t ActionFor(char command) {
  switch (command) {
    case 'h':
    case 'i':
      return action::kAddHeaders;
    case 'm':
      return action::kChangeHeaders;
    case 'e':
      return action::kChangeFrom;
    case '+':
      return action::kAddRcpt;
    case '2':
      return action::kAddRcptWithArgs;
    case '-':
      return action::kDeleteRcpt;
    case 'b':
      return action::kChangeBody;
    case 'q':
      return action::kQuarantine;
    default:
      return 0;
  }
}

std::string Printable(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u < 0x7F) return absl::StrCat("'", std::string(1, c), "'");
  return absl::StrCat("0x", absl::Hex(u, absl::kZeroPad2));
}

}  // namespace

const std::string_view Session::kDefaultMacros[kMacroStages] = {
    // kConnect: Postfix's milter_connect_macros, plus the client's address and name.
    "j {daemon_name} {daemon_addr} v _ {client_addr} {client_name}",
    // kHelo
    "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
    // kMail
    "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
    // kRcpt
    "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
    // kData
    "i",
    // kEom
    "i",
    // kEoh
    "i",
};

Session::Session(SessionConfig config) : config_(std::move(config)) {
  for (size_t i = 0; i < kMacroStages; ++i) {
    macro_lists_[i] = absl::StrSplit(core::Av(kDefaultMacros[i]), ' ', absl::SkipEmpty());
  }
}

void Session::SetMacro(std::string_view name, std::string value) {
  macros_[std::string(MacroKey(name))] = std::move(value);
}

void Session::ClearMacro(std::string_view name) { macros_.erase(std::string(MacroKey(name))); }

Session::Waiting Session::waiting_for() const {
  switch (pending_) {
    case Pending::kNone:
      return Waiting::kNothing;
    case Pending::kOptNeg:
      return Waiting::kCommand;
    case Pending::kReply:
      break;
  }
  return content_active_ ? Waiting::kContent : Waiting::kCommand;
}

Verdict Session::DefaultVerdict(Stage stage) const {
  Verdict v;
  v.stage = stage;
  v.failed = true;
  switch (config_.default_action) {
    case DefaultAction::kTempfail:
      v.kind = Verdict::Kind::kTempfail;
      v.reply = MakeReply(451, "4.7.1", "Service unavailable - try again later");
      break;
    case DefaultAction::kReject:
      v.kind = Verdict::Kind::kReject;
      v.reply = MakeReply(550, "5.7.1", "Command rejected");
      break;
    case DefaultAction::kAccept:
      v.kind = Verdict::Kind::kAccept;
      break;
  }
  return v;
}

void Session::Finish(Verdict verdict, Output& out) {
  pending_ = Pending::kNone;
  verdict.stage = stage_;
  if (stage_ == Stage::kContent) {
    verdict.modifications = std::move(modifications_);
    EndContent();
  }
  out.verdict = std::move(verdict);
}

void Session::Continue(Stage stage, Output& out) {
  stage_ = stage;
  Finish(Verdict{}, out);
}

void Session::Fail(std::string why, Output& out) {
  error_ = absl::StrCat("milter ", config_.name, ": ", why);
  const bool owed = pending_ != Pending::kNone || content_active_;
  state_ = State::kFailed;
  out.error = error_;
  out.close = true;
  if (owed) {
    pending_ = Pending::kNone;
    EndContent();
    out.verdict = DefaultVerdict(stage_);
  }
}

bool Session::Settled(Stage stage, Output& out) {
  RINGMX_CHECK(state_ != State::kNew);  // Connect() comes first
  RINGMX_CHECK(idle());
  stage_ = stage;
  switch (state_) {
    case State::kNew:
    case State::kNegotiating:
      break;  // idle() excludes kNegotiating
    case State::kReady:
      if (message_done_ &&
          (stage == Stage::kRcpt || stage == Stage::kData || stage == Stage::kContent)) {
        Verdict v;
        v.kind = Verdict::Kind::kAccept;
        Finish(std::move(v), out);
        return true;
      }
      return false;
    case State::kAcceptedConnection: {
      Verdict v;
      v.kind = Verdict::Kind::kAccept;
      Finish(std::move(v), out);
      return true;
    }
    case State::kRejectedConnection:
      Finish(sticky_, out);
      return true;
    case State::kFailed:
    case State::kClosed:
      out.verdict = DefaultVerdict(stage);
      return true;
  }
  return false;
}

void Session::SendMacros(char command, MacroStage stage, Output& out) {
  std::vector<Macro> macros;
  for (const std::string& name : macro_lists_[static_cast<size_t>(stage)]) {
    const auto it = macros_.find(std::string(MacroKey(name)));
    if (it != macros_.end()) macros.push_back(Macro{name, it->second});
  }
  if (!macros.empty()) AppendMacros(command, macros, out.send);
}

template <typename Encode>
bool Session::Event(Stage stage, char command, std::optional<MacroStage> macro_stage,
                    uint32_t no_flag, uint32_t nr_flag, Output& out, Encode encode) {
  stage_ = stage;
  // SMFIR_SKIP: further events of the skipped kind are not sent; any other event ends the skip.
  if (skip_command_ != 0) {
    if (skip_command_ == command) return false;
    skip_command_ = 0;
  }
  // Postfix sends an event's macros even when the event itself is not sent.
  if (macro_stage) SendMacros(command, *macro_stage, out);
  if ((protocol_ & no_flag) != 0) return false;
  encode(out.send);
  if ((protocol_ & nr_flag) != 0) return false;
  pending_ = Pending::kReply;
  pending_command_ = command;
  return true;
}

void Session::Connect(const ConnectInfo& info, Output& out) {
  RINGMX_CHECK(state_ == State::kNew);
  connect_ = info;
  state_ = State::kNegotiating;
  pending_ = Pending::kOptNeg;
  stage_ = Stage::kConnect;
  AppendOptNeg(kProtocolVersion, action::kAll, proto::kAllV6, out.send);
}

void Session::OnOptNeg(const OptNegReply& reply, Output& out) {
  // Postfix refuses a version above its own; libmilter answers 2 at least.
  if (reply.version < 2 || reply.version > kProtocolVersion) {
    Fail(absl::StrCat("unsupported protocol version ", reply.version, " (we speak 2 to 6)"), out);
    return;
  }
  if ((reply.actions & ~action::kAll) != 0) {
    Fail(absl::StrCat("asks for actions 0x", absl::Hex(reply.actions), " beyond those offered (0x",
                      absl::Hex(action::kAll), ")"),
         out);
    return;
  }
  optneg_ = reply;
  actions_ = reply.actions;
  // Bits we did not offer (libmilter's data-size bits among them) are ignored, as Postfix does.
  protocol_ = reply.protocol & proto::kAllV6;
  // An older milter does not know the later events (Postfix's np_mask).
  if (reply.version < 3) protocol_ |= proto::kNoUnknown;
  if (reply.version < 4) protocol_ |= proto::kNoData;
  // The milter's own macro lists replace ours; a stage it does not list gets none (Postfix).
  const bool own_lists = std::any_of(std::begin(reply.macros), std::end(reply.macros),
                                     [](const auto& list) { return list.has_value(); });
  if (own_lists) {
    for (size_t i = 0; i < kMacroStages; ++i) {
      macro_lists_[i].clear();
      if (reply.macros[i]) {
        macro_lists_[i] =
            absl::StrSplit(*reply.macros[i], absl::ByAnyChar(" ,\t"), absl::SkipEmpty());
      }
    }
  }
  state_ = State::kReady;
  pending_ = Pending::kNone;
  const ConnectInfo info = *std::move(connect_);
  connect_.reset();
  if (!Event(Stage::kConnect, cmd::kConnect, MacroStage::kConnect, proto::kNoConnect,
             proto::kNrConnect, out, [&](std::string& s) {
               AppendConnect(info.hostname, info.family, info.port, info.address, s);
             })) {
    Continue(Stage::kConnect, out);
  }
}

void Session::Helo(std::string_view helo, Output& out) {
  if (Settled(Stage::kHelo, out)) return;
  if (!Event(Stage::kHelo, cmd::kHelo, MacroStage::kHelo, proto::kNoHelo, proto::kNrHelo, out,
             [&](std::string& s) { AppendHelo(helo, s); })) {
    Continue(Stage::kHelo, out);
  }
}

void Session::Mail(std::string_view path, std::span<const std::string> args, Output& out) {
  RINGMX_CHECK(state_ != State::kNew);
  RINGMX_CHECK(idle());
  if (state_ == State::kReady) {
    if (in_transaction_) AppendAbort(out.send);
    in_transaction_ = true;
    message_done_ = false;
  }
  if (Settled(Stage::kMail, out)) return;
  if (!Event(Stage::kMail, cmd::kMail, MacroStage::kMail, proto::kNoMail, proto::kNrMail, out,
             [&](std::string& s) { AppendMail(path, args, s); })) {
    Continue(Stage::kMail, out);
  }
}

void Session::Rcpt(std::string_view path, std::span<const std::string> args, Output& out) {
  if (Settled(Stage::kRcpt, out)) return;
  if (!Event(Stage::kRcpt, cmd::kRcpt, MacroStage::kRcpt, proto::kNoRcpt, proto::kNrRcpt, out,
             [&](std::string& s) { AppendRcpt(path, args, s); })) {
    Continue(Stage::kRcpt, out);
  }
}

void Session::RejectedRcpt(std::string_view path, std::span<const std::string> args,
                           const Reply& our_reply, Output& out) {
  if (!wants_rejected_rcpts() || state_ != State::kReady) {
    if (!Settled(Stage::kRcpt, out)) Continue(Stage::kRcpt, out);
    return;
  }
  // Postfix's form for a refused recipient: the "error" mailer, our status and our text.
  constexpr std::string_view kKeys[] = {"rcpt_mailer", "rcpt_host", "rcpt_addr"};
  std::optional<std::string> saved[3];
  for (size_t i = 0; i < 3; ++i) {
    const auto it = macros_.find(std::string(kKeys[i]));
    if (it != macros_.end()) saved[i] = it->second;
  }
  SetMacro("rcpt_mailer", "error");
  SetMacro("rcpt_host",
           our_reply.enhanced.empty() ? absl::StrCat(our_reply.code) : our_reply.enhanced);
  SetMacro("rcpt_addr", our_reply.Text());
  Rcpt(path, args, out);
  for (size_t i = 0; i < 3; ++i) {
    if (saved[i]) {
      SetMacro(kKeys[i], *saved[i]);
    } else {
      ClearMacro(kKeys[i]);
    }
  }
}

void Session::Data(Output& out) {
  if (Settled(Stage::kData, out)) return;
  if (!Event(Stage::kData, cmd::kData, MacroStage::kData, proto::kNoData, proto::kNrData, out,
             [&](std::string& s) { AppendData(s); })) {
    Continue(Stage::kData, out);
  }
}

void Session::EndContent() {
  content_active_ = false;
  piece_.reset();
  body_parts_.clear();
  body_next_ = 0;
  headers_.clear();
  modifications_.clear();
  modifications_bytes_ = 0;
  step_ = ContentStep::kBetween;
}

void Session::ContentHeaders(std::string_view header_section, Output& out) {
  RINGMX_CHECK(idle());
  if (!ContentOpen()) return;
  stage_ = Stage::kContent;
  if (!content_active_) {
    modifications_.clear();
    modifications_bytes_ = 0;
  }
  content_active_ = true;
  SplitMessage split = SplitHeaders(header_section);
  headers_ = std::move(split.fields);
  header_index_ = 0;
  piece_ = header_section;
  step_ = ContentStep::kHeaders;
  AdvanceContent(out);
}

void Session::ContentBody(std::string_view piece, Output& out) {
  ContentBody(std::span<const std::string_view>(&piece, 1), out);
}

void Session::ContentBody(std::span<const std::string_view> parts, Output& out) {
  RINGMX_CHECK(idle());
  bool empty = true;
  for (std::string_view part : parts) empty = empty && part.empty();
  if (!ContentOpen() || empty) return;
  stage_ = Stage::kContent;
  if (!content_active_) {
    modifications_.clear();
    modifications_bytes_ = 0;
  }
  content_active_ = true;
  piece_ = std::string_view();
  body_parts_.assign(parts.begin(), parts.end());
  body_next_ = 0;
  body_offset_ = 0;
  step_ = ContentStep::kBody;
  AdvanceContent(out);
}

void Session::ContentEnd(Output& out) {
  if (Settled(Stage::kContent, out)) return;
  if (!content_active_) {
    modifications_.clear();
    modifications_bytes_ = 0;
  }
  content_active_ = true;
  step_ = ContentStep::kEob;
  // EOB is always answered: it carries the changes and the final decision.
  Event(Stage::kContent, cmd::kEob, MacroStage::kEom, 0, 0, out,
        [](std::string& s) { AppendEob(s); });
}

void Session::AdvanceContent(Output& out) {
  while (true) {
    switch (step_) {
      case ContentStep::kHeaders: {
        if (header_index_ >= headers_.size() || (protocol_ & proto::kNoHeaders) != 0) {
          step_ = ContentStep::kEoh;
          break;
        }
        const HeaderField& h = headers_[header_index_++];
        const std::string value = MilterHeaderValue(h.raw_value, header_leading_space());
        if (Event(Stage::kContent, cmd::kHeader, std::nullopt, proto::kNoHeaders, proto::kNrHeader,
                  out, [&](std::string& s) { AppendHeader(h.name, value, s); })) {
          return;
        }
        break;
      }
      case ContentStep::kEoh:
        step_ = ContentStep::kBetween;
        headers_.clear();
        if (Event(Stage::kContent, cmd::kEoh, MacroStage::kEoh, proto::kNoEoh, proto::kNrEoh, out,
                  [](std::string& s) { AppendEoh(s); })) {
          return;
        }
        break;
      case ContentStep::kBody: {
        std::string_view piece = piece_.value_or(std::string_view());
        while (body_offset_ >= piece.size() && body_next_ < body_parts_.size()) {
          piece = body_parts_[body_next_++];
          piece_ = piece;
          body_offset_ = 0;
        }
        if (body_offset_ >= piece.size() || (protocol_ & proto::kNoBody) != 0 ||
            skip_command_ == cmd::kBody) {
          step_ = ContentStep::kBetween;
          break;
        }
        const std::string_view chunk = piece.substr(body_offset_, kMaxBodyChunkBytes);
        body_offset_ += chunk.size();
        if (Event(Stage::kContent, cmd::kBody, std::nullopt, proto::kNoBody, proto::kNrBody, out,
                  [&](std::string& s) { AppendBody(chunk, s); })) {
          return;
        }
        break;
      }
      case ContentStep::kBetween:
        // The piece is sent (and answered): the engine is idle until the next one.
        piece_.reset();
        body_parts_.clear();
        body_next_ = 0;
        return;
      case ContentStep::kEob:
        return;  // OnReply() finishes with the verdict
    }
  }
}

void Session::Abort(Output& out) {
  RINGMX_CHECK(idle());
  if (state_ == State::kReady && in_transaction_) AppendAbort(out.send);
  in_transaction_ = false;
  message_done_ = false;
  skip_command_ = 0;
  EndContent();
}

void Session::Unknown(std::string_view line, Output& out) {
  if (Settled(Stage::kUnknown, out)) return;
  if (!Event(Stage::kUnknown, cmd::kUnknown, std::nullopt, proto::kNoUnknown, proto::kNrUnknown,
             out, [&](std::string& s) { AppendUnknown(line, s); })) {
    Continue(Stage::kUnknown, out);
  }
}

void Session::Quit(Output& out) {
  switch (state_) {
    case State::kFailed:
    case State::kClosed:
      return;
    case State::kNew:
      break;
    case State::kNegotiating:
    case State::kReady:
    case State::kAcceptedConnection:
    case State::kRejectedConnection:
      AppendQuit(out.send);
      break;
  }
  state_ = State::kClosed;
  pending_ = Pending::kNone;
  EndContent();
  out.close = true;
}

void Session::OnError(std::string_view why, Output& out) {
  if (finished()) return;
  Fail(std::string(why), out);
}

void Session::OnInput(std::string_view input, Output& out) {
  while (!input.empty() && !finished()) {
    absl::StatusOr<std::optional<MilterReply>> next = decoder_.Next(input);
    if (!next.ok()) {
      Fail(std::string(next.status().message()), out);
      return;
    }
    if (!next->has_value()) return;
    OnReply(**next, out);
  }
}

void Session::OnReply(const MilterReply& reply, Output& out) {
  using RK = MilterReply::Kind;
  if (pending_ == Pending::kNone) {
    Fail(absl::StrCat("unexpected reply ", Printable(reply.command), " while nothing was asked"),
         out);
    return;
  }
  if (pending_ == Pending::kOptNeg) {
    if (reply.kind != RK::kOptNeg) {
      Fail(absl::StrCat("unexpected reply ", Printable(reply.command), " to OPTNEG"), out);
      return;
    }
    OnOptNeg(reply.optneg, out);
    return;
  }
  const bool at_eob = pending_command_ == cmd::kEob;
  Verdict v;
  switch (reply.kind) {
    case RK::kProgress:
      out.progress = true;
      return;
    case RK::kOptNeg:
      Fail("unexpected OPTNEG reply after negotiation", out);
      return;
    case RK::kModification: {
      if (!at_eob) {
        Fail(absl::StrCat("change request ", Printable(reply.command),
                          " before end of message (only EOB may be answered with changes)"),
             out);
        return;
      }
      const uint32_t needed = ActionFor(reply.command);
      if ((actions_ & needed) == 0) {
        Fail(absl::StrCat("change request ", Printable(reply.command),
                          " without having negotiated it (actions 0x", absl::Hex(actions_), ")"),
             out);
        return;
      }
      const Modification& m = reply.modification;
      modifications_bytes_ += m.name.size() + m.value.size();
      if (modifications_bytes_ > config_.max_changes_bytes) {
        Fail(absl::StrCat("changes of more than ", config_.max_changes_bytes,
                          " bytes at end of message (the message size limit)"),
             out);
        return;
      }
      if (m.kind == Modification::Kind::kReplaceBody) {
        const auto it = std::find_if(
            modifications_.begin(), modifications_.end(),
            [](const Modification& x) { return x.kind == Modification::Kind::kReplaceBody; });
        if (it != modifications_.end()) {
          it->value.append(m.value);
          return;
        }
      }
      modifications_.push_back(m);
      return;
    }
    case RK::kSkip:
      // SMFIR_SKIP at EOB means nothing more than continue.
      if (!at_eob) skip_command_ = pending_command_;
      [[fallthrough]];
    case RK::kContinue:
      pending_ = Pending::kNone;
      if (content_active_ && !at_eob) {
        AdvanceContent(out);
        return;
      }
      v.kind = Verdict::Kind::kContinue;
      break;
    case RK::kAccept:
      v.kind = Verdict::Kind::kAccept;
      if (IsConnectionStage(stage_)) {
        state_ = State::kAcceptedConnection;
      } else if (stage_ != Stage::kUnknown) {
        message_done_ = true;
      }
      break;
    case RK::kDiscard:
      // Not allowed for the connection (Postfix warns and goes on).
      if (IsConnectionStage(stage_) || stage_ == Stage::kUnknown) {
        v.kind = Verdict::Kind::kContinue;
      } else {
        v.kind = Verdict::Kind::kDiscard;
        message_done_ = true;
      }
      break;
    case RK::kReject:
      v.kind = Verdict::Kind::kReject;
      v.reply = MakeReply(550, "5.7.1", "Command rejected");
      break;
    case RK::kTempfail:
      v.kind = Verdict::Kind::kTempfail;
      v.reply = MakeReply(451, "4.7.1", "Service unavailable - try again later");
      break;
    case RK::kReplyCode:
      v.kind = reply.reply.code >= 500 ? Verdict::Kind::kReject : Verdict::Kind::kTempfail;
      v.reply = reply.reply;
      v.custom = true;
      break;
    case RK::kShutdown:
      v.kind = Verdict::Kind::kShutdown;
      v.reply = MakeReply(421, "4.7.0", "Server closing connection");
      break;
  }
  const bool refusal = v.kind == Verdict::Kind::kReject || v.kind == Verdict::Kind::kTempfail ||
                       v.kind == Verdict::Kind::kShutdown;
  if (refusal) {
    if (IsConnectionStage(stage_) || v.kind == Verdict::Kind::kShutdown) {
      state_ = State::kRejectedConnection;
      sticky_ = v;
    } else if (stage_ != Stage::kRcpt && stage_ != Stage::kUnknown) {
      message_done_ = true;
    }
  }
  // The milter's message is over once EOB is answered: no ABORT is owed.
  if (at_eob) in_transaction_ = false;
  Finish(std::move(v), out);
}

}  // namespace ringmx::smtp::milter

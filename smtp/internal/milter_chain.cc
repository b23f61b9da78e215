// The session's milter chain (smtp/internal/milter_chain.h).
#include "smtp/internal/milter_chain.h"

#include <span>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/strings.h"

namespace ringmx::smtp::internal {
namespace {

using VK = milter::Verdict::Kind;

std::string_view StageName(milter::Stage stage) {
  switch (stage) {
    case milter::Stage::kConnect:
      return "connect";
    case milter::Stage::kHelo:
      return "helo";
    case milter::Stage::kMail:
      return "mail";
    case milter::Stage::kRcpt:
      return "rcpt";
    case milter::Stage::kData:
      return "data";
    case milter::Stage::kContent:
      return "content";
    case milter::Stage::kUnknown:
      return "unknown";
  }
  return "?";
}

std::string_view KindName(VK kind) {
  switch (kind) {
    case VK::kContinue:
      return "continue";
    case VK::kAccept:
      return "accept";
    case VK::kReject:
      return "reject";
    case VK::kTempfail:
      return "tempfail";
    case VK::kDiscard:
      return "discard";
    case VK::kShutdown:
      return "shutdown";
  }
  return "?";
}

std::string_view DefaultName(milter::DefaultAction action) {
  switch (action) {
    case milter::DefaultAction::kTempfail:
      return "tempfail";
    case milter::DefaultAction::kAccept:
      return "accept";
    case milter::DefaultAction::kReject:
      return "reject";
  }
  return "?";
}

bool IsMessageEvent(MilterEvent::Kind kind) {
  return kind == MilterEvent::Kind::kMail || kind == MilterEvent::Kind::kRcpt ||
         kind == MilterEvent::Kind::kRejectedRcpt || kind == MilterEvent::Kind::kData ||
         kind == MilterEvent::Kind::kContent;
}

}  // namespace

MilterChain::MilterChain(std::vector<milter::SessionConfig> configs) {
  for (milter::SessionConfig& config : configs) {
    engines_.push_back(std::make_unique<milter::Session>(std::move(config)));
  }
  started_.assign(engines_.size(), false);
  message_done_.assign(engines_.size(), false);
}

void MilterChain::SetMacro(std::string_view name, const std::string& value) {
  if (name == "i") message_id_ = value;
  for (auto& e : engines_) e->SetMacro(name, value);
}

void MilterChain::ClearMacro(std::string_view name) {
  if (name == "i") message_id_.clear();
  for (auto& e : engines_) e->ClearMacro(name);
}

MilterOutcome MilterChain::TakeOutcome() {
  MilterOutcome o = std::move(outcome_);
  outcome_ = MilterOutcome();
  return o;
}

void MilterChain::BeginMessage() { message_done_.assign(engines_.size(), false); }

bool MilterChain::WantsContent() const {
  for (size_t i = 0; i < engines_.size(); ++i) {
    if (started_[i] && !message_done_[i] && !engines_[i]->finished()) return true;
  }
  return false;
}

bool MilterChain::WantsRejectedRcpts() const {
  for (size_t i = 0; i < engines_.size(); ++i) {
    if (started_[i] && !engines_[i]->finished() && engines_[i]->wants_rejected_rcpts()) {
      return true;
    }
  }
  return false;
}

bool MilterChain::Takes(size_t i) const {
  if (event_->kind == MilterEvent::Kind::kConnect) return true;
  // A milter never connected (an earlier one refused the connection) sees nothing.
  if (!started_[i]) return false;
  if (event_->kind == MilterEvent::Kind::kContent && message_done_[i]) return false;
  return true;
}

void MilterChain::Start(MilterEvent event, Output& out) {
  RINGMX_CHECK(!busy());
  outcome_ = MilterOutcome();
  event_ = std::move(event);
  index_ = 0;
  step_ = 0;
  called_ = false;
  decided_ = false;
  Run(out);
}

void MilterChain::Call(Output& out) {
  milter::Session& e = *engines_[index_];
  const MilterEvent& ev = *event_;
  milter::Output mo;
  called_ = true;
  switch (ev.kind) {
    case MilterEvent::Kind::kConnect:
      started_[index_] = true;
      e.Connect(ev.connect, mo);
      break;
    case MilterEvent::Kind::kHelo:
      e.Helo(ev.text, mo);
      break;
    case MilterEvent::Kind::kMail:
      e.Mail(ev.text, ev.args, mo);
      break;
    case MilterEvent::Kind::kRcpt:
      e.Rcpt(ev.text, ev.args, mo);
      break;
    case MilterEvent::Kind::kRejectedRcpt:
      e.RejectedRcpt(ev.text, ev.args, ev.our_reply, mo);
      break;
    case MilterEvent::Kind::kData:
      e.Data(mo);
      break;
    case MilterEvent::Kind::kContent:
      if (step_ == 0) {
        e.ContentHeaders(ev.headers, mo);
      } else if (step_ == 1) {
        e.ContentBody(std::span<const std::string_view>(ev.body.data(), ev.body.size()), mo);
      } else {
        e.ContentEnd(mo);
      }
      break;
    case MilterEvent::Kind::kUnknown:
      e.Unknown(ev.text, mo);
      break;
  }
  Collect(index_, mo, out);
}

void MilterChain::Run(Output& out) {
  while (event_.has_value() && !decided_ && index_ < engines_.size()) {
    if (!called_) {
      if (!Takes(index_)) {
        ++index_;
        continue;
      }
      if (event_->kind == MilterEvent::Kind::kContent) {
        // Skip the steps this event does not have.
        if (step_ == 0 && !event_->send_headers) step_ = 1;
        if (step_ == 1 && event_->body.empty()) step_ = 2;
        if (step_ == 2 && !event_->end) {
          step_ = 0;
          ++index_;
          continue;
        }
      }
      Call(out);
      if (decided_) break;
    }
    if (!engines_[index_]->idle()) return;  // its answer is awaited
    called_ = false;
    if (event_->kind == MilterEvent::Kind::kContent && step_ < 2 && !message_done_[index_]) {
      ++step_;
      continue;
    }
    step_ = 0;
    ++index_;
  }
  event_.reset();
}

void MilterChain::Collect(size_t i, milter::Output& mo, Output& out) {
  const std::string& name = engines_[i]->config().name;
  if (!mo.send.empty()) {
    // Bytes for the milter that got the previous ones join them: one send for all the events
    // of a call (a pipelined MAIL, RCPT and DATA; the headers and the first body chunks).
    if (!out.milter_send.empty() && out.milter_send.back().milter == i) {
      out.milter_send.back().bytes.append(mo.send);
    } else {
      out.milter_send.push_back(MilterSend{static_cast<uint32_t>(i), mo.send});
    }
  }
  if (mo.close) out.milter_close.push_back(static_cast<uint32_t>(i));
  if (!mo.error.empty()) {
    std::string_view why = mo.error;
    const std::string prefix = absl::StrCat("milter ", name, ": ");
    if (why.starts_with(prefix)) why.remove_prefix(prefix.size());
    out.log.push_back(absl::StrCat(
        "milter=", name, message_id_.empty() ? "" : " id=", message_id_, " failed: ", core::Av(why),
        " default_action=", core::Av(DefaultName(engines_[i]->config().default_action))));
  }
  if (!mo.verdict.has_value()) return;
  milter::Verdict& v = *mo.verdict;
  // Only the engine the event is at owes a verdict; anything else is stale.
  if (!event_.has_value() || i != index_ || !called_) return;
  const MilterEvent::Kind kind = event_->kind;
  if (kind == MilterEvent::Kind::kContent && !v.modifications.empty()) {
    outcome_.changes.push_back(MilterOutcome::Changes{name, engines_[i]->header_leading_space(),
                                                      std::move(v.modifications)});
  }
  if (kind == MilterEvent::Kind::kRejectedRcpt) return;  // the recipient stays refused anyway
  switch (v.kind) {
    case VK::kContinue:
      return;
    case VK::kAccept:
      if (IsMessageEvent(kind)) message_done_[i] = true;
      return;
    case VK::kDiscard:
      message_done_[i] = true;
      break;
    case VK::kReject:
    case VK::kTempfail:
    case VK::kShutdown:
      if (kind != MilterEvent::Kind::kRcpt) message_done_[i] = true;
      break;
  }
  decided_ = true;
  outcome_.kind = v.kind;
  outcome_.reply = v.reply;
  outcome_.milter = name;
  std::string line =
      absl::StrCat("milter=", name, message_id_.empty() ? "" : " id=", message_id_,
                   " stage=", core::Av(StageName(v.stage)), " action=", core::Av(KindName(v.kind)));
  if (v.kind != VK::kDiscard) absl::StrAppend(&line, " reply=\"", v.reply.OneLine(), "\"");
  if (v.failed) absl::StrAppend(&line, " (default_action)");
  out.log.push_back(std::move(line));
}

void MilterChain::OnInput(size_t i, std::string_view bytes, Output& out) {
  if (i >= engines_.size()) return;
  milter::Output mo;
  engines_[i]->OnInput(bytes, mo);
  Collect(i, mo, out);
  if (busy() && i == index_) Run(out);
}

void MilterChain::OnError(size_t i, std::string_view why, Output& out) {
  if (i >= engines_.size()) return;
  milter::Output mo;
  engines_[i]->OnError(why, mo);
  Collect(i, mo, out);
  if (busy() && i == index_) Run(out);
}

void MilterChain::Abort(Output& out) {
  RINGMX_CHECK(!busy());
  for (size_t i = 0; i < engines_.size(); ++i) {
    if (!started_[i] || !engines_[i]->idle()) continue;
    milter::Output mo;
    engines_[i]->Abort(mo);
    Collect(i, mo, out);
  }
  BeginMessage();
}

void MilterChain::Quit(Output& out) {
  event_.reset();
  for (size_t i = 0; i < engines_.size(); ++i) {
    if (!started_[i]) continue;
    milter::Output mo;
    engines_[i]->Quit(mo);
    mo.verdict.reset();
    Collect(i, mo, out);
  }
}

}  // namespace ringmx::smtp::internal

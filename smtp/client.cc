#include "smtp/client.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/strings.h"

namespace ringmx::smtp {
namespace {

// A reply of our own making, for results the hop did not give.
Reply LocalReply(int code, std::string_view enhanced, std::string_view text) {
  Reply reply;
  reply.code = code;
  reply.enhanced = std::string(enhanced);
  reply.lines.push_back(absl::StrCat(core::Av(enhanced), " ", core::Av(text)));
  return reply;
}

RecipientResult::Status StatusFor(const Reply& reply) {
  if (reply.code / 100 == 2) return RecipientResult::Status::kSent;
  if (reply.code / 100 == 5) return RecipientResult::Status::kBounced;
  return RecipientResult::Status::kDeferred;
}

bool Ok(const Reply& reply) { return reply.code / 100 == 2; }

std::string_view WaitingName(Client::Waiting waiting) {
  switch (waiting) {
    case Client::Waiting::kGreeting:
      return "the greeting";
    case Client::Waiting::kHelo:
      return "the reply to EHLO/HELO/LHLO";
    case Client::Waiting::kStartTls:
      return "the reply to STARTTLS";
    case Client::Waiting::kTls:
      return "the TLS handshake";
    case Client::Waiting::kMail:
      return "the replies to MAIL/RCPT";
    case Client::Waiting::kData:
      return "the reply to DATA";
    case Client::Waiting::kDataDone:
      return "the reply to the end of the data";
    case Client::Waiting::kIdle:
      return "idle";
    case Client::Waiting::kQuit:
      return "the reply to QUIT";
    case Client::Waiting::kClosed:
      return "closed";
  }
  return "?";
}

}  // namespace

void AppendDotStuffed(std::string_view piece, bool& at_line_start, std::string& out) {
  size_t start = 0;
  for (size_t i = 0; i < piece.size(); ++i) {
    if (at_line_start && piece[i] == '.') {
      out.append(piece.data() + start, i - start);
      out.push_back('.');  // RFC 5321 section 4.5.2: double a leading period
      start = i;
    }
    at_line_start = piece[i] == '\n';
  }
  out.append(piece.data() + start, piece.size() - start);
}

Client::Client(ClientConfig config) : config_(std::move(config)) {
  expect_.push_back(Expect::kGreeting);
}

void Client::Command(std::string_view line, Expect expect, ClientOutput& out) {
  out.send.append(line);
  out.send.append("\r\n");
  expect_.push_back(expect);
}

void Client::OnInput(std::string_view input, ClientOutput& out) {
  while (waiting_ != Waiting::kClosed && !input.empty()) {
    Reply reply;
    const ReplyParser::Result r = parser_.Parse(input, reply);
    if (r == ReplyParser::Result::kNeedMore) return;
    if (r == ReplyParser::Result::kError) {
      Fail(absl::StrCat("protocol error: ", parser_.error()), nullptr, false, out);
      return;
    }
    if (expect_.empty()) {
      // A server may say 421 on its own before it closes an idle connection (RFC 5321
      // section 3.8); anything else unasked for means we no longer agree on the state.
      if (reply.code == 421) {
        Fail(absl::StrCat("the next hop closed the connection: ", reply.OneLine()), &reply, false,
             out);
      } else {
        Fail(absl::StrCat("protocol error: an unexpected reply: ", reply.OneLine()), nullptr, false,
             out);
      }
      return;
    }
    OnReply(reply, out);
    if (waiting_ == Waiting::kTls && !input.empty()) {
      // Plaintext after the 220 to STARTTLS would be taken as said over TLS (the client side
      // of CVE-2011-0411): refuse the connection.
      Fail("protocol error: bytes after the reply to STARTTLS", nullptr, false, out);
      return;
    }
  }
}

void Client::OnReply(const Reply& reply, ClientOutput& out) {
  const Expect what = expect_.front();
  expect_.pop_front();
  if (what == Expect::kQuit) {
    expect_.clear();
    waiting_ = Waiting::kClosed;
    out.close = true;
    return;
  }
  if (reply.code == 421) {
    // RFC 5321 section 3.8: the hop is closing the channel, whatever was asked.
    Fail(absl::StrCat("the next hop is closing the connection: ", reply.OneLine()), &reply, false,
         out);
    return;
  }
  switch (what) {
    case Expect::kGreeting:
    case Expect::kEhlo:
    case Expect::kHelo:
    case Expect::kStartTls:
      OnHelloReply(what, reply, out);
      return;
    default:
      OnTransactionReply(what, reply, out);
      return;
  }
}

void Client::SendHello(bool ehlo, ClientOutput& out) {
  const bool lmtp = config_.protocol == ClientProtocol::kLmtp;
  const std::string_view verb = lmtp ? "LHLO " : ehlo ? "EHLO " : "HELO ";
  Command(absl::StrCat(core::Av(verb), config_.helo_name), ehlo ? Expect::kEhlo : Expect::kHelo,
          out);
  waiting_ = Waiting::kHelo;
}

void Client::OnHelloReply(Expect what, const Reply& reply, ClientOutput& out) {
  switch (what) {
    case Expect::kGreeting:
      if (reply.code != 220) {
        // RFC 5321 section 3.1: after a refusing greeting the client sends QUIT.
        Fail(absl::StrCat("the next hop refused the connection: ", reply.OneLine()), &reply, true,
             out);
        return;
      }
      SendHello(true, out);
      return;
    case Expect::kEhlo:
      if (Ok(reply)) {
        ext_ = HopExtensions{};
        ext_.pipelining = reply.HasKeyword("PIPELINING");
        ext_.chunking = reply.HasKeyword("CHUNKING");
        ext_.eightbitmime = reply.HasKeyword("8BITMIME");
        ext_.smtputf8 = reply.HasKeyword("SMTPUTF8");
        ext_.dsn = reply.HasKeyword("DSN");
        ext_.starttls = reply.HasKeyword("STARTTLS");
        ext_.size = reply.HasKeyword("SIZE");
        if (ext_.size && !absl::SimpleAtoi(reply.KeywordParams("SIZE"), &ext_.max_size)) {
          ext_.max_size = 0;
        }
        AfterHello(out);
        return;
      }
      if (config_.protocol == ClientProtocol::kSmtp && reply.permanent()) {
        SendHello(false, out);  // RFC 5321 section 3.2: an old server; fall back to HELO
        return;
      }
      Fail(absl::StrCat(
               "the next hop refused ",
               config_.protocol == ClientProtocol::kLmtp ? "LHLO: " : "EHLO: ", reply.OneLine()),
           &reply, true, out);
      return;
    case Expect::kHelo:
      if (!Ok(reply)) {
        Fail(absl::StrCat("the next hop refused HELO: ", reply.OneLine()), &reply, true, out);
        return;
      }
      ext_ = HopExtensions{};
      AfterHello(out);
      return;
    case Expect::kStartTls:
      if (reply.code == 220) {
        waiting_ = Waiting::kTls;
        out.start_tls = true;
        return;
      }
      if (config_.tls == ClientTls::kRequired) {
        Fail(absl::StrCat("the next hop refused STARTTLS: ", reply.OneLine()), &reply, true, out);
        return;
      }
      tls_declined_ = true;  // opportunistic: go on in plaintext
      AfterHello(out);
      return;
    default:
      return;
  }
}

void Client::AfterHello(ClientOutput& out) {
  if (config_.tls != ClientTls::kNone && !tls_active_ && !tls_declined_ && ext_.starttls) {
    Command("STARTTLS", Expect::kStartTls, out);
    waiting_ = Waiting::kStartTls;
    return;
  }
  if (config_.tls == ClientTls::kRequired && !tls_active_) {
    Fail("the next hop does not offer STARTTLS, which the route requires", nullptr, true, out);
    return;
  }
  // RFC 2033 section 4.1: an LMTP server always supports PIPELINING.
  pipelining_ =
      config_.protocol == ClientProtocol::kLmtp || (config_.use_pipelining && ext_.pipelining);
  Idle(out);
}

void Client::OnTlsEstablished(ClientOutput& out) {
  if (waiting_ != Waiting::kTls) return;
  tls_active_ = true;
  ext_ = HopExtensions{};  // RFC 3207 section 4.2: forget what was learnt in plaintext
  parser_ = ReplyParser();
  SendHello(true, out);
}

void Client::OnTlsFailed(std::string_view why, ClientOutput& out) {
  if (waiting_ == Waiting::kClosed) return;
  Fail(absl::StrCat("TLS with the next hop failed: ", core::Av(why)), nullptr, false, out);
}

void Client::OnClosed(std::string_view why, ClientOutput& out) {
  if (waiting_ == Waiting::kClosed) return;
  if (waiting_ == Waiting::kQuit || (waiting_ == Waiting::kIdle && !message_)) {
    // Nothing was at stake: a close after QUIT, or of an idle connection.
    expect_.clear();
    waiting_ = Waiting::kClosed;
    out.close = true;
    return;
  }
  Fail(absl::StrCat(core::Av(why), " while waiting for ", core::Av(WaitingName(waiting_))), nullptr,
       false, out);
}

void Client::Send(const OutboundMessage& message, ClientOutput& out) {
  RINGMX_CHECK(can_send());
  message_ = message;
  started_ = false;
  mail_ok_ = false;
  mail_failed_ = false;
  rcpt_sent_ = 0;
  rcpt_replies_ = 0;
  accepted_.clear();
  data_replies_ = 0;
  const size_t n = message.recipients.size();
  done_.assign(n, false);
  rcpt_reply_.assign(n, Reply{});
  open_ = n;
  if (n == 0) {
    FinishMessage(out);
    return;
  }
  if (waiting_ == Waiting::kIdle) Idle(out);
}

void Client::Quit(ClientOutput& out) {
  if (waiting_ == Waiting::kClosed || quit_) return;
  quit_ = true;
  if (waiting_ == Waiting::kIdle) Idle(out);
}

void Client::Idle(ClientOutput& out) {
  waiting_ = Waiting::kIdle;
  if (message_ && !started_) {
    BeginTransaction(out);
    if (!expect_.empty()) return;
  }
  if (quit_ && !message_ && expect_.empty()) {
    Command("QUIT", Expect::kQuit, out);
    waiting_ = Waiting::kQuit;
  }
}

void Client::BeginTransaction(ClientOutput& out) {
  started_ = true;
  const OutboundMessage& msg = *message_;
  if (!msg.probe) {
    // No downgrade (issue 12): the hop must take the message as it is, or not at all.
    if (msg.smtputf8 && !ext_.smtputf8) {
      ResultForRest(LocalReply(554, "5.6.7",
                               "the next hop does not support SMTPUTF8, which this message "
                               "needs (no downgrade)"),
                    true, std::nullopt, out);
      FinishMessage(out);
      return;
    }
    if (msg.body_8bit && !ext_.eightbitmime) {
      ResultForRest(LocalReply(554, "5.6.3",
                               "the next hop does not support 8BITMIME, which this 8-bit message "
                               "needs (no downgrade)"),
                    true, std::nullopt, out);
      FinishMessage(out);
      return;
    }
  }
  std::string mail = absl::StrCat("MAIL FROM:<", msg.sender, ">");
  if (!msg.probe) {
    if (ext_.size) {
      size_t size = 0;
      for (std::string_view piece : msg.body) size += piece.size();
      absl::StrAppend(&mail, " SIZE=", size);
    }
    if (msg.body_8bit) mail.append(" BODY=8BITMIME");
    if (msg.smtputf8) mail.append(" SMTPUTF8");
    // RFC 3461 section 4.3 and 4.4, only to a hop that offers DSN (section 4: a client must not
    // send these parameters to one that does not).
    if (ext_.dsn) {
      if (msg.ret == DsnRet::kFull) mail.append(" RET=FULL");
      if (msg.ret == DsnRet::kHdrs) mail.append(" RET=HDRS");
      if (!msg.envid.empty()) absl::StrAppend(&mail, " ENVID=", EncodeXtext(msg.envid));
    }
  }
  Command(mail, Expect::kMail, out);
  waiting_ = Waiting::kMail;
  if (pipelining_) {
    // RFC 2920 section 3.1: MAIL, every RCPT and DATA in one group; the data waits for 354.
    while (rcpt_sent_ < msg.recipients.size()) SendRcpt(rcpt_sent_, out);
    if (!msg.probe && !(config_.use_chunking && ext_.chunking)) {
      Command("DATA", Expect::kData, out);
    }
  }
}

void Client::SendRcpt(size_t index, ClientOutput& out) {
  const OutboundMessage& msg = *message_;
  std::string rcpt = absl::StrCat("RCPT TO:<", msg.recipients[index], ">");
  // RFC 3461 sections 4.1 and 4.2, as for MAIL: only to a hop that offers DSN, never on a probe.
  if (ext_.dsn && !msg.probe && index < msg.rcpt_dsn.size()) {
    const DsnRcptParams& dsn = msg.rcpt_dsn[index];
    if (dsn.notify.given) absl::StrAppend(&rcpt, " NOTIFY=", dsn.notify.ToParameterValue());
    if (dsn.orcpt) absl::StrAppend(&rcpt, " ORCPT=", dsn.orcpt->ToParameterValue());
  }
  Command(rcpt, Expect::kRcpt, out);
  rcpt_sent_ = index + 1;
}

void Client::OnTransactionReply(Expect what, const Reply& reply, ClientOutput& out) {
  switch (what) {
    case Expect::kMail:
      if (Ok(reply)) {
        mail_ok_ = true;
        if (!pipelining_) SendRcpt(0, out);
      } else {
        mail_failed_ = true;
        ResultForRest(reply, false, std::nullopt, out);
        // Pipelined: the RCPT and DATA replies still come (503s); they finish the message.
        if (!pipelining_) FinishMessage(out);
      }
      break;
    case Expect::kRcpt: {
      const size_t i = rcpt_replies_++;
      rcpt_reply_[i] = reply;
      if (!mail_failed_) {
        if (Ok(reply)) {
          accepted_.push_back(i);
        } else {
          Result(i, reply, false, std::nullopt, out);
        }
      }
      if (!pipelining_ && rcpt_sent_ < message_->recipients.size()) {
        SendRcpt(rcpt_sent_, out);
      } else if (rcpt_replies_ == message_->recipients.size() &&
                 (expect_.empty() || expect_.front() != Expect::kData)) {
        AfterRcpts(out);
      }
      break;
    }
    case Expect::kData:
      if (reply.code == 354) {
        if (mail_failed_ || accepted_.empty()) {
          // RFC 2920 section 3.1: every RCPT failed but DATA was accepted: end the empty
          // message at once and ignore its reply.
          Command(".", Expect::kDiscardDot, out);
          waiting_ = Waiting::kDataDone;
        } else {
          SendBody(out);
        }
      } else if (!mail_failed_ && !accepted_.empty() && reply.code / 100 < 4) {
        Fail(absl::StrCat("protocol error: DATA answered with ", reply.OneLine()), nullptr, false,
             out);
        return;
      } else {
        for (size_t i : accepted_) Result(i, reply, false, std::nullopt, out);
        if (mail_ok_) SendRset(out);
        FinishMessage(out);
      }
      break;
    case Expect::kDataDone:
      mail_ok_ = false;  // the data's end closes the transaction, whatever the reply
      if (reply.code / 100 == 3) {
        Fail(absl::StrCat("protocol error: the data answered with ", reply.OneLine()), nullptr,
             false, out);
        return;
      }
      if (config_.protocol == ClientProtocol::kLmtp) {
        // RFC 2033 section 4.2: one reply per accepted recipient, in RCPT order.
        Result(accepted_[data_replies_++], reply, false, std::nullopt, out);
        if (data_replies_ == accepted_.size()) FinishMessage(out);
      } else {
        for (size_t i : accepted_) Result(i, reply, false, std::nullopt, out);
        FinishMessage(out);
      }
      break;
    case Expect::kDiscardDot:
      mail_ok_ = false;
      FinishMessage(out);
      break;
    case Expect::kRset:
      if (!Ok(reply)) {
        Fail(absl::StrCat("the next hop refused RSET: ", reply.OneLine()), &reply, false, out);
        return;
      }
      mail_ok_ = false;
      break;
    default:
      break;
  }
  if (expect_.empty() && waiting_ != Waiting::kClosed) Idle(out);
}

void Client::AfterRcpts(ClientOutput& out) {
  if (mail_failed_) {
    FinishMessage(out);
    return;
  }
  if (accepted_.empty() || message_->probe) {
    for (size_t i : accepted_) Result(i, rcpt_reply_[i], false, std::nullopt, out);
    SendRset(out);
    FinishMessage(out);
    return;
  }
  if (config_.use_chunking && ext_.chunking) {
    SendBody(out);
    return;
  }
  Command("DATA", Expect::kData, out);
  waiting_ = Waiting::kData;
}

void Client::SendBody(ClientOutput& out) {
  const OutboundMessage& msg = *message_;
  if (config_.use_chunking && ext_.chunking) {
    // RFC 3030: the bytes go out as stored, in one last chunk.
    size_t size = 0;
    for (std::string_view piece : msg.body) size += piece.size();
    absl::StrAppend(&out.send, "BDAT ", size, " LAST\r\n");
    for (std::string_view piece : msg.body) out.send.append(piece);
  } else {
    bool at_line_start = true;
    for (std::string_view piece : msg.body) AppendDotStuffed(piece, at_line_start, out.send);
    if (!at_line_start) out.send.append("\r\n");  // the stored message lacked its last CR LF
    out.send.append(".\r\n");
  }
  // RFC 2033 section 4.2: LMTP answers once per accepted recipient.
  const size_t replies = config_.protocol == ClientProtocol::kLmtp ? accepted_.size() : 1;
  for (size_t i = 0; i < replies; ++i) expect_.push_back(Expect::kDataDone);
  data_replies_ = 0;
  waiting_ = Waiting::kDataDone;
}

void Client::SendRset(ClientOutput& out) {
  Command("RSET", Expect::kRset, out);
  waiting_ = Waiting::kMail;
}

void Client::Result(size_t index, const Reply& reply, bool local,
                    std::optional<RecipientResult::Status> status, ClientOutput& out) {
  if (index >= done_.size() || done_[index]) return;
  done_[index] = true;
  --open_;
  RecipientResult result;
  result.index = index;
  result.status = status.value_or(StatusFor(reply));
  result.reply = reply;
  result.local = local;
  result.rcpt_reply = rcpt_reply_[index];
  out.results.push_back(std::move(result));
}

void Client::ResultForRest(const Reply& reply, bool local,
                           std::optional<RecipientResult::Status> status, ClientOutput& out) {
  for (size_t i = 0; i < done_.size(); ++i) Result(i, reply, local, status, out);
}

void Client::FinishMessage(ClientOutput& out) {
  if (!message_) return;
  message_.reset();
  started_ = false;
  out.message_done = true;
}

void Client::Fail(std::string why, const Reply* reply, bool quit, ClientOutput& out) {
  if (message_) {
    // A failed connection never bounces: the recipients wait for another try (at least once).
    ResultForRest(reply != nullptr ? *reply : LocalReply(451, "4.4.2", why), reply == nullptr,
                  RecipientResult::Status::kDeferred, out);
    FinishMessage(out);
  }
  expect_.clear();
  out.error = std::move(why);
  out.start_tls = false;  // a handshake asked for in this call is off
  quit_ = true;
  if (quit) {
    Command("QUIT", Expect::kQuit, out);
    waiting_ = Waiting::kQuit;
  } else {
    waiting_ = Waiting::kClosed;
    out.close = true;
  }
}

}  // namespace ringmx::smtp

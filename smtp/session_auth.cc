// smtp::Session, part 3: AUTH (RFC 4954 with SASL PLAIN and LOGIN) and checks answered later
// (DESIGN.md section 6b). The session never verifies a password: it parks the AUTH command on a
// kCredentials check and the driver runs the hash off the shard's thread.
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"

#include "core/strings.h"
#include "smtp/internal/session_state.h"
#include "smtp/limits.h"
#include "smtp/session.h"

namespace ringmx::smtp {

using internal::Hello;

uint64_t Session::check_outstanding() const { return state_->check_token; }

size_t Session::LineLimit(std::string_view input) const {
  const State& s = *state_;
  if (s.discarding_line) return kMaxCommandLineOctets;  // too long already, whatever it is
  if (s.sasl_active) return kMaxSaslLineBytes;
  // The first five octets of the line: "AUTH ", "MAIL " and "RCPT " (any case) allow longer
  // limits. They are all in `line` once it holds five, else partly in `input`.
  char head[5];
  size_t n = 0;
  for (; n < 5 && n < s.line.size(); ++n) head[n] = s.line[n];
  for (size_t i = 0; n < 5 && i < input.size(); ++i) head[n++] = input[i];
  if (n < 5) return kMaxCommandLineOctets;
  const std::string_view verb(head, 5);
  if (StartsWithIgnoreCase(verb, "AUTH ")) return kMaxSaslLineBytes;
  if (StartsWithIgnoreCase(verb, "MAIL ") || StartsWithIgnoreCase(verb, "RCPT ")) {
    return kMaxMailRcptLineOctets;  // RFC 3461 parameters
  }
  return kMaxCommandLineOctets;
}

void Session::DoAuth(std::string_view args, Output& out) {
  State& s = *state_;
  if (!facts_.listener->auth) {
    ReplyError(out, "503 5.5.1 Error: authentication not enabled");
    return;
  }
  // RFC 4954 section 4 and RFC 3207: credentials never cross the wire in the clear.
  if (!facts_.tls) {
    Reply(out, "538 5.7.11 Encryption required for requested authentication mechanism");
    return;
  }
  if (s.hello != Hello::kEhlo) {
    ReplyError(out, "503 5.5.1 Error: send EHLO first");
    return;
  }
  if (!facts_.auth_identity.empty()) {
    ReplyError(out, "503 5.5.1 Error: already authenticated");
    return;
  }
  if (s.in_mail) {
    ReplyError(out, "503 5.5.1 Error: MAIL transaction in progress");
    return;
  }
  if (args.empty()) {
    ReplyError(out, "501 5.5.4 Syntax: AUTH mechanism");
    return;
  }
  s.sasl = std::make_unique<SaslServer>();
  OnSaslStep(s.sasl->Start(args), out);
}

void Session::HandleSaslLine(std::string_view content, Output& out) {
  State& s = *state_;
  OnSaslStep(s.sasl->Continue(content), out);
}

void Session::OnSaslStep(SaslStep step, Output& out) {
  State& s = *state_;
  if (const SaslChallenge* challenge = std::get_if<SaslChallenge>(&step)) {
    s.sasl_active = true;
    Reply(out, challenge->line);
    return;
  }
  if (const SaslFailure* failure = std::get_if<SaslFailure>(&step)) {
    out.log.push_back(absl::StrCat("auth result=error reply=", failure->code));
    EndSasl();
    ReplyError(out, failure->line);
    return;
  }
  SaslCredentials& credentials = std::get<SaslCredentials>(step);
  CheckRequest check;
  check.token = ++s.next_token;
  check.kind = CheckRequest::Kind::kCredentials;
  check.mechanism.assign(SaslMechanismName(credentials.mechanism));
  check.user = std::move(credentials.user);
  check.secret = std::move(credentials.password);
  s.check_token = check.token;
  s.check_kind = check.kind;
  s.check_user = check.user;
  s.check_mechanism = check.mechanism;
  EndSasl();
  out.check = std::move(check);
}

void Session::EndSasl() {
  State& s = *state_;
  s.sasl_active = false;
  s.sasl.reset();
}

void Session::OnCheckAnswer(uint64_t token, const CheckAnswer& answer, absl::Time now,
                            Output& out) {
  State& s = *state_;
  if (closed_ || token == 0 || token != s.check_token) return;
  s.check_token = 0;
  if (s.check_kind == CheckRequest::Kind::kRecipient) {
    FinishRcptCheck(answer, out);
    if (closed_) return;
    deadline_ = now + snapshot_->config.timeouts.idle;
    ResumeInput(now, out);
    MaybeCloseForShutdown(out);
    return;
  }
  const std::string& host = snapshot_->config.hostname;
  std::string_view result;
  switch (answer.decision) {
    case CheckAnswer::Decision::kAccept:
      facts_.auth_identity = std::move(s.check_user);
      s.auth_mechanism = s.check_mechanism;
      Reply(out, answer.reply.empty() ? "235 2.7.0 Authentication successful" : answer.reply);
      result = "ok";
      break;
    case CheckAnswer::Decision::kReject:
      ReplyError(out, answer.reply.empty() ? "535 5.7.8 Authentication credentials invalid"
                                           : answer.reply);
      result = "failed";
      break;
    case CheckAnswer::Decision::kTempFail:
      Reply(out,
            answer.reply.empty() ? "454 4.7.0 Temporary authentication failure" : answer.reply);
      result = "tempfail";
      break;
    case CheckAnswer::Decision::kRefuse:
      Reply(out, answer.reply.empty() ? TooManyAuthFailuresReply(host) : answer.reply);
      result = "refused";
      break;
  }
  // The user name is the client's claim; it is logged (printable, bounded) as Postfix does with
  // sasl_username, the password never.
  const std::string user = internal::PrintableForLog(
      answer.decision == CheckAnswer::Decision::kAccept ? facts_.auth_identity : s.check_user);
  out.log.push_back(absl::StrCat("auth mechanism=", s.check_mechanism, " user=\"", user,
                                 "\" result=", core::Av(result)));
  s.check_user.clear();
  s.check_mechanism.clear();
  if (closed_) return;  // ReplyError may have closed (too many errors)
  if (answer.decision == CheckAnswer::Decision::kRefuse) {
    Close(out, "auth-refused");
    return;
  }
  deadline_ = now + snapshot_->config.timeouts.idle;
  ResumeInput(now, out);
  MaybeCloseForShutdown(out);
}

}  // namespace ringmx::smtp

#include "smtp/envelope.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/json.h"
#include "core/strings.h"

namespace ringmx::smtp {
namespace {

constexpr const char* kWeekdays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int WeekdayIndex(absl::Weekday day) {
  switch (day) {
    case absl::Weekday::monday:
      return 0;
    case absl::Weekday::tuesday:
      return 1;
    case absl::Weekday::wednesday:
      return 2;
    case absl::Weekday::thursday:
      return 3;
    case absl::Weekday::friday:
      return 4;
    case absl::Weekday::saturday:
      return 5;
    case absl::Weekday::sunday:
      return 6;
  }
  return 0;
}

// The HELO name as it may appear in our header: printable ASCII without comment or clause
// delimiters. The envelope JSON keeps the exact bytes.
void AppendSafeHelo(std::string& out, std::string_view helo) {
  for (char ch : helo) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool ok = c >= 0x21 && c <= 0x7E && c != '(' && c != ')' && c != '\\' && c != ';';
    out.push_back(ok ? ch : '?');
  }
}

// Longest certificate name (subject or issuer CN) printed in the Received header: X.509 bounds a
// commonName at 64 characters (RFC 5280 ub-common-name), but a client's certificate may ignore
// that. Even with every octet escaped, two names (2 x 400) and the fixed text (about 55) stay
// below the 998 octets of a line (RFC 5322 section 2.1.1).
constexpr size_t kMaxCertNameInHeader = 200;
// Longest TLS version or cipher name printed (real ones are under 50).
constexpr size_t kMaxTlsTokenInHeader = 100;

// A certificate name inside a quoted string of our header: '"' and '\' escaped, other octets
// outside printable ASCII replaced by '?', at most kMaxCertNameInHeader source octets. The name
// comes from the client's certificate, so it must not be able to end the comment or the line.
void AppendQuotedName(std::string& out, std::string_view name) {
  out.push_back('"');
  for (char ch : name.substr(0, kMaxCertNameInHeader)) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c >= 0x20 && c < 0x7F ? ch : '?');
  }
  out.push_back('"');
}

// A TLS library token (version, cipher name): printable ASCII without blanks or comment
// delimiters, bounded. OpenSSL's names always pass unchanged.
void AppendToken(std::string& out, std::string_view token) {
  for (char ch : token.substr(0, kMaxTlsTokenInHeader)) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool ok = c >= 0x21 && c <= 0x7E && c != '(' && c != ')' && c != '\\' && c != '"';
    out.push_back(ok ? ch : '?');
  }
}

// The Postfix-style TLS comment lines of the Received header, each ending in CRLF.
void AppendTlsComments(std::string& out, const policy::ConnectionFacts& facts) {
  const core::TlsFacts& tls = *facts.tls_facts;
  out.append("\t(using ");
  AppendToken(out, tls.version);
  out.append(" with cipher ");
  AppendToken(out, tls.cipher);
  absl::StrAppend(&out, " (", tls.cipher_bits, "/", tls.cipher_alg_bits, " bits))\r\n");
  const core::ClientCertFacts& cert = tls.client_cert;
  switch (cert.result) {
    case core::ClientCertResult::kVerified:
    case core::ClientCertResult::kNotVerified:
      out.append("\t(Client CN ");
      AppendQuotedName(out, cert.subject_cn);
      out.append(", Issuer ");
      AppendQuotedName(out, cert.issuer_cn);
      out.append(cert.result == core::ClientCertResult::kVerified ? " (verified OK))\r\n"
                                                                  : " (not verified))\r\n");
      break;
    case core::ClientCertResult::kNone:
      if (facts.listener != nullptr &&
          facts.listener->client_certs != core::ClientCertMode::kNone) {
        out.append("\t(Client did not present a certificate)\r\n");
      } else {
        out.append("\t(No client certificate requested)\r\n");
      }
      break;
  }
}

std::string_view ClientCertResultName(core::ClientCertResult result) {
  switch (result) {
    case core::ClientCertResult::kVerified:
      return "verified";
    case core::ClientCertResult::kNotVerified:
      return "not-verified";
    case core::ClientCertResult::kNone:
      break;
  }
  return "none";
}

void WriteTlsJson(core::JsonWriter& w, const core::TlsFacts& tls) {
  w.BeginObject();
  w.Key("version").String(tls.version);
  w.Key("cipher").String(tls.cipher);
  w.Key("cipher_bits").Int(tls.cipher_bits);
  w.Key("sni");
  if (tls.sni.empty()) {
    w.Null();
  } else {
    w.String(tls.sni);
  }
  w.Key("sni_fallback").Bool(tls.sni_fallback);
  w.Key("ktls").Bool(tls.ktls);
  w.Key("implicit").Bool(tls.implicit);
  const core::ClientCertFacts& cert = tls.client_cert;
  const bool presented = cert.result != core::ClientCertResult::kNone;
  w.Key("client_cert").BeginObject();
  w.Key("result").String(ClientCertResultName(cert.result));
  // Present but empty (an empty subject) stays "", absent is null.
  const auto string_or_null = [&w](std::string_view key, const std::string& value, bool present) {
    w.Key(key);
    if (present) {
      w.String(value);
    } else {
      w.Null();
    }
  };
  string_or_null("subject", cert.subject, presented);
  string_or_null("issuer", cert.issuer, presented);
  string_or_null("sha256", cert.sha256_fingerprint, presented);
  string_or_null("verify_error", cert.verify_error, presented && !cert.verify_error.empty());
  w.EndObject();
  w.EndObject();
}

}  // namespace

std::string_view ProtocolName(bool ehlo, bool smtputf8, bool tls, bool auth) {
  if (!ehlo) return "SMTP";
  static constexpr std::string_view kNames[2][4] = {
      {"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"},
      {"UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"},
  };
  return kNames[smtputf8 ? 1 : 0][(tls ? 1 : 0) + (auth ? 2 : 0)];
}

std::string FormatRfc5322Date(absl::Time time) {
  const absl::TimeZone utc = absl::UTCTimeZone();
  const absl::CivilSecond cs = absl::ToCivilSecond(time, utc);
  return absl::StrFormat("%s, %d %s %04d %02d:%02d:%02d +0000",
                         kWeekdays[WeekdayIndex(absl::GetWeekday(cs))], cs.day(),
                         kMonths[cs.month() - 1], cs.year(), cs.hour(), cs.minute(), cs.second());
}

std::string FormatRfc3339Micros(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", time, absl::UTCTimeZone());
}

std::string BuildReceivedHeader(const Envelope& envelope, const TraceContext& context) {
  const policy::ConnectionFacts& facts = *context.facts;
  const std::string_view protocol =
      ProtocolName(context.ehlo, envelope.smtputf8, facts.tls, !facts.auth_identity.empty());
  std::string out;
  out.reserve(160 + context.helo.size() + context.hostname.size() +
              (envelope.rcpt_to.size() == 1 ? envelope.rcpt_to[0].size() : 0));
  out.append("Received: from ");
  AppendSafeHelo(out, context.helo);
  absl::StrAppend(&out, " (", facts.client.address.ToAddressLiteral(), ")\r\n");
  if (facts.tls_facts) AppendTlsComments(out, facts);
  absl::StrAppend(&out, "\tby ", core::Av(context.hostname), " (ringmx) with ", core::Av(protocol),
                  " id ", core::Av(context.id));
  // RFC 5321 section 4.4: "for" names the recipient only when there is exactly one, so a message
  // to many does not disclose the others (as Postfix does).
  if (envelope.rcpt_to.size() == 1) {
    absl::StrAppend(&out, "\r\n\tfor <", envelope.rcpt_to[0], ">; ");
  } else {
    out.append(";\r\n\t");
  }
  absl::StrAppend(&out, FormatRfc5322Date(context.received_at), "\r\n");
  return out;
}

std::string BuildEnvelopeJson(const Envelope& envelope, const TraceContext& context) {
  const policy::ConnectionFacts& facts = *context.facts;
  std::string out;
  out.reserve(512 + 64 * envelope.rcpt_to.size());
  core::JsonWriter w(out);
  w.BeginObject();
  w.Key("id").String(context.id);
  w.Key("received_at").String(FormatRfc3339Micros(context.received_at));
  w.Key("mail_from").String(envelope.mail_from);
  w.Key("mail_params").BeginObject();
  for (const MailParam& p : envelope.mail_params) {
    w.Key(p.keyword);
    if (p.has_value) {
      w.String(p.value);
    } else {
      w.Bool(true);
    }
  }
  w.EndObject();
  w.Key("rcpt_to").BeginArray();
  for (const std::string& rcpt : envelope.rcpt_to) w.String(rcpt);
  w.EndArray();
  w.Key("client").BeginObject();
  w.Key("address").String(facts.client.address.ToString());
  w.Key("port").Uint(facts.client.port);
  w.EndObject();
  w.Key("local").BeginObject();
  w.Key("address").String(facts.local.address.ToString());
  w.Key("port").Uint(facts.local.port);
  w.EndObject();
  w.Key("listener");
  if (facts.listener != nullptr) {
    w.String(facts.listener->name);
  } else {
    w.Null();
  }
  w.Key("helo").String(context.helo);
  w.Key("protocol")
      .String(
          ProtocolName(context.ehlo, envelope.smtputf8, facts.tls, !facts.auth_identity.empty()));
  w.Key("smtputf8").Bool(envelope.smtputf8);
  w.Key("body_type").String(envelope.body_8bitmime ? "8BITMIME" : "7BIT");
  w.Key("size").Uint(context.size);
  w.Key("tls");
  if (facts.tls_facts) {
    WriteTlsJson(w, *facts.tls_facts);
  } else {
    w.Null();
  }
  w.Key("auth");
  if (facts.auth_identity.empty()) {
    w.Null();
  } else {
    w.String(facts.auth_identity);
  }
  w.EndObject();
  return out;
}

}  // namespace ringmx::smtp

#include "smtp/envelope.h"

#include <optional>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include "core/json.h"
#include "core/status_macros.h"
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

std::string_view DsnRetName(DsnRet ret) {
  switch (ret) {
    case DsnRet::kFull:
      return "FULL";
    case DsnRet::kHdrs:
      return "HDRS";
    case DsnRet::kUnspecified:
      break;
  }
  return "";
}

void WriteDsnJson(core::JsonWriter& w, const Envelope& envelope) {
  w.Key("dsn").BeginObject();
  w.Key("ret");
  if (envelope.dsn.ret == DsnRet::kUnspecified) {
    w.Null();
  } else {
    w.String(DsnRetName(envelope.dsn.ret));
  }
  w.Key("envid");
  if (envelope.dsn.envid) {
    w.String(*envelope.dsn.envid);
  } else {
    w.Null();
  }
  w.EndObject();
  w.Key("rcpt_dsn").BeginArray();
  static const DsnRcptParams kNone;
  for (size_t i = 0; i < envelope.rcpt_to.size(); ++i) {
    const DsnRcptParams& p = i < envelope.rcpt_dsn.size() ? envelope.rcpt_dsn[i] : kNone;
    w.BeginObject();
    w.Key("notify");
    if (!p.notify.given) {
      w.Null();
    } else {
      w.BeginArray();
      if (p.notify.never) w.String("NEVER");
      if (p.notify.flags & DsnNotify::kSuccess) w.String("SUCCESS");
      if (p.notify.flags & DsnNotify::kFailure) w.String("FAILURE");
      if (p.notify.flags & DsnNotify::kDelay) w.String("DELAY");
      w.EndArray();
    }
    w.Key("orcpt");
    if (p.orcpt) {
      w.BeginObject();
      w.Key("addr_type").String(p.orcpt->addr_type);
      w.Key("address").String(p.orcpt->address);
      w.EndObject();
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
}

absl::Status Bad(std::string_view field, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("envelope: ", core::Av(field), " ", core::Av(why)));
}

// Reads an optional string member: absent or (when `null_ok`) null leaves `out` alone.
absl::Status ReadString(const core::JsonValue& object, std::string_view key, bool null_ok,
                        std::string& out) {
  const core::JsonValue* v = object.Find(key);
  if (v == nullptr || (null_ok && v->is_null())) return absl::OkStatus();
  if (!v->is_string()) return Bad(key, "is not a string");
  out = v->text();
  return absl::OkStatus();
}

absl::Status ReadBool(const core::JsonValue& object, std::string_view key, bool& out) {
  const core::JsonValue* v = object.Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_bool()) return Bad(key, "is not a boolean");
  out = v->bool_value();
  return absl::OkStatus();
}

absl::Status ReadDsn(const core::JsonValue& root, StoredEnvelope& env) {
  const core::JsonValue* dsn = root.Find("dsn");
  if (dsn == nullptr || dsn->is_null()) return absl::OkStatus();
  if (!dsn->is_object()) return Bad("dsn", "is not an object");
  if (const core::JsonValue* ret = dsn->Find("ret"); ret != nullptr && !ret->is_null()) {
    if (ret->is_string() && ret->text() == "FULL") {
      env.ret = DsnRet::kFull;
    } else if (ret->is_string() && ret->text() == "HDRS") {
      env.ret = DsnRet::kHdrs;
    } else {
      return Bad("dsn.ret", "is not \"FULL\", \"HDRS\" or null");
    }
  }
  if (const core::JsonValue* envid = dsn->Find("envid"); envid != nullptr && !envid->is_null()) {
    if (!envid->is_string()) return Bad("dsn.envid", "is not a string");
    // The session accepted it through ParseEnvid; it must pass again.
    auto parsed = ParseEnvid(EncodeXtext(envid->text()));
    if (std::holds_alternative<DsnParamError>(parsed)) return Bad("dsn.envid", "is not valid");
    env.envid = envid->text();
  }
  return absl::OkStatus();
}

absl::Status ReadRcptDsn(const core::JsonValue& item, DsnRcptParams& params) {
  if (item.is_null()) return absl::OkStatus();
  if (!item.is_object()) return Bad("rcpt_dsn", "has an entry that is not an object");
  if (const core::JsonValue* notify = item.Find("notify");
      notify != nullptr && !notify->is_null()) {
    if (!notify->is_array() || notify->elements().empty()) {
      return Bad("rcpt_dsn.notify", "is not a non-empty array");
    }
    // The list as a NOTIFY value: ParseNotify's rules (NEVER alone, known keywords) apply.
    std::string value;
    for (const core::JsonValue& word : notify->elements()) {
      if (!word.is_string()) return Bad("rcpt_dsn.notify", "has an entry that is not a string");
      // A ',' inside an entry would make two keywords of one.
      if (word.text().find(',') != std::string::npos) return Bad("rcpt_dsn.notify", "is not valid");
      if (!value.empty()) value.push_back(',');
      value.append(word.text());
    }
    auto parsed = ParseNotify(value);
    if (std::holds_alternative<DsnParamError>(parsed)) {
      return Bad("rcpt_dsn.notify", "is not valid");
    }
    params.notify = std::get<DsnNotify>(parsed);
  }
  if (const core::JsonValue* orcpt = item.Find("orcpt"); orcpt != nullptr && !orcpt->is_null()) {
    if (!orcpt->is_object()) return Bad("rcpt_dsn.orcpt", "is not an object");
    const core::JsonValue* type = orcpt->Find("addr_type");
    const core::JsonValue* address = orcpt->Find("address");
    if (type == nullptr || !type->is_string() || address == nullptr || !address->is_string()) {
      return Bad("rcpt_dsn.orcpt", "needs the strings addr_type and address");
    }
    DsnOrcpt value{type->text(), address->text()};
    auto parsed = ParseOrcpt(value.ToParameterValue());
    if (std::holds_alternative<DsnParamError>(parsed) || std::get<DsnOrcpt>(parsed) != value) {
      return Bad("rcpt_dsn.orcpt", "is not valid");
    }
    params.orcpt = std::move(value);
  }
  return absl::OkStatus();
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
  w.Key("proxied_by");
  if (facts.proxied_by) {
    w.BeginObject();
    w.Key("address").String(facts.proxied_by->address.ToString());
    w.Key("port").Uint(facts.proxied_by->port);
    w.EndObject();
  } else {
    w.Null();
  }
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
  WriteDsnJson(w, envelope);
  w.EndObject();
  return out;
}

absl::StatusOr<StoredEnvelope> ParseStoredEnvelope(std::string_view envelope_json) {
  absl::StatusOr<core::JsonValue> parsed = core::ParseJson(envelope_json);
  if (!parsed.ok()) {
    return Bad("text", absl::StrCat("is not JSON (", parsed.status().message(), ")"));
  }
  const core::JsonValue& root = *parsed;
  if (!root.is_object()) return Bad("text", "is not a JSON object");
  StoredEnvelope env;
  const core::JsonValue* from = root.Find("mail_from");
  if (from == nullptr || !from->is_string()) return Bad("mail_from", "is missing or not a string");
  env.mail_from = from->text();
  const core::JsonValue* rcpts = root.Find("rcpt_to");
  if (rcpts == nullptr || !rcpts->is_array()) return Bad("rcpt_to", "is missing or not an array");
  env.rcpt_to.reserve(rcpts->elements().size());
  for (const core::JsonValue& r : rcpts->elements()) {
    if (!r.is_string()) return Bad("rcpt_to", "has an entry that is not a string");
    env.rcpt_to.push_back(r.text());
  }
  RINGMX_RETURN_IF_ERROR(ReadString(root, "id", /*null_ok=*/false, env.id));
  RINGMX_RETURN_IF_ERROR(ReadString(root, "helo", /*null_ok=*/false, env.helo));
  RINGMX_RETURN_IF_ERROR(ReadString(root, "protocol", /*null_ok=*/false, env.protocol));
  RINGMX_RETURN_IF_ERROR(ReadBool(root, "smtputf8", env.smtputf8));
  if (const core::JsonValue* body = root.Find("body_type"); body != nullptr) {
    if (body->is_string() && body->text() == "8BITMIME") {
      env.body_8bitmime = true;
    } else if (!body->is_string() || body->text() != "7BIT") {
      return Bad("body_type", "is not \"7BIT\" or \"8BITMIME\"");
    }
  }
  if (const core::JsonValue* client = root.Find("client"); client != nullptr) {
    if (!client->is_object()) return Bad("client", "is not an object");
    RINGMX_RETURN_IF_ERROR(ReadString(*client, "address", /*null_ok=*/false, env.client_address));
  }
  if (const core::JsonValue* by = root.Find("proxied_by"); by != nullptr && !by->is_null()) {
    if (!by->is_object()) return Bad("proxied_by", "is not an object or null");
    RINGMX_RETURN_IF_ERROR(ReadString(*by, "address", /*null_ok=*/false, env.proxied_by_address));
  }
  RINGMX_RETURN_IF_ERROR(ReadDsn(root, env));
  env.rcpt_dsn.resize(env.rcpt_to.size());
  if (const core::JsonValue* list = root.Find("rcpt_dsn"); list != nullptr && !list->is_null()) {
    if (!list->is_array()) return Bad("rcpt_dsn", "is not an array");
    if (list->elements().size() != env.rcpt_to.size()) {
      return Bad("rcpt_dsn", "is not as long as rcpt_to");
    }
    for (size_t i = 0; i < env.rcpt_to.size(); ++i) {
      RINGMX_RETURN_IF_ERROR(ReadRcptDsn(list->elements()[i], env.rcpt_dsn[i]));
    }
  }
  return env;
}

}  // namespace ringmx::smtp

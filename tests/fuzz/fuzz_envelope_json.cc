// Fuzz target: the spool envelope (smtp/envelope.h, core/json.h). An envelope is built from fuzzed
// facts (addresses, parameters, HELO, TLS and certificate facts, all arbitrary bytes including
// invalid UTF-8 and control characters; with flag 32, RFC 3461 parameters as the session could
// have accepted them); its JSON must be accepted by an independent parser (nlohmann::json, which
// also checks UTF-8), and every field must read back as what went in, or as its documented
// escaping (invalid UTF-8 becomes U+FFFD). ParseStoredEnvelope must read the same JSON back: the
// DSN parameters exactly, the texts as escaped. The Received header built from the same facts
// must stay a well-formed, folded header when the facts are within what the session allows.
//
// Input: [flags][listener][cert mode][client][local][tls facts if flag 2][auth]
// [balancer if flag 64][mail_from]
// [n params][params][id][helo length (2)][helo][micros (6)][size (8)]
// [if flag 32: ret byte, envid, n (byte % 8), n x (notify byte, addr_type, address)]
// [recipients, NUL-separated].
#include <stddef.h>
#include <stdint.h>

#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/time/time.h"

#include "core/check.h"
#include "core/config.h"
#include "core/ip.h"
#include "core/tls_facts.h"
#include "policy/policy.h"
#include "smtp/dsn_params.h"
#include "smtp/envelope.h"
#include "tests/fuzz/fuzz_input.h"

#include <nlohmann/json.hpp>

namespace ringmx::fuzz {
namespace {

using Json = nlohmann::json;

core::Endpoint MakeEndpoint(FuzzInput& in) {
  core::Endpoint e;
  if (in.Bool()) {
    uint8_t b[16];
    for (uint8_t& x : b) x = in.Byte();
    e.address = core::IpAddress::V6(b);
  } else {
    uint8_t b[4];
    for (uint8_t& x : b) x = in.Byte();
    e.address = core::IpAddress::V4(b);
  }
  e.port = in.U16();
  return e;
}

core::TlsFacts MakeTlsFacts(FuzzInput& in) {
  core::TlsFacts t;
  const uint8_t flags = in.Byte();
  t.version = std::string(in.ShortString());
  t.cipher = std::string(in.ShortString());
  t.cipher_bits = static_cast<int16_t>(in.U16());
  t.cipher_alg_bits = static_cast<int16_t>(in.U16());
  t.sni = std::string(in.ShortString());
  t.sni_fallback = (flags & 1) != 0;
  t.ktls = (flags & 2) != 0;
  t.implicit = (flags & 4) != 0;
  t.client_cert.result = static_cast<core::ClientCertResult>((flags >> 3) % 3);
  if (t.client_cert.result != core::ClientCertResult::kNone) {
    t.client_cert.subject = std::string(in.ShortString());
    t.client_cert.issuer = std::string(in.ShortString());
    t.client_cert.subject_cn = std::string(in.ShortString());
    t.client_cert.issuer_cn = std::string(in.ShortString());
    t.client_cert.sha256_fingerprint = std::string(in.ShortString());
    t.client_cert.verify_error = std::string(in.ShortString());
  }
  return t;
}

// The JSON text of a string as the envelope documents it.
std::string Expected(std::string_view s) { return ReferenceReplaceInvalidUtf8(s); }

const Json& Field(const Json& object, const std::string& key) {
  RINGMX_CHECK(object.is_object());
  const auto it = object.find(key);
  RINGMX_CHECK(it != object.end());
  return *it;
}

void CheckString(const Json& object, const char* key, std::string_view want) {
  const Json& v = Field(object, key);
  RINGMX_CHECK(v.is_string() && v.get_ref<const std::string&>() == Expected(want));
}

void CheckStringOrNull(const Json& object, const char* key, std::string_view want, bool present) {
  if (present) {
    CheckString(object, key, want);
  } else {
    RINGMX_CHECK(Field(object, key).is_null());
  }
}

void CheckBool(const Json& object, const char* key, bool want) {
  const Json& v = Field(object, key);
  RINGMX_CHECK(v.is_boolean() && v.get<bool>() == want);
}

// RFC 3848 / RFC 6531 "with" keywords, from the table in the RFCs.
std::string ExpectedProtocol(bool ehlo, bool utf8, bool tls, bool auth) {
  if (!ehlo) return "SMTP";
  std::string p = utf8 ? "UTF8SMTP" : "ESMTP";
  if (tls) p += "S";
  if (auth) p += "A";
  return p;
}

void CheckJson(const std::string& text, const smtp::Envelope& env, const smtp::TraceContext& ctx) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  RINGMX_CHECK(!j.is_discarded() && j.is_object());
  RINGMX_CHECK(j.size() == 18);
  CheckString(j, "id", ctx.id);
  CheckString(j, "received_at", smtp::FormatRfc3339Micros(ctx.received_at));
  CheckString(j, "mail_from", env.mail_from);
  // Parameters: an object, the last of equal keys wins in the parser.
  std::map<std::string, const smtp::MailParam*> params;
  for (const smtp::MailParam& p : env.mail_params) params[Expected(p.keyword)] = &p;
  const Json& jp = Field(j, "mail_params");
  RINGMX_CHECK(jp.is_object() && jp.size() == params.size());
  for (const auto& [key, p] : params) {
    const Json& v = Field(jp, key);
    if (p->has_value) {
      RINGMX_CHECK(v.is_string() && v.get_ref<const std::string&>() == Expected(p->value));
    } else {
      RINGMX_CHECK(v.is_boolean() && v.get<bool>());
    }
  }
  const Json& rcpts = Field(j, "rcpt_to");
  RINGMX_CHECK(rcpts.is_array() && rcpts.size() == env.rcpt_to.size());
  for (size_t i = 0; i < env.rcpt_to.size(); ++i) {
    RINGMX_CHECK(rcpts[i].is_string() &&
                 rcpts[i].get_ref<const std::string&>() == Expected(env.rcpt_to[i]));
  }
  const policy::ConnectionFacts& facts = *ctx.facts;
  for (const auto& [key, endpoint] :
       {std::pair<const char*, const core::Endpoint*>{"client", &facts.client},
        {"local", &facts.local}}) {
    const Json& e = Field(j, key);
    CheckString(e, "address", endpoint->address.ToString());
    const Json& port = Field(e, "port");
    RINGMX_CHECK(port.is_number_unsigned() && port.get<uint64_t>() == endpoint->port);
    // The address as printed is an address again.
    RINGMX_CHECK(core::IpAddress::Parse(endpoint->address.ToString()) == endpoint->address);
  }
  const Json& by = Field(j, "proxied_by");
  if (!facts.proxied_by) {
    RINGMX_CHECK(by.is_null());
  } else {
    RINGMX_CHECK(by.is_object() && by.size() == 2);
    CheckString(by, "address", facts.proxied_by->address.ToString());
    const Json& port = Field(by, "port");
    RINGMX_CHECK(port.is_number_unsigned() && port.get<uint64_t>() == facts.proxied_by->port);
  }
  CheckStringOrNull(j, "listener", facts.listener ? facts.listener->name : "",
                    facts.listener != nullptr);
  CheckString(j, "helo", ctx.helo);
  CheckString(j, "protocol",
              ExpectedProtocol(ctx.ehlo, env.smtputf8, facts.tls, !facts.auth_identity.empty()));
  CheckBool(j, "smtputf8", env.smtputf8);
  CheckString(j, "body_type", env.body_8bitmime ? "8BITMIME" : "7BIT");
  const Json& size = Field(j, "size");
  RINGMX_CHECK(size.is_number_unsigned() && size.get<uint64_t>() == ctx.size);
  const Json& tls = Field(j, "tls");
  if (!facts.tls_facts) {
    RINGMX_CHECK(tls.is_null());
  } else {
    const core::TlsFacts& t = *facts.tls_facts;
    RINGMX_CHECK(tls.is_object() && tls.size() == 8);
    CheckString(tls, "version", t.version);
    CheckString(tls, "cipher", t.cipher);
    const Json& bits = Field(tls, "cipher_bits");
    RINGMX_CHECK(bits.is_number_integer() && bits.get<int64_t>() == t.cipher_bits);
    CheckStringOrNull(tls, "sni", t.sni, !t.sni.empty());
    CheckBool(tls, "sni_fallback", t.sni_fallback);
    CheckBool(tls, "ktls", t.ktls);
    CheckBool(tls, "implicit", t.implicit);
    const Json& cert = Field(tls, "client_cert");
    RINGMX_CHECK(cert.is_object() && cert.size() == 5);
    const core::ClientCertFacts& c = t.client_cert;
    const bool presented = c.result != core::ClientCertResult::kNone;
    CheckString(cert, "result",
                c.result == core::ClientCertResult::kVerified      ? "verified"
                : c.result == core::ClientCertResult::kNotVerified ? "not-verified"
                                                                   : "none");
    CheckStringOrNull(cert, "subject", c.subject, presented);
    CheckStringOrNull(cert, "issuer", c.issuer, presented);
    CheckStringOrNull(cert, "sha256", c.sha256_fingerprint, presented);
    CheckStringOrNull(cert, "verify_error", c.verify_error, presented && !c.verify_error.empty());
  }
  CheckStringOrNull(j, "auth", facts.auth_identity, !facts.auth_identity.empty());

  const Json& dsn = Field(j, "dsn");
  RINGMX_CHECK(dsn.is_object() && dsn.size() == 2);
  CheckStringOrNull(dsn, "ret", env.dsn.ret == smtp::DsnRet::kFull ? "FULL" : "HDRS",
                    env.dsn.ret != smtp::DsnRet::kUnspecified);
  CheckStringOrNull(dsn, "envid", env.dsn.envid.value_or(""), env.dsn.envid.has_value());
  const Json& rcpt_dsn = Field(j, "rcpt_dsn");
  RINGMX_CHECK(rcpt_dsn.is_array() && rcpt_dsn.size() == env.rcpt_to.size());
  for (size_t i = 0; i < env.rcpt_to.size(); ++i) {
    const smtp::DsnRcptParams p = i < env.rcpt_dsn.size() ? env.rcpt_dsn[i] : smtp::DsnRcptParams{};
    const Json& item = rcpt_dsn[i];
    RINGMX_CHECK(item.is_object() && item.size() == 2);
    const Json& notify = Field(item, "notify");
    if (!p.notify.given) {
      RINGMX_CHECK(notify.is_null());
    } else {
      std::string joined;
      for (const Json& word : notify) {
        RINGMX_CHECK(word.is_string());
        if (!joined.empty()) joined += ",";
        joined += word.get_ref<const std::string&>();
      }
      RINGMX_CHECK(notify.is_array() && joined == p.notify.ToParameterValue());
    }
    const Json& orcpt = Field(item, "orcpt");
    if (!p.orcpt) {
      RINGMX_CHECK(orcpt.is_null());
    } else {
      RINGMX_CHECK(orcpt.is_object() && orcpt.size() == 2);
      CheckString(orcpt, "addr_type", p.orcpt->addr_type);
      CheckString(orcpt, "address", p.orcpt->address);
    }
  }
}

// The same JSON through our own reader: what the delivery driver will see.
void CheckStored(const std::string& text, const smtp::Envelope& env,
                 const smtp::TraceContext& ctx) {
  const absl::StatusOr<smtp::StoredEnvelope> s = smtp::ParseStoredEnvelope(text);
  RINGMX_CHECK(s.ok());
  RINGMX_CHECK(s->id == Expected(ctx.id));
  RINGMX_CHECK(s->mail_from == Expected(env.mail_from));
  RINGMX_CHECK(s->rcpt_to.size() == env.rcpt_to.size());
  for (size_t i = 0; i < env.rcpt_to.size(); ++i) {
    RINGMX_CHECK(s->rcpt_to[i] == Expected(env.rcpt_to[i]));
  }
  RINGMX_CHECK(s->smtputf8 == env.smtputf8);
  RINGMX_CHECK(s->body_8bitmime == env.body_8bitmime);
  RINGMX_CHECK(s->helo == Expected(ctx.helo));
  RINGMX_CHECK(s->client_address == ctx.facts->client.address.ToString());
  RINGMX_CHECK(s->proxied_by_address ==
               (ctx.facts->proxied_by ? ctx.facts->proxied_by->address.ToString() : ""));
  RINGMX_CHECK(s->ret == env.dsn.ret);
  RINGMX_CHECK(s->envid == env.dsn.envid.value_or(""));
  RINGMX_CHECK(s->rcpt_dsn.size() == env.rcpt_to.size());
  for (size_t i = 0; i < env.rcpt_to.size(); ++i) {
    const smtp::DsnRcptParams want =
        i < env.rcpt_dsn.size() ? env.rcpt_dsn[i] : smtp::DsnRcptParams{};
    RINGMX_CHECK(s->rcpt_dsn[i] == want);
  }
}

// DSN parameters as the session could have accepted them: values the dsn_params parsers take.
void MakeDsn(FuzzInput& in, smtp::Envelope& env) {
  env.dsn.ret = static_cast<smtp::DsnRet>(in.Byte() % 3);
  const std::string envid(in.ShortString());
  if (std::holds_alternative<std::string>(smtp::ParseEnvid(smtp::EncodeXtext(envid)))) {
    env.dsn.envid = envid;
  }
  const int n = in.Byte() % 8;
  for (int i = 0; i < n; ++i) {
    smtp::DsnRcptParams p;
    const uint8_t b = in.Byte();
    p.notify.given = (b & 1) != 0;
    if (p.notify.given) {
      p.notify.never = (b & 2) != 0;
      p.notify.flags = p.notify.never ? 0 : (b >> 2) & 7;
      if (!p.notify.never && p.notify.flags == 0) p.notify.flags = smtp::DsnNotify::kFailure;
    }
    smtp::DsnOrcpt orcpt{std::string(in.ShortString()), std::string(in.ShortString())};
    const auto parsed = smtp::ParseOrcpt(orcpt.ToParameterValue());
    if (std::holds_alternative<smtp::DsnOrcpt>(parsed)) {
      RINGMX_CHECK(std::get<smtp::DsnOrcpt>(parsed) == orcpt);
      p.orcpt = std::move(orcpt);
    }
    env.rcpt_dsn.push_back(std::move(p));
  }
}

// Within what the session lets through (a HELO argument from a 512-octet command line, paths of
// at most 256 octets without control octets, a queue id, a configured host name), the Received
// header is lines of at most 998 octets, each ended by CR LF, continuation lines folded with TAB
// (RFC 5322 sections 2.1.1 and 2.2.3).
void CheckReceived(const std::string& header) {
  RINGMX_CHECK(header.substr(0, 15) == "Received: from ");
  RINGMX_CHECK(header.size() >= 2 && header.substr(header.size() - 2) == "\r\n");
  size_t start = 0;
  while (start < header.size()) {
    const size_t crlf = header.find("\r\n", start);
    RINGMX_CHECK(crlf != std::string::npos);
    const std::string_view line(header.data() + start, crlf - start);
    RINGMX_CHECK(line.size() <= 998);
    RINGMX_CHECK(line.find('\r') == std::string_view::npos);
    RINGMX_CHECK(line.find('\n') == std::string_view::npos);
    if (start > 0) RINGMX_CHECK(!line.empty() && line[0] == '\t');
    start = crlf + 2;
  }
}

bool SessionLike(std::string_view s, size_t max) {
  if (s.size() > max) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  }
  return true;
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;
  using namespace ringmx::fuzz;
  FuzzInput in(data, size);
  const uint8_t flags = in.Byte();
  core::ListenerConfig listener;
  listener.name = std::string(in.ShortString());
  listener.client_certs = static_cast<core::ClientCertMode>(in.Byte() % 3);
  policy::ConnectionFacts facts;
  facts.client = MakeEndpoint(in);
  facts.local = MakeEndpoint(in);
  facts.listener = (flags & 1) != 0 ? &listener : nullptr;
  if ((flags & 2) != 0) {
    facts.tls = true;
    facts.tls_facts = MakeTlsFacts(in);
  }
  facts.auth_identity = std::string(in.ShortString());
  if ((flags & 64) != 0) facts.proxied_by = MakeEndpoint(in);

  smtp::Envelope env;
  env.mail_from = std::string(in.ShortString());
  env.smtputf8 = (flags & 4) != 0;
  env.body_8bitmime = (flags & 8) != 0;
  const int nparams = in.Byte() % 8;
  for (int i = 0; i < nparams; ++i) {
    smtp::MailParam p;
    p.keyword = std::string(in.ShortString());
    p.has_value = in.Bool();
    if (p.has_value) p.value = std::string(in.ShortString());
    env.mail_params.push_back(std::move(p));
  }
  const std::string id(in.ShortString());
  const std::string helo(in.Bytes(static_cast<size_t>(in.U16() % 600)));
  // Each read in its own statement: the order of operands in one expression is unspecified.
  int64_t micros = 0;
  for (int i = 0; i < 3; ++i) micros = (micros << 16) | in.U16();  // up to 2^48 us: 1970-1978
  uint64_t message_size = 0;
  for (int i = 0; i < 4; ++i) message_size = (message_size << 16) | in.U16();
  if ((flags & 32) != 0) MakeDsn(in, env);
  // The rest: recipients, one per 0-byte-terminated piece.
  const std::string_view rest = in.Rest();
  size_t pos = 0;
  while (pos < rest.size() && env.rcpt_to.size() < 100) {
    size_t end = rest.find('\0', pos);
    if (end == std::string_view::npos) end = rest.size();
    env.rcpt_to.emplace_back(rest.substr(pos, end - pos));
    pos = end + 1;
  }

  smtp::TraceContext ctx;
  ctx.id = id;
  ctx.received_at = absl::FromUnixMicros(micros);
  ctx.hostname = "mx.example.test";
  ctx.helo = helo;
  ctx.ehlo = (flags & 16) != 0;
  ctx.facts = &facts;
  ctx.size = message_size;

  const std::string json = smtp::BuildEnvelopeJson(env, ctx);
  CheckJson(json, env, ctx);
  CheckStored(json, env, ctx);

  const std::string header = smtp::BuildReceivedHeader(env, ctx);
  bool session_like = SessionLike(helo, 510) && SessionLike(id, 64);
  for (const std::string& r : env.rcpt_to) session_like = session_like && SessionLike(r, 256);
  if (session_like) CheckReceived(header);
  return 0;
}

// Pure policy decisions from (connection facts, Snapshot). No I/O, no clock, no socket headers:
// every rule here is testable from plain values.
#pragma once

#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/ip.h"
#include "core/snapshot.h"
#include "core/tls_facts.h"

namespace ringmx::policy {

// What is known about one connection. Filled by net/ at accept (and after TLS/AUTH later).
// Shard-local; owned by the session.
struct ConnectionFacts {
  // The client and the address it connected to. On a listener with `proxy_protocol` these are
  // the addresses the PROXY header named (smtp::Session::SetProxiedClient), not the socket's.
  core::Endpoint client;
  core::Endpoint local;
  // The balancer's address (the socket's peer) when the client came through a PROXY header that
  // named it; nullopt for a direct connection and for a header that keeps the socket's addresses
  // (v2 LOCAL, v1 UNKNOWN: the balancer's own health checks).
  std::optional<core::Endpoint> proxied_by;
  // The listener this connection came in on; points into the session's Snapshot.
  const core::ListenerConfig* listener = nullptr;
  // True once TLS is up (after STARTTLS, or from the start on an implicit listener), with what is
  // known about it in `tls_facts`. smtp::Session::OnTlsEstablished sets both, and policy decides
  // on `tls`; the Received header's TLS comment and the envelope's `tls` object need `tls_facts`.
  bool tls = false;
  std::optional<core::TlsFacts> tls_facts;
  std::string auth_identity;  // empty until AUTH succeeds
};

// True if EHLO should advertise STARTTLS and STARTTLS may be used (RFC 3207): the listener is a
// STARTTLS listener, TLS is not up yet, and the client is not in the listener's no_tls_hosts
// (hosts known to fail at TLS, which then keep talking plaintext). False without a listener.
bool OfferStartTls(const core::Snapshot& snapshot, const ConnectionFacts& facts);

// True if the listener requires TLS (tls_required) and this connection has none yet, so every
// command but NOOP, EHLO, STARTTLS and QUIT gets "530 5.7.0 Must issue a STARTTLS command first"
// (RFC 3207 section 4). There is no exemption: the loader refuses no_tls_hosts on a tls_required
// listener.
bool TlsRequiredViolated(const core::Snapshot& snapshot, const ConnectionFacts& facts);

enum class RecipientVerdict : uint8_t {
  kAccept,       // postmaster, a (valid) local recipient, or relaying allowed: 250
  kUnknownUser,  // local domain whose recipients list lacks the user: 550 5.1.1
  kRelayDenied,  // 554 5.7.1
};

// The rule that decided a RCPT (docs/policy.md), in the order they are tried.
enum class RecipientRule : uint8_t {
  kPostmaster,     // accept: postmaster, bare or at our hostname or a local domain
  kLocalDomain,    // accept: a local domain (and its recipients list, if any, has the user)
  kUnknownUser,    // reject 550: a local domain whose recipients list lacks the user
  kRelayNetwork,   // relay: the client is in `detail`, one of policy.relay_networks
  kAuthenticated,  // relay: the client authenticated as `detail`
  kClientCert,     // relay: verified client certificate `detail` is in policy.relay_client_certs
  kSenderRouting,  // reject 554: %, ! or @ in the local part of a local domain, and no relay right
  kRelayDenied,    // reject 554: none of the above
};

// A RCPT decision and why. `detail` borrows from the Snapshot or the ConnectionFacts the decision
// was made from (the network's text, the AUTH identity, the fingerprint); "" for other rules.
struct RecipientDecision {
  RecipientVerdict verdict = RecipientVerdict::kRelayDenied;
  RecipientRule rule = RecipientRule::kRelayDenied;
  std::string_view detail;
};

// True if `domain` (any case, no trailing dot handling beyond one final '.') is a local domain.
bool IsLocalDomain(const core::Snapshot& snapshot, std::string_view domain);

// True if the client may relay: its address is in policy.relay_networks, it authenticated, or it
// presented a verified client certificate listed in policy.relay_client_certs.
bool RelayAllowed(const core::Snapshot& snapshot, const ConnectionFacts& facts);

// Decides one RCPT TO. `local_part` and `domain` come from the parsed path; `domain` is empty for
// the bare "<postmaster>" form. First match wins (docs/policy.md):
//   1. postmaster (case-insensitive, RFC 5321 section 4.5.1), bare or at the hostname or at a
//      local domain: accept;
//   2. a local domain: accept, unless policy.recipients lists users of that domain and not this
//      one (unknown user). A local part holding '%', '!' or '@' (sender-specified routing) skips
//      this rule: it is relaying, allowed only by rules 3-5 (else kSenderRouting);
//   3. client address in policy.relay_networks: relay;
//   4. authenticated (facts.auth_identity non-empty): relay;
//   5. a verified client certificate listed in policy.relay_client_certs (SHA-256): relay;
//   6. otherwise relay denied.
// Allocates nothing.
RecipientDecision DecideRecipient(const core::Snapshot& snapshot, const ConnectionFacts& facts,
                                  std::string_view local_part, std::string_view domain);

// DecideRecipient(...).verdict.
RecipientVerdict CheckRecipient(const core::Snapshot& snapshot, const ConnectionFacts& facts,
                                std::string_view local_part, std::string_view domain);

// For the log: "accept" (rules 1-2), "relay" (3-5) or "reject".
std::string_view DecisionName(const RecipientDecision& decision);

// For the log: the reason as one token without blanks, e.g. "local-domain", "postmaster",
// "unknown-user", "relay_networks:10.0.0.0/8", "auth:alice", "client_cert:<64 hex digits>",
// "relay-denied:sender-routing", "relay-denied". Octets of `detail` outside printable ASCII, blanks
// and '\\' are written as \xNN so the line stays one line of key=value fields.
std::string DecisionReason(const RecipientDecision& decision);

// Appends `text` to `out` escaped as DecisionReason does (for addresses in log lines).
void AppendLogSafe(std::string& out, std::string_view text);

}  // namespace ringmx::policy

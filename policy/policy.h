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
  core::Endpoint client;
  core::Endpoint local;
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

// True if the listener requires TLS (tls_required) and this connection has none yet, so commands
// other than EHLO, HELO, STARTTLS, NOOP, RSET and QUIT get "530 5.7.0 Must issue a STARTTLS
// command first" (RFC 3207 section 4). A client in no_tls_hosts is never offered STARTTLS, so the
// requirement does not apply to it either: listing a host there is the operator's exemption.
bool TlsRequiredViolated(const core::Snapshot& snapshot, const ConnectionFacts& facts);

enum class RecipientVerdict {
  kAccept,       // local domain, postmaster, or relaying allowed
  kRelayDenied,  // 554 5.7.1
};

// True if `domain` (any case, no trailing dot handling beyond one final '.') is a local domain.
bool IsLocalDomain(const core::Snapshot& snapshot, std::string_view domain);

// True if the client may relay: its address is in policy.relay_networks, or it authenticated.
bool RelayAllowed(const core::Snapshot& snapshot, const ConnectionFacts& facts);

// Decides one RCPT TO. `local_part` and `domain` come from the parsed path; `domain` is empty for
// the bare "<postmaster>" form. Postmaster (case-insensitive, RFC 5321 section 4.5.1) is accepted
// bare or at the server's hostname; any address in a local domain is accepted; anything else only
// when RelayAllowed().
RecipientVerdict CheckRecipient(const core::Snapshot& snapshot, const ConnectionFacts& facts,
                                std::string_view local_part, std::string_view domain);

}  // namespace ringmx::policy

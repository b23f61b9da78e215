#include "policy/policy.h"

#include "core/strings.h"

namespace ringmx::policy {
namespace {

constexpr char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

std::string_view StripFinalDot(std::string_view domain) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  return domain;
}

// Sender-specified routing in a local part ("user%other@local", "user!other@local",
// "\"user@other\"@local"): a downstream agent that honours it would relay for anyone. Refused
// unless the client may relay anyway, as Postfix does with allow_untrusted_routing = no.
bool HasRoutingCharacters(std::string_view local_part) {
  return local_part.find_first_of("%!@") != std::string_view::npos;
}

bool InNoTlsHosts(const core::ListenerConfig& listener, const core::IpAddress& client) {
  for (const core::Cidr& network : listener.no_tls_hosts) {
    if (network.Contains(client)) return true;
  }
  return false;
}

}  // namespace

bool IsLocalDomain(const core::Snapshot& snapshot, std::string_view domain) {
  domain = StripFinalDot(domain);
  if (domain.empty() || domain.size() > 255) return false;
  char lower[255];
  for (size_t i = 0; i < domain.size(); ++i) lower[i] = ToLower(domain[i]);
  return snapshot.local_domains.contains(absl::string_view(lower, domain.size()));
}

bool RelayAllowed(const core::Snapshot& snapshot, const ConnectionFacts& facts) {
  if (!facts.auth_identity.empty()) return true;
  for (const core::Cidr& network : snapshot.config.policy.relay_networks) {
    if (network.Contains(facts.client.address)) return true;
  }
  return false;
}

// The Snapshot is not consulted: facts.listener already points into it. It stays in the signature
// so that every decision here reads the same inputs.
bool OfferStartTls(const core::Snapshot& /*snapshot*/, const ConnectionFacts& facts) {
  const core::ListenerConfig* listener = facts.listener;
  return listener != nullptr && listener->tls == core::TlsMode::kStartTls && !facts.tls &&
         !InNoTlsHosts(*listener, facts.client.address);
}

bool TlsRequiredViolated(const core::Snapshot& /*snapshot*/, const ConnectionFacts& facts) {
  const core::ListenerConfig* listener = facts.listener;
  return listener != nullptr && listener->tls_required && !facts.tls &&
         !InNoTlsHosts(*listener, facts.client.address);
}

RecipientVerdict CheckRecipient(const core::Snapshot& snapshot, const ConnectionFacts& facts,
                                std::string_view local_part, std::string_view domain) {
  // RFC 5321 section 4.5.1: postmaster must be accepted, bare or at our own name.
  if (EqualsIgnoreCase(local_part, "postmaster") &&
      (domain.empty() ||
       EqualsIgnoreCase(StripFinalDot(domain), StripFinalDot(snapshot.config.hostname)))) {
    return RecipientVerdict::kAccept;
  }
  if (RelayAllowed(snapshot, facts)) return RecipientVerdict::kAccept;
  if (IsLocalDomain(snapshot, domain) && !HasRoutingCharacters(local_part)) {
    return RecipientVerdict::kAccept;
  }
  return RecipientVerdict::kRelayDenied;
}

}  // namespace ringmx::policy

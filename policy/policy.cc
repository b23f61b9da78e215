#include "policy/policy.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"

#include "core/strings.h"

namespace ringmx::policy {
namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(core::Av(a), core::Av(b));
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

bool IsPostmaster(const core::Snapshot& snapshot, std::string_view local_part,
                  std::string_view domain) {
  if (!EqualsIgnoreCase(local_part, "postmaster")) return false;
  return domain.empty() ||
         EqualsIgnoreCase(StripFinalDot(domain), StripFinalDot(snapshot.config.hostname)) ||
         IsLocalDomain(snapshot, domain);
}

// Rules 3-5 of DecideRecipient: a relay decision, or nullopt.
std::optional<RecipientDecision> RelayRight(const core::Snapshot& snapshot,
                                            const ConnectionFacts& facts) {
  const std::vector<core::Cidr>& networks = snapshot.config.policy.relay_networks;
  for (size_t i = 0; i < networks.size(); ++i) {
    if (!networks[i].Contains(facts.client.address)) continue;
    // Snapshot::Build keeps the names in step; a hand-built Snapshot may lack them.
    const std::string_view name = i < snapshot.relay_network_names.size()
                                      ? std::string_view(snapshot.relay_network_names[i])
                                      : std::string_view("?");
    return RecipientDecision{RecipientVerdict::kAccept, RecipientRule::kRelayNetwork, name};
  }
  if (!facts.auth_identity.empty()) {
    return RecipientDecision{RecipientVerdict::kAccept, RecipientRule::kAuthenticated,
                             facts.auth_identity};
  }
  if (facts.tls && facts.tls_facts.has_value() &&
      facts.tls_facts->client_cert.result == core::ClientCertResult::kVerified) {
    const std::string& fingerprint = facts.tls_facts->client_cert.sha256_fingerprint;
    if (!fingerprint.empty() && snapshot.relay_client_certs.contains(fingerprint)) {
      return RecipientDecision{RecipientVerdict::kAccept, RecipientRule::kClientCert, fingerprint};
    }
  }
  return std::nullopt;
}

}  // namespace

bool IsLocalDomain(const core::Snapshot& snapshot, std::string_view domain) {
  domain = StripFinalDot(domain);
  if (domain.empty() || domain.size() > 255) return false;
  char lower[255];
  return snapshot.local_domains.contains(core::Av(core::AsciiLowerInto(domain, lower)));
}

bool RelayAllowed(const core::Snapshot& snapshot, const ConnectionFacts& facts) {
  return RelayRight(snapshot, facts).has_value();
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
  return listener != nullptr && listener->tls_required && !facts.tls;
}

RecipientDecision DecideRecipient(const core::Snapshot& snapshot, const ConnectionFacts& facts,
                                  std::string_view local_part, std::string_view domain) {
  // 1. RFC 5321 section 4.5.1: postmaster must be accepted, bare or at any domain we serve.
  if (IsPostmaster(snapshot, local_part, domain)) {
    return {RecipientVerdict::kAccept, RecipientRule::kPostmaster, {}};
  }
  // 2. Local domains, unless the local part asks us to route onwards.
  const bool local = IsLocalDomain(snapshot, domain);
  const bool routing = local && HasRoutingCharacters(local_part);
  if (local && !routing) {
    if (snapshot.recipients != nullptr &&
        snapshot.recipients->Find(local_part, domain) == core::RecipientTable::Lookup::kUnknown) {
      return {RecipientVerdict::kUnknownUser, RecipientRule::kUnknownUser, {}};
    }
    return {RecipientVerdict::kAccept, RecipientRule::kLocalDomain, {}};
  }
  // 3-5. Relay rights.
  if (std::optional<RecipientDecision> relay = RelayRight(snapshot, facts)) return *relay;
  // 6.
  return {RecipientVerdict::kRelayDenied,
          routing ? RecipientRule::kSenderRouting : RecipientRule::kRelayDenied,
          {}};
}

RecipientVerdict CheckRecipient(const core::Snapshot& snapshot, const ConnectionFacts& facts,
                                std::string_view local_part, std::string_view domain) {
  return DecideRecipient(snapshot, facts, local_part, domain).verdict;
}

std::string_view DecisionName(const RecipientDecision& decision) {
  switch (decision.rule) {
    case RecipientRule::kPostmaster:
    case RecipientRule::kLocalDomain:
      return "accept";
    case RecipientRule::kRelayNetwork:
    case RecipientRule::kAuthenticated:
    case RecipientRule::kClientCert:
      return "relay";
    case RecipientRule::kUnknownUser:
    case RecipientRule::kSenderRouting:
    case RecipientRule::kRelayDenied:
      break;
  }
  return "reject";
}

std::string DecisionReason(const RecipientDecision& decision) {
  std::string_view prefix;
  switch (decision.rule) {
    case RecipientRule::kPostmaster:
      return "postmaster";
    case RecipientRule::kLocalDomain:
      return "local-domain";
    case RecipientRule::kUnknownUser:
      return "unknown-user";
    case RecipientRule::kSenderRouting:
      return "relay-denied:sender-routing";
    case RecipientRule::kRelayDenied:
      return "relay-denied";
    case RecipientRule::kRelayNetwork:
      prefix = "relay_networks:";
      break;
    case RecipientRule::kAuthenticated:
      prefix = "auth:";
      break;
    case RecipientRule::kClientCert:
      prefix = "client_cert:";
      break;
  }
  std::string out(prefix);
  AppendLogSafe(out, decision.detail);
  return out;
}

void AppendLogSafe(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u > 0x20 && u < 0x7F && c != '\\') {
      out.push_back(c);
    } else {
      out.append("\\x");
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
}

}  // namespace ringmx::policy

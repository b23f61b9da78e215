#include "net/preamble.h"

#include "absl/strings/str_cat.h"

namespace ringmx::net {

smtp::ProxyVersions ProxyVersionsOf(core::ProxyProtocol protocol) {
  switch (protocol) {
    case core::ProxyProtocol::kV1:
      return smtp::ProxyVersions::kV1;
    case core::ProxyProtocol::kV2:
      return smtp::ProxyVersions::kV2;
    case core::ProxyProtocol::kAny:
    case core::ProxyProtocol::kNone:
      break;
  }
  return smtp::ProxyVersions::kAny;
}

ProxyPreamble::ProxyPreamble(const core::ListenerConfig& listener, const core::Endpoint& peer,
                             absl::Duration timeout, absl::Time now)
    : parser_(ProxyVersionsOf(listener.proxy_protocol)),
      peer_(peer),
      timeout_(timeout),
      deadline_(now + timeout) {
  // The socket's peer is the balancer: only the listener's proxy_trusted may speak for a client.
  for (const core::Cidr& cidr : listener.proxy_trusted) {
    if (cidr.Contains(peer.address)) {
      trusted_ = true;
      break;
    }
  }
}

std::string ProxyPreamble::TimeoutDetail() const {
  return absl::StrCat("no header within ", absl::ToInt64Seconds(timeout_), " s");
}

ProxyPreamble::Outcome ProxyPreamble::Feed(std::string_view bytes) {
  Outcome outcome;
  const smtp::ProxyFeedResult result = parser_.Feed(bytes);
  switch (result.state) {
    case smtp::ProxyParseState::kNeedMore:
      return outcome;
    case smtp::ProxyParseState::kError:
      outcome.state = Outcome::State::kFailed;
      outcome.reason = "malformed";
      outcome.detail = std::string(smtp::ProxyErrorText(parser_.error()));
      return outcome;
    case smtp::ProxyParseState::kDone:
      break;
  }
  outcome.state = Outcome::State::kDone;
  outcome.balancer = peer_;
  const smtp::ProxyHeader& header = parser_.header();
  if (header.command == smtp::ProxyCommand::kProxy && header.source.has_value() &&
      header.destination.has_value()) {
    outcome.client = header.source;
    outcome.local = header.destination;
  }
  outcome.leftover = bytes.substr(result.consumed);
  return outcome;
}

}  // namespace ringmx::net

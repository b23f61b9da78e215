#include "core/snapshot.h"

#include <utility>

#include "absl/strings/ascii.h"

namespace ringmx::core {

std::atomic<uint64_t> Snapshot::live_count_{0};

std::shared_ptr<const Snapshot> Snapshot::Build(Config config, uint64_t generation,
                                                std::shared_ptr<const RecipientTable> recipients,
                                                std::shared_ptr<const PasswdTable> passwd) {
  auto snapshot = std::make_shared<Snapshot>();
  for (const std::string& domain : config.policy.local_domains) {
    snapshot->local_domains.insert(absl::AsciiStrToLower(domain));
  }
  for (const Cidr& network : config.policy.relay_networks) {
    snapshot->relay_network_names.push_back(network.ToString());
  }
  for (const std::string& fingerprint : config.policy.relay_client_certs) {
    snapshot->relay_client_certs.insert(absl::AsciiStrToLower(fingerprint));
  }
  snapshot->routes = RouteTable(config.routes);
  snapshot->recipients = std::move(recipients);
  snapshot->passwd = std::move(passwd);
  snapshot->config = std::move(config);
  snapshot->generation = generation;
  return snapshot;
}

}  // namespace ringmx::core

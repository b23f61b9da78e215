// What a shard hands to each new connection: the config Snapshot and the TLS contexts built from
// it (server side for the listeners, client side for outbound delivery), published together so a
// reload swaps certificates, CA bundles and policy atomically (DESIGN.md section 2). Built
// completely on the control thread; a failed build changes nothing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "core/config.h"
#include "core/recipient_table.h"
#include "core/snapshot.h"
#include "tls/client_context.h"
#include "tls/tls_context.h"

namespace ringmx::net {

// Immutable once built; safe to share.
struct Runtime {
  std::shared_ptr<const core::Snapshot> snapshot;
  std::shared_ptr<const tls::TlsContext> tls;  // nullptr when no listener uses TLS
  // Outbound delivery (STARTTLS to next hops): nullptr when the config has no [[route]].
  std::shared_ptr<const tls::ClientTlsContext> client_tls;
};

// Loads the valid local recipients file of `config` (policy.recipients), or gives nullptr when
// the key is not set. Errors start with "policy.recipients: " and name the file and its line.
// Appends a warning to `warnings` (unless null) for each domain of the file that is not a local
// domain. `ringmx check` and BuildRuntime both call it.
absl::StatusOr<std::shared_ptr<const core::RecipientTable>> LoadRecipients(
    const core::Config& config, std::vector<std::string>* warnings);

// Loads every certificate, CA bundle (route tls_ca) and the recipients file the config names and
// builds the Snapshot. Warnings (an expired certificate) are logged. Errors name the config key.
absl::StatusOr<Runtime> BuildRuntime(core::Config config, uint64_t generation);

}  // namespace ringmx::net

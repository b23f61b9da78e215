// Telling systemd how the service is doing (sd_notify(3), the Type=notify protocol of
// dist/ringmx.service): READY=1 once every shard listens, RELOADING=1 (with MONOTONIC_USEC) and
// READY=1 around a reload, STOPPING=1 when draining begins, and a STATUS= line with each. When the
// process was not started by systemd (NOTIFY_SOCKET unset) nothing is sent.
#pragma once

#include <stdint.h>

#include <string>
#include <string_view>

namespace ringmx::net {

enum class ServiceState {
  kReady,      // READY=1: started, or a reload finished (whether it applied or not)
  kReloading,  // RELOADING=1 with MONOTONIC_USEC: a reload begins
  kStopping,   // STOPPING=1: draining for shutdown
  kStatus,     // only the STATUS= line
};

// The datagram for `state`: its assignment line(s), then "STATUS=<status>" unless `status` is
// empty. `monotonic_usec` (CLOCK_MONOTONIC in microseconds) goes into MONOTONIC_USEC= for
// kReloading only. A status is one line: line breaks and other control characters become spaces,
// and it is cut at 200 bytes. Pure.
std::string ServiceNotifyMessage(ServiceState state, std::string_view status,
                                 uint64_t monotonic_usec = 0);

// Sends ServiceNotifyMessage(state, status, now) to systemd, reading CLOCK_MONOTONIC for
// kReloading. A no-op without NOTIFY_SOCKET; a failure to send is logged once and otherwise
// ignored (the service must not stop over it). Thread-compatible (called on the main thread).
void NotifyService(ServiceState state, std::string_view status);

}  // namespace ringmx::net

#include "net/systemd_notify.h"

#include <time.h>

#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/strings.h"

#include <systemd/sd-daemon.h>

namespace ringmx::net {

namespace {
constexpr size_t kMaxStatus = 200;
}  // namespace

std::string ServiceNotifyMessage(ServiceState state, std::string_view status,
                                 uint64_t monotonic_usec) {
  std::string out;
  switch (state) {
    case ServiceState::kReady:
      out = "READY=1\n";
      break;
    case ServiceState::kReloading:
      out = absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", monotonic_usec, "\n");
      break;
    case ServiceState::kStopping:
      out = "STOPPING=1\n";
      break;
    case ServiceState::kStatus:
      break;
  }
  if (!status.empty()) {
    out += "STATUS=";
    for (char c : status.substr(0, kMaxStatus)) {
      const unsigned char u = static_cast<unsigned char>(c);
      out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
    }
    out.push_back('\n');
  }
  return out;
}

void NotifyService(ServiceState state, std::string_view status) {
  uint64_t monotonic_usec = 0;
  if (state == ServiceState::kReloading) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    monotonic_usec =
        static_cast<uint64_t>(now.tv_sec) * 1'000'000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
  }
  const std::string message = ServiceNotifyMessage(state, status, monotonic_usec);
  // 0: NOTIFY_SOCKET unset (not under systemd); > 0: sent.
  const int rc = sd_notify(/*unset_environment=*/0, message.c_str());
  static bool logged = false;
  if (rc < 0 && !logged) {
    logged = true;
    core::LogWarning(absl::StrCat("sd_notify failed (errno ", -rc,
                                  "); systemd is not told how "
                                  "the service is doing"));
  }
}

}  // namespace ringmx::net

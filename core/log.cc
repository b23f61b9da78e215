#include "core/log.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

// Set once by main() before threads start, read-only afterwards.
int g_log_fd = 2;

std::string_view SeverityName(Severity severity) {
  switch (severity) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void SetLogFd(int fd) { g_log_fd = fd; }

void Log(Severity severity, std::string_view message) {
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()), " ",
                   Av(SeverityName(severity)), " ", Av(message), "\n");
  // One write per line; a short write to a log is not worth retrying on the hot path.
  ssize_t unused = write(g_log_fd, line.data(), line.size());
  (void)unused;
}

}  // namespace ringmx::core

#include "core/status.h"

#include <errno.h>
#include <string.h>

#include "absl/strings/str_cat.h"

#include "core/strings.h"

namespace ringmx::core {

absl::Status ErrnoStatus(int err, std::string_view operation) {
  if (err == 0) return absl::OkStatus();
  char buf[128];
  // GNU strerror_r returns a pointer that may or may not be `buf`.
  const char* text = strerror_r(err, buf, sizeof(buf));
  std::string message = absl::StrCat(Av(operation), ": ", text);
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
    case EADDRINUSE:
      return absl::AlreadyExistsError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EINVAL:
      return absl::InvalidArgumentError(message);
    case EAGAIN:
    case EINTR:
    case ECONNRESET:
    case EPIPE:
      return absl::UnavailableError(message);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(message);
    case ECANCELED:
      return absl::CancelledError(message);
    case ENOSYS:
    case EOPNOTSUPP:
      return absl::UnimplementedError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace ringmx::core

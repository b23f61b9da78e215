#include "tls/internal/config_files.h"

#include <errno.h>
#include <stdio.h>

#include "absl/strings/str_cat.h"

#include "core/status.h"
#include "core/strings.h"
#include "tls/internal/state.h"

namespace ringmx::tls::internal {

absl::Status ConfigError(std::string_view key, std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(core::Av(key), ": ", core::Av(path), ": ", core::Av(what)));
}

std::string WithErrors() {
  std::string errors = DrainErrors();
  return errors.empty() ? "" : absl::StrCat(": ", errors);
}

absl::StatusOr<BIO*> OpenFile(std::string_view key, const std::string& path) {
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) {
    const int err = errno;
    return absl::InvalidArgumentError(
        core::ErrnoStatus(err, absl::StrCat(core::Av(key), ": ", path)).message());
  }
  BIO* bio = BIO_new_fp(f, BIO_CLOSE);
  if (bio == nullptr) {
    fclose(f);
    return ConfigError(key, path, "cannot read" + WithErrors());
  }
  return bio;
}

}  // namespace ringmx::tls::internal

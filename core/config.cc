// PLACEHOLDER: being written (core helper). Replaced before the foundation issue closes.
#include "core/config.h"

namespace ringmx::core {
absl::StatusOr<Config> ParseConfig(std::string_view, std::string_view, std::string_view) {
  return absl::UnimplementedError("config loader not written yet");
}
absl::StatusOr<Config> LoadConfigFile(const std::string&) {
  return absl::UnimplementedError("config loader not written yet");
}
}  // namespace ringmx::core

// Shared by the core parser tests: parse a config (or a table) that must fail, and get the one
// error message it gives.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

#include "core/config.h"
#include "core/strings.h"

namespace ringmx::core::test_util {

// The config text as `ringmx check` would read it from /etc/ringmx/ringmx.toml.
inline absl::StatusOr<Config> Parse(std::string_view text) {
  return ParseConfig(text, "ringmx.toml", "/etc/ringmx");
}

// The message of `result`, which must be a kInvalidArgument error; a test failure and "" if it is
// not an error (`input` is shown).
template <typename T>
std::string ErrorMessage(const absl::StatusOr<T>& result, std::string_view input) {
  if (result.ok()) {
    ADD_FAILURE() << "parsed without error:\n" << input;
    return "";
  }
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  return std::string(Sv(result.status().message()));
}

// The error a config text gives.
inline std::string ErrorOf(std::string_view text) { return ErrorMessage(Parse(text), text); }

}  // namespace ringmx::core::test_util

// Fuzz target: the request line reader of the `[metrics]` endpoint (core/metrics.h), the first
// bytes any client on that address sends. Never a crash, and:
//  - only the first line matters: bytes after the first '\n' never change the answer;
//  - kMetrics and kNotFound only for a GET, kMetrics only for a target that is /metrics;
//  - a response for every answer is well formed (status line, Content-Length that matches).
//
// Input: the request head as a client sends it.
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "core/check.h"
#include "core/metrics.h"
#include "core/strings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ringmx::core::MetricsRequest;
  const std::string_view head(reinterpret_cast<const char*>(data), size);
  const MetricsRequest answer = ringmx::core::ParseMetricsRequest(head);
  const size_t eol = head.find('\n');
  if (eol != std::string_view::npos) {
    const std::string other =
        absl::StrCat(ringmx::core::Av(head.substr(0, eol + 1)), "X /y HTTP/1.1\r\n");
    RINGMX_CHECK(ringmx::core::ParseMetricsRequest(other) == answer);
  }
  if (answer == MetricsRequest::kMetrics || answer == MetricsRequest::kNotFound) {
    RINGMX_CHECK(absl::StartsWith(ringmx::core::Av(head), "GET /"));
  }
  if (answer == MetricsRequest::kMetrics) {
    RINGMX_CHECK(absl::StartsWith(ringmx::core::Av(head), "GET /metrics ") ||
                 absl::StartsWith(ringmx::core::Av(head), "GET /metrics?"));
  }
  const int code = answer == MetricsRequest::kMetrics            ? 200
                   : answer == MetricsRequest::kNotFound         ? 404
                   : answer == MetricsRequest::kMethodNotAllowed ? 405
                                                                 : 400;
  const std::string body(head.substr(0, 64));
  const std::string response = ringmx::core::HttpResponse(code, body);
  RINGMX_CHECK(absl::StartsWith(response, absl::StrCat("HTTP/1.1 ", code, " ")));
  RINGMX_CHECK(absl::StrContains(response, absl::StrCat("Content-Length: ", body.size(), "\r\n")));
  RINGMX_CHECK(absl::EndsWith(response, absl::StrCat("\r\n\r\n", body)));
  return 0;
}

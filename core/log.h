// Logging: one line per event, written with a single write(2) so lines from different shards never
// interleave. The sink is chosen once by main() before any shard starts.
#pragma once

#include <string_view>

namespace ringmx::core {

enum class Severity { kInfo, kWarning, kError };

// Directs log lines to `fd` (default 2). Call before starting threads; not thread-safe.
void SetLogFd(int fd);

// Writes "<RFC 3339 UTC time> <level> <message>\n". Thread-safe (one write per line).
void Log(Severity severity, std::string_view message);

inline void LogInfo(std::string_view message) { Log(Severity::kInfo, message); }
inline void LogWarning(std::string_view message) { Log(Severity::kWarning, message); }
inline void LogError(std::string_view message) { Log(Severity::kError, message); }

}  // namespace ringmx::core

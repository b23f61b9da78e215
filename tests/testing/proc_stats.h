// What tests and test tools read about a process from /proc: its resident memory and its CPU
// time. Test-only.
#pragma once

#include <stdint.h>
#include <sys/types.h>

namespace ringmx::testing {

// VmRSS of `pid` in KiB (from /proc/<pid>/status), or -1 if it cannot be read.
int64_t RssKib(pid_t pid);

// CPU seconds of `pid` so far, every thread included (utime and stime of /proc/<pid>/stat).
// Both are -1 if the file cannot be read.
struct CpuTimes {
  double user = -1;
  double system = -1;
  double total() const { return user + system; }
};
CpuTimes ProcessCpu(pid_t pid);

}  // namespace ringmx::testing

// Command-line options of ringmx-bench and their parsing. Bench-only.
#pragma once

#include <stdint.h>

#include <string>
#include <vector>

namespace ringmx::bench {

enum class TlsMode { kNone, kStartTls, kImplicit };

struct Options {
  std::string target;  // IP:PORT or [IPv6]:PORT
  int threads = 1;
  int concurrency = 1;
  int messages_per_connection = 1;
  int rcpts = 1;
  int64_t size = 1024;
  std::string message_file;
  bool pipelining = true;
  int64_t total_messages = 0;  // 0: unbounded (then duration bounds the run)
  double duration_s = 0;       // 0: not given (then a hard cap of kDefaultCapS applies)
  double rate = 0;             // sessions per second; 0: closed loop
  double timeout_s = 30;       // per reply
  TlsMode tls = TlsMode::kNone;
  std::string sni;
  std::string cert;
  std::string key;
  std::string from = "bench@bench.test";
  std::string to = "example.test";
  std::string helo = "bench.test";
  // 0: none; 1 or 2: each connection opens with a PROXY protocol header of that version naming
  // client 198.51.100.N (N from 1 to 254 by connection) and the target (bench/load/proxy_header.h).
  int proxy = 0;
  bool json = false;
  int server_pid = 0;
  // Appends the queue id of every message answered 250 after its data, one per line, written as
  // each reply arrives so the file survives the bench (or the server) being killed.
  std::string accepted_ids;
};

// Longest run allowed (--duration) and the cap when only --total-messages is given.
inline constexpr double kMaxDurationS = 3600;
inline constexpr double kDefaultCapS = 600;
// After the run stops taking new messages, in-flight sessions get this long to finish.
inline constexpr double kDrainGraceS = 10;

// Parses argv (argv[0] skipped). On error returns false and sets `error`; `help` is set for -h.
bool ParseOptions(const std::vector<std::string>& args, Options& opt, std::string& error,
                  bool& help);

const char* UsageText();
const char* TlsModeName(TlsMode mode);

}  // namespace ringmx::bench

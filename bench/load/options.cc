#include "bench/load/options.h"

#include <errno.h>
#include <stdlib.h>

#include <cmath>
#include <string_view>

namespace ringmx::bench {
namespace {

bool ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  long long v = strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
  out = v;
  return true;
}

bool ParseDouble(const std::string& s, double lo, double hi, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double v = strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v) || v < lo || v > hi) return false;
  out = v;
  return true;
}

}  // namespace

const char* TlsModeName(TlsMode mode) {
  switch (mode) {
    case TlsMode::kNone:
      return "none";
    case TlsMode::kStartTls:
      return "starttls";
    case TlsMode::kImplicit:
      return "implicit";
  }
  return "none";
}

const char* UsageText() {
  return "usage: ringmx-bench --target IP:PORT (--total-messages N | --duration S) [options]\n"
         "  --threads N                  worker threads, one io_uring each (1)\n"
         "  --concurrency C              connections kept open (closed loop), or the cap on open\n"
         "                               connections with --rate (1)\n"
         "  --messages-per-connection M  transactions per session (1)\n"
         "  --rcpts R                    recipients per message (1)\n"
         "  --size BYTES                 generated message size (1024)\n"
         "  --message-file F             send this message instead (LF or CRLF lines)\n"
         "  --pipelining on|off          RFC 2920 command groups (on)\n"
         "  --total-messages N           exactly N transactions are attempted\n"
         "  --duration S                 stop starting transactions after S seconds (max 3600;\n"
         "                               without it the run stops at 600 s)\n"
         "  --rate R                     open loop: start R sessions per second\n"
         "  --timeout S                  per reply (30)\n"
         "  --tls none|starttls|implicit (none)\n"
         "  --sni NAME  --cert PEM --key PEM\n"
         "  --from ADDR                  envelope sender (bench@bench.test)\n"
         "  --to DOMAIN                  recipient domain (example.test)\n"
         "  --helo NAME                  (bench.test)\n"
         "  --proxy v1|v2                open each connection with a PROXY header (a balancer's)\n"
         "  --server-pid PID             report server CPU per 1000 messages and peak RSS\n"
         "  --accepted-ids FILE          append the queue id of each message answered 250\n"
         "                               (\"queued as <id>\"), one a line, as the replies arrive\n"
         "  --json                       one JSON line on stdout\n";
}

bool ParseOptions(const std::vector<std::string>& args, Options& opt, std::string& error,
                  bool& help) {
  help = false;
  bool have_total = false;
  bool have_duration = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    bool has_value = false;
    if (name == "-h" || name == "--help") {
      help = true;
      return false;
    }
    if (name.rfind("--", 0) != 0) {
      error = "unexpected argument: " + name;
      return false;
    }
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto need = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= args.size()) {
        error = name + " needs a value";
        return false;
      }
      value = args[++i];
      return true;
    };
    auto bad = [&]() {
      error = "bad value for " + name + ": '" + value + "'";
      return false;
    };
    int64_t n = 0;
    if (name == "--json") {
      opt.json = true;
      continue;
    }
    if (!need()) return false;
    if (name == "--target") {
      opt.target = value;
    } else if (name == "--threads") {
      if (!ParseInt(value, 1, 256, n)) return bad();
      opt.threads = static_cast<int>(n);
    } else if (name == "--concurrency") {
      if (!ParseInt(value, 1, 1000000, n)) return bad();
      opt.concurrency = static_cast<int>(n);
    } else if (name == "--messages-per-connection") {
      if (!ParseInt(value, 1, 1000000, n)) return bad();
      opt.messages_per_connection = static_cast<int>(n);
    } else if (name == "--rcpts") {
      if (!ParseInt(value, 1, 10000, n)) return bad();
      opt.rcpts = static_cast<int>(n);
    } else if (name == "--size") {
      if (!ParseInt(value, 0, int64_t{1} << 30, n)) return bad();
      opt.size = n;
    } else if (name == "--message-file") {
      opt.message_file = value;
    } else if (name == "--pipelining") {
      if (value == "on") {
        opt.pipelining = true;
      } else if (value == "off") {
        opt.pipelining = false;
      } else {
        return bad();
      }
    } else if (name == "--total-messages") {
      if (!ParseInt(value, 1, int64_t{1} << 40, n)) return bad();
      opt.total_messages = n;
      have_total = true;
    } else if (name == "--duration") {
      if (!ParseDouble(value, 0.001, kMaxDurationS, opt.duration_s)) return bad();
      have_duration = true;
    } else if (name == "--rate") {
      if (!ParseDouble(value, 0.001, 1e7, opt.rate)) return bad();
    } else if (name == "--timeout") {
      if (!ParseDouble(value, 0.001, 3600, opt.timeout_s)) return bad();
    } else if (name == "--tls") {
      if (value == "none") {
        opt.tls = TlsMode::kNone;
      } else if (value == "starttls") {
        opt.tls = TlsMode::kStartTls;
      } else if (value == "implicit") {
        opt.tls = TlsMode::kImplicit;
      } else {
        return bad();
      }
    } else if (name == "--sni") {
      opt.sni = value;
    } else if (name == "--cert") {
      opt.cert = value;
    } else if (name == "--key") {
      opt.key = value;
    } else if (name == "--from") {
      opt.from = value;
    } else if (name == "--to") {
      opt.to = value;
    } else if (name == "--helo") {
      opt.helo = value;
    } else if (name == "--proxy") {
      if (value == "v1") {
        opt.proxy = 1;
      } else if (value == "v2") {
        opt.proxy = 2;
      } else {
        return bad();
      }
    } else if (name == "--accepted-ids") {
      if (value.empty()) return bad();
      opt.accepted_ids = value;
    } else if (name == "--server-pid") {
      if (!ParseInt(value, 1, 1 << 30, n)) return bad();
      opt.server_pid = static_cast<int>(n);
    } else {
      error = "unknown option: " + name;
      return false;
    }
  }
  if (opt.target.empty()) {
    error = "--target IP:PORT is required";
    return false;
  }
  if (!have_total && !have_duration) {
    error = "at least one of --total-messages and --duration is required";
    return false;
  }
  if (opt.cert.empty() != opt.key.empty()) {
    error = "--cert and --key go together";
    return false;
  }
  if (opt.threads > opt.concurrency) opt.threads = opt.concurrency;
  return true;
}

}  // namespace ringmx::bench

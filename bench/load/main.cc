// ringmx-bench: an SMTP load generator on io_uring. See bench/load/options.cc for the options and
// DESIGN.md section 9. Prints a human report, or one JSON line with --json.
//
// Counting: every transaction attempted holds one message of the budget (--total-messages), so
// messages + messages_failed is exactly what was asked (fewer only when --duration or the time
// cap stopped the run first). "messages" are those answered 250 after the end of data. "errors"
// counts failed transactions by the first reply code that refused them ("552", "554", "421"...)
// or by what went wrong on the connection: "connect", "closed", "reset", "io_error", "timeout",
// "tls", "protocol", "aborted" (still open at the hard stop, --duration + 10 s). A message stored
// although some of its recipients were refused counts in "messages" and under the refusing code.
//
// Latency (JSON in microseconds): connect_to_banner from connect() to the 220 (with --tls implicit
// that includes the handshake); handshake is the TLS handshake alone; data_to_250 from sending the
// end of data to its reply; session from the session's start (its scheduled start with --rate, so
// waiting for a free connection counts: no coordinated omission) to the 221 after QUIT.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench/load/histogram.h"
#include "bench/load/options.h"
#include "bench/load/worker.h"
#include "core/json.h"

namespace ringmx::bench {
namespace {

bool ResolveTarget(const std::string& target, Shared& shared, std::string& error) {
  std::string host;
  std::string port;
  if (!target.empty() && target[0] == '[') {
    size_t close = target.find(']');
    if (close == std::string::npos || close + 1 >= target.size() || target[close + 1] != ':') {
      error = "bad --target: " + target;
      return false;
    }
    host = target.substr(1, close - 1);
    port = target.substr(close + 2);
  } else {
    size_t colon = target.rfind(':');
    if (colon == std::string::npos) {
      error = "--target needs IP:PORT: " + target;
      return false;
    }
    host = target.substr(0, colon);
    port = target.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    error = "bad --target " + target + ": " + gai_strerror(rc);
    return false;
  }
  memcpy(&shared.addr, res->ai_addr, res->ai_addrlen);
  shared.addrlen = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

// The message as it goes on the wire: CRLF lines, dot-stuffed, then ".\r\n".
bool BuildMessage(const Options& opt, std::string& data, std::string& error) {
  std::string msg;
  if (!opt.message_file.empty()) {
    std::ifstream in(opt.message_file, std::ios::binary);
    if (!in) {
      error = "cannot read " + opt.message_file;
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string raw = ss.str();
    size_t pos = 0;
    while (pos < raw.size()) {
      size_t nl = raw.find('\n', pos);
      std::string line = raw.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? raw.size() : nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty() && line[0] == '.') msg.push_back('.');
      msg.append(line).append("\r\n");
    }
  } else {
    msg = "From: <" + opt.from + ">\r\nTo: <user0@" + opt.to +
          ">\r\nSubject: ringmx-bench\r\nMessage-ID: <ringmx-bench@bench.test>\r\n\r\n";
    const size_t size = static_cast<size_t>(opt.size);
    static const char kAlphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t line_no = 0;
    while (msg.size() + 2 < size) {
      // Lines of 76 characters plus CRLF, the last one shorter; never a leading dot.
      size_t n = std::min<size_t>(76, size - msg.size() - 2);
      for (size_t i = 0; i < n; ++i) msg.push_back(kAlphabet[(i + line_no) % 62]);
      msg.append("\r\n");
      ++line_no;
    }
    if (line_no == 0) msg.append("x\r\n");
  }
  data = msg + ".\r\n";
  return true;
}

SSL_CTX* MakeSslContext(const Options& opt, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    error = "SSL_CTX_new failed";
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);        // a load generator, not a verifier
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every session a full handshake
  if (!opt.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, opt.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, opt.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      char buf[256];
      ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
      error = "cannot load --cert/--key: " + std::string(buf);
      SSL_CTX_free(ctx);
      return nullptr;
    }
  }
  return ctx;
}

struct ProcSample {
  bool ok = false;
  double cpu_s = 0;
  int64_t hwm_kb = -1;
};

ProcSample ReadProc(int pid) {
  ProcSample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return s;
  // Fields after the command name, which is in parentheses and may hold spaces.
  size_t close = line.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  std::string tok;
  while (rest >> tok) f.push_back(tok);
  // f[0] is field 3 (state); utime is field 14, stime field 15.
  if (f.size() < 13) return s;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_s = (std::stod(f[11]) + std::stod(f[12])) / ticks;
  s.ok = true;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) s.hwm_kb = std::stoll(line.substr(6));
  }
  return s;
}

std::string Fixed(double v, int digits) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

void LatencyJson(std::string& out, const char* name, const Histogram& h) {
  core::AppendJsonString(out, name);
  out += ":{\"count\":" + std::to_string(h.count());
  const std::pair<const char*, double> qs[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}};
  for (const auto& [key, q] : qs) {
    out += ",\"" + std::string(key) + "\":" + Fixed(static_cast<double>(h.Percentile(q)) / 1e3, 1);
  }
  out += ",\"max\":" + Fixed(static_cast<double>(h.max()) / 1e3, 1) + "}";
}

void LatencyText(std::string& out, const char* name, const Histogram& h) {
  char buf[256];
  if (h.count() == 0) {
    snprintf(buf, sizeof(buf), "  %-18s (none)\n", name);
  } else {
    auto ms = [](uint64_t ns) { return static_cast<double>(ns) / 1e6; };
    snprintf(buf, sizeof(buf),
             "  %-18s n=%-9llu p50 %8.3f  p90 %8.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms\n", name,
             static_cast<unsigned long long>(h.count()), ms(h.Percentile(0.5)),
             ms(h.Percentile(0.9)), ms(h.Percentile(0.99)), ms(h.Percentile(0.999)), ms(h.max()));
  }
  out += buf;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  Options opt;
  std::string error;
  bool help = false;
  if (!ParseOptions(args, opt, error, help)) {
    if (help) {
      fputs(UsageText(), stdout);
      return 0;
    }
    fprintf(stderr, "ringmx-bench: %s\n%s", error.c_str(), UsageText());
    return 2;
  }
  // One descriptor per connection: take the hard limit.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  Shared shared;
  shared.opt = &opt;
  if (!ResolveTarget(opt.target, shared, error) || !BuildMessage(opt, shared.data, error)) {
    fprintf(stderr, "ringmx-bench: %s\n", error.c_str());
    return 2;
  }
  if (opt.tls != TlsMode::kNone) {
    shared.ssl_ctx = MakeSslContext(opt, error);
    if (shared.ssl_ctx == nullptr) {
      fprintf(stderr, "ringmx-bench: %s\n", error.c_str());
      return 2;
    }
  }
  if (!opt.accepted_ids.empty()) {
    shared.accepted_ids_fd =
        open(opt.accepted_ids.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (shared.accepted_ids_fd < 0) {
      fprintf(stderr, "ringmx-bench: --accepted-ids: cannot open %s: %s\n",
              opt.accepted_ids.c_str(), strerror(errno));
      return 2;
    }
  }
  shared.bounded = opt.total_messages > 0;
  shared.budget.store(opt.total_messages);

  const ProcSample server_before = opt.server_pid > 0 ? ReadProc(opt.server_pid) : ProcSample{};
  if (opt.server_pid > 0 && !server_before.ok) {
    fprintf(stderr, "ringmx-bench: cannot read /proc/%d/stat\n", opt.server_pid);
    return 2;
  }

  const double run_s = opt.duration_s > 0 ? opt.duration_s : kDefaultCapS;
  shared.start_ns = NowNs();
  shared.stop_ns = shared.start_ns + static_cast<int64_t>(run_s * 1e9);
  shared.hard_ns = shared.stop_ns + static_cast<int64_t>(kDrainGraceS * 1e9);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < opt.threads; ++i) {
    const int conns = opt.concurrency / opt.threads + (i < opt.concurrency % opt.threads ? 1 : 0);
    workers.push_back(std::make_unique<Worker>(&shared, i, conns, opt.rate / opt.threads));
  }
  std::atomic<int> running{opt.threads};
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&running, worker = w.get()] {
      worker->Run();
      running.fetch_sub(1);
    });
  }
  const bool tty = isatty(2) == 1;
  int64_t last_print = shared.start_ns;
  uint64_t last_ok = 0;
  while (running.load() > 0) {
    usleep(50000);
    const int64_t now = NowNs();
    if (tty && now - last_print >= 1000000000) {
      uint64_t ok = 0, failed = 0, sessions = 0;
      for (auto& w : workers) {
        ok += w->stats().messages_ok.load(std::memory_order_relaxed);
        failed += w->stats().messages_failed.load(std::memory_order_relaxed);
        sessions += w->stats().sessions_ok.load(std::memory_order_relaxed) +
                    w->stats().sessions_failed.load(std::memory_order_relaxed);
      }
      const double dt = static_cast<double>(now - last_print) / 1e9;
      fprintf(stderr, "\r%7.1fs  %10.0f msg/s  ok %llu  failed %llu  sessions %llu   ",
              static_cast<double>(now - shared.start_ns) / 1e9,
              static_cast<double>(ok - last_ok) / dt, static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(failed), static_cast<unsigned long long>(sessions));
      last_print = now;
      last_ok = ok;
    }
  }
  for (auto& t : threads) t.join();
  int64_t end_ns = shared.start_ns;
  for (auto& w : workers) end_ns = std::max(end_ns, w->finished_ns());
  if (tty && end_ns - shared.start_ns >= 1000000000) fputs("\n", stderr);
  const ProcSample server_after = opt.server_pid > 0 ? ReadProc(opt.server_pid) : ProcSample{};

  // Merge.
  uint64_t ok = 0, failed = 0, sessions_ok = 0, sessions_failed = 0, handshakes = 0, bytes = 0;
  std::map<std::string, uint64_t> errors;
  Histogram banner, handshake, data, session;
  std::string fatal;
  for (auto& w : workers) {
    Stats& st = w->stats();
    ok += st.messages_ok.load();
    failed += st.messages_failed.load();
    sessions_ok += st.sessions_ok.load();
    sessions_failed += st.sessions_failed.load();
    handshakes += st.handshakes.load();
    bytes += st.bytes_sent.load();
    for (const auto& [code, n] : st.errors) errors[code] += n;
    banner.Merge(st.banner);
    handshake.Merge(st.handshake);
    data.Merge(st.data);
    session.Merge(st.session);
    if (!w->fatal().empty()) fatal = w->fatal();
  }
  const double elapsed = static_cast<double>(end_ns - shared.start_ns) / 1e9;
  // Our own CPU, to show the generator is not the bottleneck.
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  const double client_cpu =
      static_cast<double>(self.ru_utime.tv_sec + self.ru_stime.tv_sec) +
      static_cast<double>(self.ru_utime.tv_usec + self.ru_stime.tv_usec) / 1e6;
  const double per_s = elapsed > 0 ? 1.0 / elapsed : 0;
  const bool timed_out = end_ns >= shared.hard_ns;

  std::string out;
  if (opt.json) {
    out += "{\"target\":";
    core::AppendJsonString(out, opt.target);
    out += ",\"threads\":" + std::to_string(opt.threads);
    out += ",\"concurrency\":" + std::to_string(opt.concurrency);
    out += ",\"messages_per_connection\":" + std::to_string(opt.messages_per_connection);
    out += ",\"rcpts\":" + std::to_string(opt.rcpts);
    out += ",\"size\":" + std::to_string(shared.data.size() - 3);
    out += std::string(",\"pipelining\":") + (opt.pipelining ? "true" : "false");
    out += std::string(",\"tls\":\"") + TlsModeName(opt.tls) + "\"";
    out += ",\"rate\":" + Fixed(opt.rate, 3);
    out += ",\"elapsed_s\":" + Fixed(elapsed, 3);
    out += ",\"messages\":" + std::to_string(ok);
    out += ",\"messages_failed\":" + std::to_string(failed);
    out += ",\"sessions\":" + std::to_string(sessions_ok);
    out += ",\"sessions_failed\":" + std::to_string(sessions_failed);
    out += ",\"tls_handshakes\":" + std::to_string(handshakes);
    out += ",\"bytes_sent\":" + std::to_string(bytes);
    out += ",\"messages_per_s\":" + Fixed(static_cast<double>(ok) * per_s, 1);
    out += ",\"sessions_per_s\":" + Fixed(static_cast<double>(sessions_ok) * per_s, 1);
    out += ",\"handshakes_per_s\":" + Fixed(static_cast<double>(handshakes) * per_s, 1);
    out += ",\"errors\":{";
    bool first = true;
    for (const auto& [code, n] : errors) {
      if (!first) out += ",";
      first = false;
      core::AppendJsonString(out, code);
      out += ":" + std::to_string(n);
    }
    out += "},\"latency_us\":{";
    LatencyJson(out, "connect_to_banner", banner);
    out += ",";
    LatencyJson(out, "handshake", handshake);
    out += ",";
    LatencyJson(out, "data_to_250", data);
    out += ",";
    LatencyJson(out, "session", session);
    out += "}";
    if (opt.server_pid > 0) {
      out += ",\"server\":{\"pid\":" + std::to_string(opt.server_pid);
      if (server_after.ok) {
        const double cpu = server_after.cpu_s - server_before.cpu_s;
        out += ",\"cpu_s\":" + Fixed(cpu, 3);
        out += ",\"cpu_s_per_1000_messages\":" +
               (ok > 0 ? Fixed(cpu * 1000.0 / static_cast<double>(ok), 4) : std::string("null"));
        out += ",\"peak_rss_kb\":" + std::to_string(server_after.hwm_kb);
      } else {
        out += ",\"error\":\"process gone\"";
      }
      out += "}";
    }
    out += ",\"client_cpu_s\":" + Fixed(client_cpu, 3);
    out += std::string(",\"timed_out\":") + (timed_out ? "true" : "false");
    if (!fatal.empty()) {
      out += ",\"fatal\":";
      core::AppendJsonString(out, fatal);
    }
    out += "}\n";
  } else {
    char buf[512];
    snprintf(buf, sizeof(buf),
             "ringmx-bench %s: %d threads, %d connections, %d msg/conn, %d rcpts, %zu bytes, "
             "pipelining %s, tls %s\n",
             opt.target.c_str(), opt.threads, opt.concurrency, opt.messages_per_connection,
             opt.rcpts, shared.data.size() - 3, opt.pipelining ? "on" : "off",
             TlsModeName(opt.tls));
    out += buf;
    snprintf(buf, sizeof(buf),
             "elapsed %.3f s%s\nmessages   %llu ok, %llu failed  (%.1f/s)\nsessions   %llu ok, "
             "%llu failed  (%.1f/s)\nhandshakes %llu  (%.1f/s)\n",
             elapsed, timed_out ? " (hit the time cap)" : "", static_cast<unsigned long long>(ok),
             static_cast<unsigned long long>(failed), static_cast<double>(ok) * per_s,
             static_cast<unsigned long long>(sessions_ok),
             static_cast<unsigned long long>(sessions_failed),
             static_cast<double>(sessions_ok) * per_s, static_cast<unsigned long long>(handshakes),
             static_cast<double>(handshakes) * per_s);
    out += buf;
    out += "errors    ";
    if (errors.empty()) out += " none";
    for (const auto& [code, n] : errors) out += " " + code + ":" + std::to_string(n);
    out += "\nlatency\n";
    LatencyText(out, "connect-to-banner", banner);
    LatencyText(out, "tls handshake", handshake);
    LatencyText(out, "end-of-data-to-250", data);
    LatencyText(out, "session", session);
    if (opt.server_pid > 0 && server_after.ok) {
      const double cpu = server_after.cpu_s - server_before.cpu_s;
      snprintf(buf, sizeof(buf),
               "server     pid %d: %.3f s CPU, %.4f s per 1000 messages, peak RSS %lld KiB\n",
               opt.server_pid, cpu, ok > 0 ? cpu * 1000.0 / static_cast<double>(ok) : 0.0,
               static_cast<long long>(server_after.hwm_kb));
      out += buf;
    }
    snprintf(buf, sizeof(buf), "client     %.3f s CPU\n", client_cpu);
    out += buf;
    if (!fatal.empty()) out += "fatal: " + fatal + "\n";
  }
  fputs(out.c_str(), stdout);
  fflush(stdout);
  if (shared.ssl_ctx != nullptr) SSL_CTX_free(shared.ssl_ctx);
  if (shared.accepted_ids_fd >= 0) close(shared.accepted_ids_fd);
  return fatal.empty() ? 0 : 1;
}

}  // namespace
}  // namespace ringmx::bench

int main(int argc, char** argv) { return ringmx::bench::Main(argc, argv); }

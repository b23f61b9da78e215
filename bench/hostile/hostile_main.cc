// ringmx-hostile: the throughput of one well-behaved SMTP client alone, and beside N hostile
// connections (issue 9, item 8). Starts its own ringmx (the binary of the same build tree)
// on 127.0.0.1 in a temporary directory, then for each run measures, on one connection, the
// messages per second of a fixed count of sequential transactions (MAIL, RCPT, DATA, each waiting
// for its reply): once alone and once while N hostile connections are kept open (the kinds of
// tests/testing/hostile_scripts.h, spread evenly; each one that ends is replaced by a new one of
// its kind, at once or after --reconnect-delay-ms). The order of the two phases alternates between
// runs. Prints one line per run and a summary with the median ratio. A tool, not a test; loopback
// only; every phase is bounded.
//
// usage: ringmx-hostile [--runs 5] [--messages 2000] [--hostile 100] [--workers 2]
//                       [--spool durable|discard] [--idle-s 3] [--data-s 6]
//                       [--reconnect-delay-ms 0] [--kinds long-lines,endless-data,...]
//                       [--hostile-nice 0]
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

#include "tests/testing/conn_swarm.h"
#include "tests/testing/hostile_scripts.h"
#include "tests/testing/proc_stats.h"
#include "tests/testing/server_process.h"
#include "tests/testing/smtp_client.h"
#include "tests/testing/temp_dir.h"

namespace ringmx::bench {
namespace {

using testing::ConnSwarm;
using testing::HostileKind;
using testing::HostileParams;
using testing::RssKib;
using testing::SmtpClient;
using testing::SmtpReply;

struct Options {
  int runs = 5;
  int messages = 2000;
  int hostile = 100;
  int workers = 2;
  std::string spool = "durable";
  int idle_s = 3;
  int data_s = 6;
  // A hostile connection that has ended is replaced after this pause (0: at once, a flood).
  int reconnect_delay_ms = 0;
  // Added to the hostile clients' thread's nice value (the good client and the server keep
  // theirs): shows how much of a loss is the load generator competing for the same cores.
  int hostile_nice = 0;
  std::vector<HostileKind> kinds;  // empty: all kinds
};

bool ParseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    auto int_arg = [&](int& out) { return has_value && absl::SimpleAtoi(argv[++i], &out); };
    if (a == "--runs") {
      if (!int_arg(o.runs)) return false;
    } else if (a == "--messages") {
      if (!int_arg(o.messages)) return false;
    } else if (a == "--hostile") {
      if (!int_arg(o.hostile)) return false;
    } else if (a == "--workers") {
      if (!int_arg(o.workers)) return false;
    } else if (a == "--idle-s") {
      if (!int_arg(o.idle_s)) return false;
    } else if (a == "--data-s") {
      if (!int_arg(o.data_s)) return false;
    } else if (a == "--hostile-nice") {
      if (!int_arg(o.hostile_nice)) return false;
    } else if (a == "--reconnect-delay-ms") {
      if (!int_arg(o.reconnect_delay_ms)) return false;
    } else if (a == "--kinds" && has_value) {
      const std::vector<std::string> names = absl::StrSplit(argv[++i], ',', absl::SkipEmpty());
      for (const std::string& name : names) {
        bool found = false;
        for (HostileKind kind : testing::kAllHostileKinds) {
          if (testing::HostileKindName(kind) == name) {
            o.kinds.push_back(kind);
            found = true;
          }
        }
        if (!found) return false;
      }
    } else if (a == "--spool" && has_value) {
      o.spool = argv[++i];
      if (o.spool != "durable" && o.spool != "discard") return false;
    } else {
      return false;
    }
  }
  return o.runs > 0 && o.messages > 0 && o.hostile >= 0;
}

// User and system CPU seconds of the server between two readings.
struct Cpu {
  double user = 0;
  double sys = 0;
  Cpu operator-(const Cpu& o) const { return {user - o.user, sys - o.sys}; }
};

Cpu CpuSeconds(pid_t pid) {
  const testing::CpuTimes t = testing::ProcessCpu(pid);
  return {t.user, t.system};
}

// This process's CPU (the clients).
double OwnCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct GoodResult {
  int accepted = 0;  // 250 after the data
  int failed = 0;    // anything else, or a broken connection
  double seconds = 0;
  std::string first_error;
  double rate() const { return seconds > 0 ? accepted / seconds : 0; }
};

// One connection, `messages` sequential transactions; the clock runs from the first MAIL to the
// last end-of-data reply.
GoodResult RunGoodClient(uint16_t port, int messages, int first) {
  GoodResult result;
  auto fail = [&](const std::string& what) {
    ++result.failed;
    if (result.first_error.empty()) result.first_error = what;
  };
  std::unique_ptr<SmtpClient> client = SmtpClient::Connect("127.0.0.1", port);
  if (client == nullptr) {
    fail("connect failed");
    return result;
  }
  if (client->ReadReply().code != 220 || client->Command("EHLO good.test").code != 250) {
    fail("no greeting or EHLO refused");
    return result;
  }
  const absl::Time start = absl::Now();
  for (int i = first; i < first + messages; ++i) {
    SmtpReply r = client->Command(absl::StrCat("MAIL FROM:<s", i, "@remote.test>"));
    if (r.code == 250) r = client->Command(absl::StrCat("RCPT TO:<u", i, "@example.test>"));
    if (r.code == 250) r = client->Command("DATA");
    if (r.code == 354) {
      client->Send(absl::StrCat("From: <s", i, "@remote.test>\r\nTo: <u", i,
                                "@example.test>\r\nSubject: good ", i,
                                "\r\n\r\nA well-behaved message.\r\n.\r\n"));
      r = client->ReadReply();
      if (r.code == 250) {
        ++result.accepted;
        continue;
      }
    }
    fail(absl::StrCat("message ", i, ": ", r.code, " ", r.text));
    if (r.code < 0) break;
  }
  result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  client->Command("QUIT");
  return result;
}

struct HostileStats {
  uint64_t sessions_ended = 0;
  uint64_t closed_by_server = 0;
  uint64_t ended_with_421 = 0;
  uint64_t bytes_sent = 0;
  std::map<std::string, uint64_t> per_kind;
};

struct PhaseResult {
  GoodResult good;
  HostileStats hostile;
  Cpu server_cpu;
  double client_cpu = 0;
  int64_t server_rss_peak_kib = 0;
};

PhaseResult RunPhase(const testing::ServerProcess& server, const Options& o, bool hostile,
                     int first_message) {
  PhaseResult phase;
  const pid_t pid = server.pid();
  const Cpu cpu_before = CpuSeconds(pid);
  const double client_cpu_before = OwnCpuSeconds();
  // Both phases run the same harness (the good client on its own thread, this thread sampling the
  // server and keeping the swarm); the alone phase only has no hostile connection in the swarm,
  // so the ratio measures the hostile connections and nothing of the harness.
  HostileParams params;
  ConnSwarm swarm(server.port());
  std::vector<HostileKind> kinds = o.kinds;
  if (kinds.empty()) {
    kinds.assign(std::begin(testing::kAllHostileKinds), std::end(testing::kAllHostileKinds));
  }
  std::vector<size_t> slot(hostile ? static_cast<size_t>(o.hostile) : 0);
  std::vector<HostileKind> slot_kind(slot.size());
  std::vector<absl::Time> slot_ended(slot.size(), absl::InfiniteFuture());
  for (size_t i = 0; i < slot.size(); ++i) {
    slot_kind[i] = kinds[i % kinds.size()];
    slot[i] = swarm.Add(std::string(testing::HostileKindName(slot_kind[i])),
                        testing::HostileScript(slot_kind[i], params));
  }
  // Every hostile connection is open and greeted before the good client starts; the run ends when
  // the good client is done.
  // On Linux a nice value belongs to a thread, and a new thread inherits its creator's.
  const int base_nice = getpriority(PRIO_PROCESS, 0);
  if (o.hostile_nice != 0) setpriority(PRIO_PROCESS, 0, base_nice + o.hostile_nice);
  std::atomic<bool> good_done{false};
  std::thread good_thread;
  bool good_started = false;
  const absl::Time deadline = absl::Now() + absl::Minutes(10);
  auto account = [&](testing::SwarmConn& c) {
    ++phase.hostile.sessions_ended;
    ++phase.hostile.per_kind[c.label];
    if (c.closed && !c.reset) ++phase.hostile.closed_by_server;
    for (const SmtpReply& r : c.replies) {
      if (r.code == 421) ++phase.hostile.ended_with_421;
    }
    phase.hostile.bytes_sent += c.bytes_sent;
    std::vector<SmtpReply>().swap(c.replies);  // the stats are taken; free the memory
    std::string().swap(c.in);
  };
  swarm.Run(
      deadline, /*max_unanswered=*/256,
      [&] {
        phase.server_rss_peak_kib = std::max(phase.server_rss_peak_kib, RssKib(pid));
        if (!good_started) {
          // The first connection of every slot has been greeted (or has already ended).
          size_t greeted = 0;
          for (size_t index = 0; index < slot.size(); ++index) {
            const testing::SwarmConn& c = swarm.conn(index);
            greeted += !c.replies.empty() || c.Done() ? 1 : 0;
          }
          if (greeted == slot.size()) {
            good_started = true;
            good_thread = std::thread([&] {
              if (o.hostile_nice != 0) setpriority(PRIO_PROCESS, 0, base_nice);
              phase.good = RunGoodClient(server.port(), o.messages, first_message);
              good_done = true;
            });
          }
        }
        if (good_done) return false;
        // Replace every hostile connection that has ended by a new one of its kind, after the
        // reconnect pause.
        const absl::Time now = absl::Now();
        for (size_t i = 0; i < slot.size(); ++i) {
          testing::SwarmConn& c = swarm.conn(slot[i]);
          if (!c.Done()) continue;
          if (slot_ended[i] == absl::InfiniteFuture()) {
            account(c);
            slot_ended[i] = now;
          }
          if (now < slot_ended[i] + absl::Milliseconds(o.reconnect_delay_ms)) continue;
          slot_ended[i] = absl::InfiniteFuture();
          slot[i] = swarm.Add(std::string(testing::HostileKindName(slot_kind[i])),
                              testing::HostileScript(slot_kind[i], params));
        }
        swarm.CloseDone();
        return true;
      },
      absl::Milliseconds(50));
  if (good_thread.joinable()) good_thread.join();
  if (o.hostile_nice != 0) setpriority(PRIO_PROCESS, 0, base_nice);
  phase.server_cpu = CpuSeconds(pid) - cpu_before;
  phase.client_cpu = OwnCpuSeconds() - client_cpu_before;
  return phase;
}

std::string ServerConfig(const testing::TempDir& dir, const Options& o) {
  return absl::StrCat("hostname = \"mx.example.test\"\nworkers = ", o.workers,
                      "\n\n[[listener]]\nname = \"mx\"\naddress = \"127.0.0.1:0\"\n\n"
                      "[policy]\nlocal_domains = [\"example.test\"]\n"
                      "relay_networks = [\"127.0.0.0/8\"]\nmax_recipients = 100\n"
                      "max_message_size = 1048576\n\n[spool]\npath = \"",
                      dir.path(), "/spool\"\nmode = \"", o.spool, "\"\n\n[control]\nsocket = \"",
                      dir.path(), "/control.sock\"\n\n[timeouts]\nidle_s = ", o.idle_s,
                      "\ndata_s = ", o.data_s, "\n");
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, o)) {
    fprintf(stderr,
            "usage: ringmx-hostile [--runs 5] [--messages 2000] [--hostile 100] [--workers 2]\n"
            "                      [--spool durable|discard] [--idle-s 3] [--data-s 6]\n"
            "                      [--reconnect-delay-ms 0] [--kinds long-lines,endless-data,...]\n"
            "                      [--hostile-nice 0]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  ConnSwarm::RaiseFileLimit();
  testing::TempDir dir;
  std::string error;
  std::unique_ptr<testing::ServerProcess> server =
      testing::ServerProcess::Start(dir, ServerConfig(dir, o), &error);
  if (server == nullptr) {
    fprintf(stderr, "ringmx-hostile: %s\n", error.c_str());
    return 1;
  }
  printf(
      "ringmx-hostile: %s, %d workers, spool %s, idle_s %d, data_s %d; %d messages per phase, "
      "%d hostile connections\n",
      testing::RingmxBinary().c_str(), o.workers, o.spool.c_str(), o.idle_s, o.data_s, o.messages,
      o.hostile);
  printf("%-4s %-8s %9s %8s %7s %13s %16s %11s %8s\n", "run", "phase", "msgs/s", "seconds",
         "failed", "hostile_ended", "server_cpu_usr+sys", "client_cpu", "rss_mib");
  // Warm-up: one-time costs (spool directories, receive buffers) out of the first measurement.
  RunGoodClient(server->port(), std::min(o.messages, 200), 0);
  std::vector<double> ratios;
  std::vector<double> alone_rates;
  std::vector<double> hostile_rates;
  int first = 1000000;
  int exit_code = 0;
  for (int run = 1; run <= o.runs; ++run) {
    double rate[2] = {0, 0};
    for (int k = 0; k < 2; ++k) {
      const bool hostile = (run % 2 == 1) ? k == 1 : k == 0;
      PhaseResult p = RunPhase(*server, o, hostile, first);
      first += o.messages;
      rate[hostile ? 1 : 0] = p.good.rate();
      printf("%-4d %-8s %9.1f %8.2f %7d %13llu %9.2f+%-6.2f %11.2f %8.1f\n", run,
             hostile ? "hostile" : "alone", p.good.rate(), p.good.seconds, p.good.failed,
             static_cast<unsigned long long>(p.hostile.sessions_ended), p.server_cpu.user,
             p.server_cpu.sys, p.client_cpu, p.server_rss_peak_kib / 1024.0);
      if (p.good.failed > 0) {
        printf("     good client error: %s\n", p.good.first_error.c_str());
        exit_code = 1;
      }
      if (hostile) {
        std::string kinds;
        for (const auto& [kind, n] : p.hostile.per_kind) absl::StrAppend(&kinds, " ", kind, "=", n);
        printf(
            "     hostile sessions ended:%s; closed by the server %llu, with 421 %llu, "
            "%.1f MiB sent\n",
            kinds.c_str(), static_cast<unsigned long long>(p.hostile.closed_by_server),
            static_cast<unsigned long long>(p.hostile.ended_with_421),
            p.hostile.bytes_sent / 1048576.0);
      }
      fflush(stdout);
    }
    alone_rates.push_back(rate[0]);
    hostile_rates.push_back(rate[1]);
    ratios.push_back(rate[0] > 0 ? rate[1] / rate[0] : 0);
    printf("     run %d: with hostile / alone = %.3f\n", run, ratios.back());
  }
  auto median_of = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  std::vector<double> sorted = ratios;
  std::sort(sorted.begin(), sorted.end());
  const double median = median_of(ratios);
  const double alone_median = median_of(alone_rates);
  const double hostile_median = median_of(hostile_rates);
  printf("median msgs/s: alone %.1f, with hostile %.1f (ratio of medians %.3f)\n", alone_median,
         hostile_median, alone_median > 0 ? hostile_median / alone_median : 0);
  printf(
      "ratio with hostile / alone: median %.3f, min %.3f, max %.3f over %zu runs (target >= "
      "0.90)\n",
      median, sorted.front(), sorted.back(), sorted.size());
  if (kill(server->pid(), 0) != 0) {
    printf("the server died\n");
    exit_code = 1;
  }
  return exit_code;
}

}  // namespace
}  // namespace ringmx::bench

int main(int argc, char** argv) { return ringmx::bench::Main(argc, argv); }

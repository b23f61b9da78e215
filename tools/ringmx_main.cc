// ringmx: the server and its command-line tools.
//   ringmx serve -c FILE          run the server
//   ringmx check -c FILE          validate a config file and exit
//   ringmx ctl [-c FILE | -s SOCKET] [--json] reload|stats|metrics|version|certs|drain
//   ringmx queue [-c FILE | -s SOCKET] list|show ID|export ID DIR|hold ID|release ID|delete
//   ID|flush ringmx tlsa -c FILE           TLSA records (3 1 1, 2 1 1) of every configured chain
//   ringmx tlsa --check HOST:PORT [--starttls] [--sni NAME] [-c FILE]
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#ifdef RINGMX_WITH_MIMALLOC
#include <mimalloc.h>
#endif

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

#include "core/config.h"
#include "core/json.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/passwd_file.h"
#include "net/queue_control.h"
#include "net/runtime.h"
#include "net/server.h"
#include "net/tlsa_check.h"
#include "tls/chain_probe.h"
#include "tls/client_context.h"
#include "tls/tls_context.h"

namespace {

using ringmx::core::Config;

constexpr char kUsage[] =
    "usage:\n"
    "  ringmx serve -c FILE\n"
    "  ringmx check -c FILE\n"
    "  ringmx ctl [-c FILE | -s SOCKET] [--json] reload|stats|metrics|version|certs|drain\n"
    "  ringmx queue [-c FILE | -s SOCKET] list [--json] | show ID [--json] | export ID DIR\n"
    "  ringmx queue [-c FILE | -s SOCKET] hold ID | release ID | delete ID | flush\n"
    "  ringmx tlsa -c FILE\n"
    "  ringmx tlsa --check IP:PORT [--starttls] [--sni NAME] [-c FILE]\n";

struct Args {
  std::string command;
  std::string config = "/etc/ringmx/ringmx.toml";
  bool config_given = false;
  std::string socket;
  std::string check;  // tlsa --check target
  bool starttls = false;
  std::string sni;
  // serve --test-clock (hidden, tests only): see net::ServerOptions::test_clock_for_test.
  bool test_clock = false;
  bool json = false;  // queue list/show --json; ctl --json
  std::vector<std::string> rest;
};

bool ParseArgs(int argc, char** argv, Args& args) {
  if (argc < 2) return false;
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) {
      args.config = argv[++i];
      args.config_given = true;
    } else if (a == "--check" && i + 1 < argc) {
      args.check = argv[++i];
    } else if (a == "--starttls") {
      args.starttls = true;
    } else if (a == "--test-clock" && args.command == "serve") {
      args.test_clock = true;
    } else if (a == "--json" && (args.command == "queue" || args.command == "ctl")) {
      args.json = true;
    } else if (a == "--sni" && i + 1 < argc) {
      args.sni = argv[++i];
    } else if ((a == "-s" || a == "--socket") && i + 1 < argc) {
      args.socket = argv[++i];
    } else if (!a.empty() && a[0] == '-') {
      fprintf(stderr, "ringmx: unknown option %s\n", a.c_str());
      return false;
    } else {
      args.rest.push_back(a);
    }
  }
  return true;
}

// Room for many connections: take the hard limit of open files.
void RaiseFileLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int Check(const Args& args) {
  absl::StatusOr<Config> config = ringmx::core::LoadConfigFile(args.config);
  if (!config.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  // The files the Snapshot is built from besides the config itself.
  std::vector<std::string> warnings;
  if (absl::Status recipients = ringmx::net::LoadRecipients(*config, &warnings).status();
      !recipients.ok()) {
    fprintf(stderr, "ringmx: %s: %s\n", args.config.c_str(),
            std::string(recipients.message()).c_str());
    return 1;
  }
  if (absl::Status passwd = ringmx::core::LoadAuthPasswd(config->auth).status(); !passwd.ok()) {
    fprintf(stderr, "ringmx: %s: %s\n", args.config.c_str(), std::string(passwd.message()).c_str());
    return 1;
  }
  // The listeners' certificates and keys (a missing file, a key that does not match its
  // certificate, a broken chain) and the routes' CA bundles (tls_ca), loaded as BuildRuntime
  // loads them: `check` passes only a config that `serve` starts with.
  if (absl::Status server_tls = ringmx::tls::TlsContext::Build(*config, &warnings).status();
      !server_tls.ok()) {
    fprintf(stderr, "ringmx: %s: %s\n", args.config.c_str(),
            std::string(server_tls.message()).c_str());
    return 1;
  }
  if (absl::Status client_tls = ringmx::tls::ClientTlsContext::Build(*config).status();
      !client_tls.ok()) {
    fprintf(stderr, "ringmx: %s: %s\n", args.config.c_str(),
            std::string(client_tls.message()).c_str());
    return 1;
  }
  for (const std::string& warning : warnings) fprintf(stderr, "ringmx: %s\n", warning.c_str());
  const std::string workers = config->workers == 0 ? std::string("one shard per core")
                                                   : absl::StrCat(config->workers, " shards");
  printf("ringmx: %s: ok (%zu listener%s, hostname %s, %s, threads %s)\n", args.config.c_str(),
         config->listeners.size(), config->listeners.size() == 1 ? "" : "s",
         config->hostname.c_str(), workers.c_str(),
         config->pin_threads ? "pinned one per CPU" : "not pinned (pin_threads = false)");
  return 0;
}

int Serve(const Args& args) {
  absl::StatusOr<Config> config = ringmx::core::LoadConfigFile(args.config);
  if (!config.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  const bool log_to_file = !config->log.file.empty();
  if (log_to_file) {
    int fd = open(config->log.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      fprintf(stderr, "ringmx: log.file: cannot open %s: %s\n", config->log.file.c_str(),
              strerror(errno));
      return 1;
    }
    ringmx::core::SetLogFd(fd);
  }
  RaiseFileLimit();
#ifdef RINGMX_WITH_MIMALLOC
  ringmx::core::LogInfo(absl::StrCat("allocator mimalloc ", mi_version()));
#endif
  ringmx::net::ServerOptions options;
  options.test_clock_for_test = args.test_clock;
  auto server = ringmx::net::Server::Start(args.config, *std::move(config), options);
  if (!server.ok()) {
    // One line on stderr; the log gets it too when it is a file (else it is stderr already).
    if (log_to_file) {
      ringmx::core::LogError(absl::StrCat("start failed: ", server.status().ToString()));
    }
    fprintf(stderr, "ringmx: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  absl::Status status = (*server)->Run();
  server->reset();
  if (!status.ok()) {
    fprintf(stderr, "ringmx: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

// The control socket: -s SOCKET, or control.socket of the config. Fills `config` when it was
// read (the queue tools need spool.path when the server is down).
absl::StatusOr<std::string> ControlSocket(const Args& args, std::optional<Config>* config) {
  if (!args.socket.empty() && !args.config_given) return args.socket;
  absl::StatusOr<Config> loaded = ringmx::core::LoadConfigFile(args.config);
  if (!loaded.ok()) return loaded.status();
  std::string socket = args.socket.empty() ? loaded->control.socket : args.socket;
  if (config != nullptr) *config = *std::move(loaded);
  if (socket.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("control.socket is not set in ", args.config));
  }
  return socket;
}

int Fail(const absl::Status& status) {
  fprintf(stderr, "ringmx: %s\n", std::string(status.message()).c_str());
  return 1;
}

int Ctl(const Args& args) {
  // One command; its arguments, if any, follow it on the same line.
  if (args.rest.empty()) {
    fputs(kUsage, stderr);
    return 2;
  }
  absl::StatusOr<std::string> socket = ControlSocket(args, nullptr);
  if (!socket.ok()) return Fail(socket.status());
  absl::StatusOr<std::string> reply =
      ringmx::net::ControlRequest(*socket, absl::StrJoin(args.rest, " "));
  if (!reply.ok()) return Fail(reply.status());
  const bool failed = reply->rfind("error", 0) == 0;
  absl::StatusOr<ringmx::core::JsonValue> parsed =
      !reply->empty() && ((*reply)[0] == '{' || (*reply)[0] == '[')
          ? ringmx::core::ParseJson(*reply)
          : absl::StatusOr<ringmx::core::JsonValue>(absl::InvalidArgumentError("not JSON"));
  if (args.json) {
    // Raw JSON; a reply that is not JSON (reload's "ok generation=2", metrics' text) is wrapped.
    if (parsed.ok()) {
      printf("%s\n", reply->c_str());
    } else {
      std::string out;
      ringmx::core::JsonWriter json(out);
      json.BeginObject().Key("ok").Bool(!failed).Key("reply").String(*reply).EndObject();
      printf("%s\n", out.c_str());
    }
  } else if (parsed.ok()) {
    fputs(ringmx::core::JsonToText(*parsed).c_str(), stdout);
  } else {
    printf("%s\n", reply->c_str());
  }
  return failed ? 1 : 0;
}

bool WriteFile(const std::string& path, std::string_view bytes) {
  FILE* f = fopen(path.c_str(), "wbx");  // never overwrite
  if (f == nullptr) {
    fprintf(stderr, "ringmx: cannot create %s: %s\n", path.c_str(), strerror(errno));
    return false;
  }
  const bool ok = fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (fclose(f) != 0 || !ok) {
    fprintf(stderr, "ringmx: cannot write %s: %s\n", path.c_str(), strerror(errno));
    return false;
  }
  return true;
}

// `export-data` answers "ok EML JSON\n" and the bytes: write <id>.eml and <id>.json into `dir`.
int ExportFiles(const std::string& reply, const std::string& id, const std::string& dir) {
  const size_t eol = reply.find('\n');
  std::vector<std::string> words =
      absl::StrSplit(reply.substr(0, eol == std::string::npos ? reply.size() : eol), ' ');
  size_t eml_size = 0, json_size = 0;
  if (eol == std::string::npos || words.size() != 3 || words[0] != "ok" ||
      !absl::SimpleAtoi(words[1], &eml_size) || !absl::SimpleAtoi(words[2], &json_size) ||
      reply.size() - eol - 1 < eml_size + json_size) {
    fprintf(stderr, "ringmx: %s\n", reply.substr(0, eol).c_str());
    return 1;
  }
  const std::string_view eml = std::string_view(reply).substr(eol + 1, eml_size);
  const std::string_view json = std::string_view(reply).substr(eol + 1 + eml_size, json_size);
  const std::string base = absl::StrCat(dir, "/", id);
  if (!WriteFile(base + ".eml", eml) || !WriteFile(base + ".json", json)) return 1;
  printf("%s.eml\n%s.json\n", base.c_str(), base.c_str());
  return 0;
}

// The queue tools (like postqueue, postcat and postsuper): through the control socket, or, for
// list, show and export when the server is not running, from the queue directories.
int Queue(const Args& args) {
  std::vector<std::string> words = args.rest;
  if (words.empty()) {
    fputs(kUsage, stderr);
    return 2;
  }
  std::string export_dir;
  if (words[0] == "export") {
    if (words.size() != 3) {
      fputs(kUsage, stderr);
      return 2;
    }
    export_dir = words[2];
    words = {"export-data", words[1]};
  }
  if (args.json) words.push_back("--json");
  const std::string command = absl::StrJoin(words, " ");
  std::optional<Config> config;
  absl::StatusOr<std::string> socket = ControlSocket(args, &config);
  absl::StatusOr<std::string> reply = socket.ok()
                                          ? ringmx::net::ControlRequest(*socket, "queue " + command,
                                                                        /*strip=*/false)
                                          : socket.status();
  if (!reply.ok()) {
    // Not running (or no socket configured): read the directories if we know where they are.
    if (!config.has_value()) return Fail(reply.status());
    fprintf(stderr, "ringmx: %s; reading the queue directory instead\n",
            std::string(reply.status().message()).c_str());
    reply = ringmx::net::QueueCommandOffline(config->spool.path, command,
                                             absl::ToUnixMicros(absl::Now()));
  }
  if (reply->rfind("error", 0) == 0) {
    fprintf(stderr, "ringmx: %s\n", reply->c_str() + 6);
    return 1;
  }
  if (!export_dir.empty()) return ExportFiles(*reply, words[1], export_dir);
  fwrite(reply->data(), 1, reply->size(), stdout);
  if (reply->empty() || reply->back() != '\n') putchar('\n');
  return 0;
}

// Prints the TLSA records of every configured chain, or checks them against a live server.
int Tlsa(const Args& args) {
  std::vector<ringmx::tls::ChainInfo> chains;
  std::string hostname;
  if (args.check.empty() || args.config_given) {
    absl::StatusOr<Config> config = ringmx::core::LoadConfigFile(args.config);
    if (!config.ok()) {
      fprintf(stderr, "ringmx: %s\n", std::string(config.status().message()).c_str());
      return 1;
    }
    hostname = config->hostname;
    std::vector<std::string> warnings;
    auto context = ringmx::tls::TlsContext::Build(*config, &warnings);
    if (!context.ok()) {
      fprintf(stderr, "ringmx: %s\n", std::string(context.status().message()).c_str());
      return 1;
    }
    for (const std::string& w : warnings) fprintf(stderr, "ringmx: warning: %s\n", w.c_str());
    if (*context == nullptr) {
      fprintf(stderr, "ringmx: no listener uses TLS in %s\n", args.config.c_str());
      return 1;
    }
    chains = (*context)->chains();
  }
  if (args.check.empty()) {
    for (const auto& chain : chains) {
      // The names, each once (a leaf's CN is usually among its SANs too).
      std::vector<std::string> names;
      for (const std::string& n : chain.names) {
        const std::string& name = n.empty() ? hostname : n;
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
      }
      printf("; %s (%s, %s, expires %s, %zu certificates)\n", chain.config_key.c_str(),
             absl::StrJoin(names, ",").c_str(), chain.key_type.c_str(), chain.not_after.c_str(),
             chain.pem_chain.size());
      printf("_25._tcp.%s. IN TLSA 3 1 1 %s\n", hostname.c_str(), chain.tlsa_311.c_str());
      if (chain.tlsa_211.empty()) {
        // A chain of the leaf alone (self-signed, or the intermediates left out): there is no
        // issuer to pin, and an empty record would be invalid.
        printf("; no TLSA 2 1 1: the chain holds only its leaf (publish 3 1 1)\n");
      } else {
        printf("_25._tcp.%s. IN TLSA 2 1 1 %s\n", hostname.c_str(), chain.tlsa_211.c_str());
      }
    }
    return 0;
  }
  absl::StatusOr<ringmx::core::Endpoint> target = ringmx::core::Endpoint::Parse(args.check);
  if (!target.ok()) {
    fprintf(stderr, "ringmx: --check: %s\n", std::string(target.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<ringmx::net::ServedChain> served =
      ringmx::net::FetchServedChain(*target, args.starttls, args.sni, absl::Seconds(30));
  if (!served.ok()) {
    fprintf(stderr, "ringmx: %s: %s\n", args.check.c_str(),
            std::string(served.status().message()).c_str());
    return 1;
  }
  std::vector<std::string> spki;
  for (const std::string& der : served->der) {
    absl::StatusOr<std::string> digest = ringmx::tls::SpkiSha256Hex(der);
    spki.push_back(digest.ok() ? *digest : "?");
  }
  printf("%s served %zu certificates over %s\n", args.check.c_str(), served->der.size(),
         served->tls_version.c_str());
  for (size_t i = 0; i < spki.size(); ++i) {
    printf("  [%zu] %s %s\n", i, i == 0 ? "3 1 1" : "2 1 1", spki[i].c_str());
  }
  if (chains.empty()) return 0;
  // 3 1 1 must match the served leaf; 2 1 1 must match a certificate above it in the served
  // chain (a DANE-TA record only validates when the server sends that certificate).
  bool all = true;
  bool any = false;
  for (const auto& chain : chains) {
    const bool ee = !spki.empty() && spki[0] == chain.tlsa_311;
    bool ta = false;
    for (size_t i = 1; i < spki.size(); ++i) ta = ta || spki[i] == chain.tlsa_211;
    if (!ee) continue;  // a chain for another name or key type: not what this handshake served
    any = true;
    printf("%s: TLSA 3 1 1 %s: match\n", chain.config_key.c_str(), chain.tlsa_311.c_str());
    if (chain.tlsa_211.empty()) {
      printf("%s: no TLSA 2 1 1 (the configured chain holds only its leaf)\n",
             chain.config_key.c_str());
      continue;
    }
    printf("%s: TLSA 2 1 1 %s: %s\n", chain.config_key.c_str(), chain.tlsa_211.c_str(),
           ta ? "match" : "NO MATCH (the served chain lacks that certificate)");
    all = all && ta;
  }
  if (!any) {
    printf("no configured chain matches the served leaf: TLSA 3 1 1 records would fail\n");
    return 1;
  }
  return all ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  if (!ParseArgs(argc, argv, args)) {
    fputs(kUsage, stderr);
    return 2;
  }
  if (args.command == "serve") return Serve(args);
  if (args.command == "check") return Check(args);
  if (args.command == "ctl") return Ctl(args);
  if (args.command == "queue") return Queue(args);
  if (args.command == "tlsa") return Tlsa(args);
  if (args.command == "help" || args.command == "--help" || args.command == "-h") {
    fputs(kUsage, stdout);
    return 0;
  }
  fprintf(stderr, "ringmx: unknown command \"%s\"\n%s", args.command.c_str(), kUsage);
  return 2;
}

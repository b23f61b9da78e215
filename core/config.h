// The configuration model (DESIGN.md section 7) and its TOML loader. A Config is a plain value,
// fully validated by the loader: code that holds one may trust every field. Key names are a
// contract with operators and outside checks; add keys, never rename them.
#pragma once

#include <stdint.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "core/ip.h"
#include "core/next_hop.h"

namespace ringmx::core {

enum class TlsMode { kNone, kStartTls, kImplicit };
enum class ClientCertMode { kNone, kOptional, kRequired };
enum class SpoolMode { kDurable, kDiscard };
// `proxy_protocol` of a [[listener]] (docs/proxy.md): which PROXY protocol header (HAProxy's
// doc/proxy-protocol.txt) every connection must start with. kNone: no header, the socket's peer
// is the client.
enum class ProxyProtocol { kNone, kV1, kV2, kAny };
// `milters_skip` of a [[listener]] (docs/milter.md): which sessions are not shown to its milters.
enum class MiltersSkip {
  kNone,           // every session goes through the milters
  kAuthenticated,  // sessions that authenticated (AUTH) skip them
  kRelay,          // clients in policy.relay_networks skip them
  kBoth,           // either: authenticated sessions and relay_networks clients skip them
};

struct ListenerConfig {
  std::string name;                                     // `name`, unique among listeners
  Endpoint address;                                     // `address`, "ip:port" or "[ipv6]:port"
  TlsMode tls = TlsMode::kNone;                         // `tls`
  bool tls_required = false;                            // `tls_required`
  std::string min_tls = "1.2";                          // `min_tls`: "1.2" or "1.3"
  ClientCertMode client_certs = ClientCertMode::kNone;  // `client_certs`
  bool sni_strict = false;                              // `sni_strict`
  std::vector<Cidr> no_tls_hosts;                       // `no_tls_hosts`
  bool auth = false;                                    // `auth`
  // `proxy_protocol`: on any value but "none" each connection must open with a PROXY header, read
  // before the greeting (and before a TLS ClientHello); the client it names is the client for
  // policy, limits, logs and the envelope. Never guessed: a connection without it is closed.
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  // `proxy_trusted`: the balancers allowed to send the header; a connection from anywhere else is
  // closed at once. Required and non-empty when proxy_protocol is not "none", refused otherwise.
  std::vector<Cidr> proxy_trusted;
  // `milters`: names of [[milter]] tables, called in this order for every session; each names a
  // [[milter]], at most once.
  std::vector<std::string> milters;
  MiltersSkip milters_skip = MiltersSkip::kNone;  // `milters_skip`
};

// One certificate chain and its private key, both PEM files, paths resolved. The chain file holds
// the leaf first, then the intermediates (and the root when the operator includes it).
struct CertKeyPair {
  std::string cert;
  std::string key;
};

// `cert` and `key` are each a path or an array of paths of equal length, paired in order: several
// pairs for the same names (RSA and ECDSA) let the handshake pick what the client supports.
// `cert`/`key` repeat the first pair so that code wanting one certificate can ignore `pairs`.
struct SniConfig {
  std::vector<std::string> names;  // exact names or "*.domain"; lower-cased, no trailing dot
  std::string cert;                // pairs[0].cert
  std::string key;                 // pairs[0].key
  std::vector<CertKeyPair> pairs;  // at least one
};

struct TlsConfig {
  std::string cert;                // default certificate chain (PEM), pairs[0].cert; "" if none
  std::string key;                 // pairs[0].key; "" if none
  std::vector<CertKeyPair> pairs;  // every default pair, in file order; empty if none
  std::string client_ca;           // `client_ca`: CA bundle for client certificates, "" if none
  // `ciphers`: the TLS 1.2 cipher list (OpenSSL syntax); "" means ringmx's safe default. Only
  // printable ASCII is checked here; tls/ checks the list itself when it builds the contexts.
  std::string ciphers;
  // `ciphersuites`: the TLS 1.3 suites (OpenSSL syntax); "" means ringmx's safe default.
  std::string ciphersuites;
  std::vector<SniConfig> sni;
  // `ktls`: hand the record layer to the kernel after the handshake when the kernel has TLS ULP
  // (probed once at start). false keeps every connection on OpenSSL's record layer.
  bool ktls = true;
};

// One `[[policy.tls_floor]]`: clients in `networks` get `min_tls` instead of their listener's
// min_tls, on every TLS listener (STARTTLS and implicit). The first floor whose networks contain
// the client wins (tls/tls_floor.h). A floor below "1.2" makes tls/ build a separate, laxer
// SSL_CTX (security level 0, SHA-1 CBC suites added) used only for these clients.
struct TlsFloorConfig {
  std::vector<Cidr> networks;  // `networks`: required, at least one
  std::string min_tls;         // `min_tls`: required, "1.0", "1.1", "1.2" or "1.3"
};

struct PolicyConfig {
  std::vector<std::string> local_domains;  // lower-cased, trailing dot dropped by the loader
  std::vector<Cidr> relay_networks;
  // `relay_client_certs`: SHA-256 fingerprints of client certificates that may relay once verified
  // (docs/policy.md). Written as 64 hex digits in either case, with or without ':' between the
  // pairs; held as 64 lower-case hex digits, as core::ClientCertFacts has them.
  std::vector<std::string> relay_client_certs;
  // `recipients`: path of the valid local recipients file (core/recipient_table.h), resolved; ""
  // when not set. The loader does not open it: net/ loads it with the Snapshot.
  std::string recipients;
  int max_recipients = 100;
  uint64_t max_message_size = 26214400;
  std::vector<TlsFloorConfig> tls_floor;  // `[[policy.tls_floor]]`, in file order
};

struct AuthConfig {
  // `passwd`: the credentials file (Dovecot passwd-file format, core/passwd_file.h); "" if AUTH
  // has no backend.
  std::string passwd;
  // The AUTH failure throttle (policy/auth_throttle.h), per shard and client address: from
  // `slow_after` failures within `failure_window_s` on, each AUTH answer is delayed; at
  // `refuse_after` failures AUTH is refused (421 4.7.0) until the window has passed since the last
  // failure. 1 <= slow_after <= refuse_after (equal: refused without a slow stage).
  int slow_after = 3;
  int refuse_after = 10;
  absl::Duration failure_window = absl::Seconds(900);  // `failure_window_s`
};

struct SpoolConfig {
  // `path`: the store's directory. The queue lives in `<path>/queue/<shard>/`: append-only
  // segment files `<16 hex digits>.seg`, one directory per shard (DESIGN.md section 6).
  std::string path = "spool";
  // `mode`: "durable" (default) or "discard" (benchmark only: nothing is written).
  SpoolMode mode = SpoolMode::kDurable;
  // `segment_size`: bytes after which a shard starts a new segment file (a group commit is never
  // split, so a segment may end somewhat past it). 1 MiB to 1 GiB; default 64 MiB. Smaller
  // segments give disk space back sooner once their messages are final; larger ones mean fewer
  // files and fewer directory syncs.
  uint64_t segment_size = uint64_t{64} << 20;
};

struct TimeoutsConfig {
  absl::Duration idle = absl::Seconds(300);           // `idle_s`: between commands
  absl::Duration data = absl::Seconds(600);           // `data_s`: whole DATA/BDAT phase
  absl::Duration greet_pause = absl::ZeroDuration();  // `greet_pause_ms`: wait before 220
  absl::Duration shutdown_grace = absl::Seconds(30);  // `shutdown_grace_s`
  // `proxy_s`: how long a connection on a proxy_protocol listener may take to send its PROXY
  // header (HAProxy's spec: "at least 3 seconds to cover a TCP retransmit").
  absl::Duration proxy = absl::Seconds(5);
};

struct ControlConfig {
  std::string socket;  // "" disables the control socket
};

// `[metrics]` (docs/operations.md): the Prometheus endpoint, plain HTTP `GET /metrics`.
struct MetricsConfig {
  std::optional<Endpoint> address;  // `address`, "ip:port" or "[ipv6]:port"; absent or "": off
};

struct LogConfig {
  std::string file;  // `file`: "" means stderr
};

// `[limits]`: connection limits (Postfix's smtpd_client_connection_count_limit,
// smtpd_client_connection_rate_limit and smtpd_hard_error_limit). Enforced per shard with a
// budget of ceil(limit / shards) each (docs/architecture.md, "Connection limits").
struct LimitsConfig {
  static constexpr int kDefaultMaxErrors = 20;
  // `max_sessions`: concurrent sessions in total, every client counted; 0 = no limit.
  int max_sessions = 0;
  // `max_sessions_per_client`: concurrent sessions per client IP address; 0 = no limit.
  int max_sessions_per_client = 50;
  // `max_connection_rate_per_client`: new connections per client IP address per minute (refused
  // attempts count too); 0 = no limit.
  int max_connection_rate_per_client = 0;
  // `max_errors`: protocol errors one session may make before `421 4.7.0 ... too many errors`.
  int max_errors = kDefaultMaxErrors;
  // `exempt`: clients the per-client limits do not apply to. When the key is absent the loader
  // fills in policy.relay_networks (like Postfix's smtpd_client_event_limit_exceptions =
  // $mynetworks); `exempt = []` exempts nobody.
  std::vector<Cidr> exempt;
};

// `tls` of a [[route]]: how its smtp: hops are reached (lmtp: hops are always plain).
enum class RouteTls {
  kNone,           // never STARTTLS
  kOpportunistic,  // STARTTLS when the hop offers it, certificate not checked (Postfix "may")
  kVerify,         // STARTTLS required, certificate verified against tls_ca for tls_name
};
// `verify_unreachable` of a [[route]]: the answer to RCPT for an uncached recipient while the
// route's hops cannot be asked.
enum class VerifyUnreachable { kTempfail, kAccept };

// One `[[route]]` (docs/delivery.md): where mail for some recipient domains goes (net/delivery.h).
struct RouteConfig {
  // `domains`: exact names ("example.test"), wildcards ("*.example.test": every name below
  // example.test, at any depth, not example.test itself) or "*" (the default route, at most one
  // in the file). Lower-cased, no trailing dot, each listed by one route only.
  std::vector<std::string> domains;
  // `next_hop`: at least one, tried in order (failover). Unix socket paths are resolved.
  std::vector<NextHop> next_hop;
  // `tls`; default "opportunistic", or "none" for a route of lmtp: hops only (the only value
  // such a route takes).
  RouteTls tls = RouteTls::kOpportunistic;
  std::string tls_ca;    // `tls_ca`: CA bundle (PEM) for tls = "verify", resolved; "" otherwise
  std::string tls_name;  // `tls_name`: the name the hop's certificate must hold (tls = "verify")
  int max_connections = 20;        // `max_connections`: per shard and hop, 1-1000
  bool verify_recipients = false;  // `verify_recipients`: ask the hop at RCPT time
  // The recipient verification cache (like Postfix's address_verify_positive_expire_time and
  // address_verify_negative_refresh_time): how long a known / unknown recipient stays so.
  absl::Duration verify_positive_ttl = absl::Hours(31 * 24);            // `verify_positive_ttl_s`
  absl::Duration verify_negative_ttl = absl::Hours(3);                  // `verify_negative_ttl_s`
  VerifyUnreachable verify_unreachable = VerifyUnreachable::kTempfail;  // `verify_unreachable`
};

// `default_action` of a [[milter]]: the answer while the milter is down, too slow or broken.
enum class MilterDefaultAction { kTempfail, kAccept, kReject };

// One `[[milter]]` (docs/milter.md): a content filter speaking the milter protocol (rspamd,
// OpenDKIM, ...), called by the SMTP sessions of the listeners that name it.
struct MilterConfig {
  std::string name;  // `name`: unique among milters; 1-64 letters, digits, '-', '_', '.'
  // `address`: "inet:127.0.0.1:11332", "inet:[::1]:11332" (port required, not 0) or
  // "unix:/path" (a relative path is resolved against the config file's directory).
  bool is_unix = false;
  Endpoint inet;                                        // when !is_unix
  std::string unix_path;                                // when is_unix
  absl::Duration connect_timeout = absl::Seconds(30);   // `connect_timeout_s`
  absl::Duration command_timeout = absl::Seconds(30);   // `command_timeout_s`: each reply
  absl::Duration content_timeout = absl::Seconds(300);  // `content_timeout_s`: header..EOB
  MilterDefaultAction default_action = MilterDefaultAction::kTempfail;  // `default_action`

  // The address as configured, canonical: "inet:127.0.0.1:11332", "inet:[::1]:11332",
  // "unix:/run/rspamd/milter.sock".
  std::string AddressString() const;
};

// `[delivery]` (docs/delivery.md), Postfix-like defaults.
struct DeliveryConfig {
  // `bounce_next_hop`: where DSNs (RFC 3464) to senders go; required as soon as a [[route]]
  // exists, since a route can fail and its failures must reach the sender.
  std::optional<NextHop> bounce_next_hop;
  absl::Duration retry_first = absl::Seconds(300);    // `retry_first_s`: minimal_backoff_time
  absl::Duration retry_max = absl::Seconds(4000);     // `retry_max_s`: maximal_backoff_time
  absl::Duration max_lifetime = absl::Hours(5 * 24);  // `max_lifetime_s`: maximal_queue_lifetime
  // `hop_down_s`: how long a hop that failed to connect, timed out or said 421 is left alone by
  // the shard that saw it; 0 never marks a hop down.
  absl::Duration hop_down = absl::Seconds(60);
  absl::Duration connect_timeout = absl::Seconds(30);   // `connect_timeout_s`
  absl::Duration command_timeout = absl::Seconds(300);  // `command_timeout_s`: each reply
  absl::Duration data_timeout = absl::Seconds(600);  // `data_timeout_s`: the message and its reply
};

struct Config {
  std::string hostname;  // required; a domain name of 2+ labels, as written minus a trailing dot
  int workers = 0;       // 0: one shard per core; at most 1024
  // `pin_threads`: pin shard i to the i-th CPU the process may run on (wrapping around when there
  // are more shards than CPUs), DESIGN.md section 1. false leaves the scheduler free to move them.
  bool pin_threads = true;
  std::vector<ListenerConfig> listeners;  // at least one
  TlsConfig tls;
  PolicyConfig policy;
  AuthConfig auth;
  SpoolConfig spool;
  TimeoutsConfig timeouts;
  ControlConfig control;
  LogConfig log;
  LimitsConfig limits;
  std::vector<RouteConfig> routes;    // `[[route]]`, in file order
  DeliveryConfig delivery;            // `[delivery]`
  std::vector<MilterConfig> milters;  // `[[milter]]`, in file order
  MetricsConfig metrics;              // `[metrics]`
};

// Parses and validates TOML text. `source_name` (usually the file path) prefixes error messages.
// Errors are kInvalidArgument with one message, "<source>:<line>: <key path>: <what>", e.g.
//   ringmx.toml:7: listener[0].address: expected "ip:port" or "[ipv6]:port", got "localhost"
//   ringmx.toml:3: unknown key "listner" (did you mean "listener"?)
//   ringmx.toml:5: listener[0]: missing required key "address"
// ("<line>: " is left out when there is no line, e.g. a key missing at the top level). When a
// file has several problems the message is about the first of them in the file, preferring an
// unknown or bad key over a missing one it may have caused. Unknown keys are errors. Relative
// paths (spool.path, including its default, tls.*, auth.passwd, control.socket, log.file) are
// resolved against `base_dir` when it is not empty; no file is opened, so whether a certificate
// loads is for tls/ to say. Cross-key rules: a listener with tls = "starttls" or "implicit" needs
// tls.cert and tls.key; client_certs "optional" or "required" needs tls.client_ca; tls_required and
// client_certs need a TLS listener; `auth = true` needs a TLS listener and [auth] passwd (the
// file itself is loaded with the Snapshot: core/passwd_file.h).
//
// A listener with proxy_protocol other than "none" needs a non-empty proxy_trusted; proxy_trusted
// on a listener with proxy_protocol = "none" (or left out) is an error too.
//
// [policy]: `recipients` is a path like the others (resolved, not opened); `relay_client_certs`
// are normalised to lower-case hex. A listener with tls_required = true and a non-empty
// no_tls_hosts is an error (those clients would never be offered STARTTLS yet need it).
//
// [[route]] and [delivery] (docs/delivery.md): a domain is listed by one route only; at most one
// route lists "*"; tls = "verify" needs tls_ca and tls_name, tls_ca and tls_name need "verify",
// and a route of lmtp: hops only takes tls = "none" or leaves it out; retry_first_s <=
// retry_max_s. As soon as one route exists, [delivery] bounce_next_hop is required and every
// policy.local_domains entry must have a route (its own, a wildcard or the default): mail accepted
// for a domain no route covers could never leave.
//
// [[milter]] (docs/milter.md): names are unique; every name in a listener's `milters` must be a
// [[milter]]'s, listed once.
absl::StatusOr<Config> ParseConfig(std::string_view toml_text, std::string_view source_name,
                                   std::string_view base_dir = "");

// Reads `path` and calls ParseConfig with `path` as the source name and the file's directory, made
// absolute, as `base_dir`. kNotFound (or another ErrnoStatus code) if the file cannot be read.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// Every key the loader accepts that holds a value (not a table), as "section.key" with array
// indices dropped: "hostname", "listener.proxy_protocol", "tls.sni.names",
// "policy.tls_floor.min_tls". In schema order; taken from the loader's own schema, so that the
// reference (docs/configuration.md) and tests can be checked against it.
std::vector<std::string> ConfigSchemaKeys();

}  // namespace ringmx::core

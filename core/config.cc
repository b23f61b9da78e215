// The TOML loader for core/config.h. toml++ parses; this file walks the tree against a fixed
// schema, collects every problem it finds with the line it was found on, and reports the first one
// (see `Loader::Finish` for the order). toml++ throws; nothing here lets an exception out.
#include "core/config.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

#include "core/internal/config_text.h"
#include "core/read_file.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "core/strings.h"

#include <toml++/toml.h>

namespace ringmx::core {
namespace {

using internal::CanonicalDomain;
using internal::EditDistance;
using internal::IsDomainName;
using internal::ResolvePath;

// ---------------------------------------------------------------------------------------------
// The schema: which keys each table may hold. Unknown keys are errors.

struct TableSchema {
  std::string_view path;  // schema path: array indices dropped ("listener", "tls.sni")
  // How an operator writes the table: "[policy]", "[[listener]]"; "" for the root.
  std::string_view header;
  std::span<const std::string_view> keys;
};

constexpr std::string_view kRootKeys[] = {
    "hostname", "workers", "pin_threads", "listener", "tls",   "policy",   "auth",   "spool",
    "timeouts", "control", "log",         "limits",   "route", "delivery", "milter", "metrics"};
constexpr std::string_view kListenerKeys[] = {
    "name",          "address",    "tls",          "tls_required", "min_tls",
    "client_certs",  "sni_strict", "no_tls_hosts", "auth",         "proxy_protocol",
    "proxy_trusted", "milters",    "milters_skip"};
constexpr std::string_view kTlsKeys[] = {"cert",         "key", "client_ca", "ciphers",
                                         "ciphersuites", "sni", "ktls"};
constexpr std::string_view kSniKeys[] = {"names", "cert", "key"};
constexpr std::string_view kPolicyKeys[] = {
    "local_domains",      "relay_networks", "max_recipients", "max_message_size",
    "relay_client_certs", "recipients",     "tls_floor"};
constexpr std::string_view kTlsFloorKeys[] = {"networks", "min_tls"};
constexpr std::string_view kAuthKeys[] = {"passwd", "slow_after", "refuse_after",
                                          "failure_window_s"};
constexpr std::string_view kSpoolKeys[] = {"path", "mode", "segment_size"};
constexpr std::string_view kTimeoutsKeys[] = {"idle_s", "data_s", "greet_pause_ms",
                                              "shutdown_grace_s", "proxy_s"};
constexpr std::string_view kControlKeys[] = {"socket"};
constexpr std::string_view kLogKeys[] = {"file"};
constexpr std::string_view kMetricsKeys[] = {"address"};
constexpr std::string_view kLimitsKeys[] = {"max_sessions", "max_sessions_per_client",
                                            "max_connection_rate_per_client", "max_errors",
                                            "exempt"};

constexpr std::string_view kRouteKeys[] = {"domains",
                                           "next_hop",
                                           "tls",
                                           "tls_ca",
                                           "tls_name",
                                           "max_connections",
                                           "verify_recipients",
                                           "verify_positive_ttl_s",
                                           "verify_negative_ttl_s",
                                           "verify_unreachable"};
constexpr std::string_view kDeliveryKeys[] = {
    "bounce_next_hop", "retry_first_s",     "retry_max_s",       "max_lifetime_s",
    "hop_down_s",      "connect_timeout_s", "command_timeout_s", "data_timeout_s"};

constexpr std::string_view kMilterKeys[] = {
    "name",          "address", "connect_timeout_s", "command_timeout_s", "content_timeout_s",
    "default_action"};

constexpr TableSchema kRootSchema{"", "", kRootKeys};
constexpr TableSchema kListenerSchema{"listener", "[[listener]]", kListenerKeys};
constexpr TableSchema kTlsSchema{"tls", "[tls]", kTlsKeys};
constexpr TableSchema kSniSchema{"tls.sni", "[[tls.sni]]", kSniKeys};
constexpr TableSchema kPolicySchema{"policy", "[policy]", kPolicyKeys};
constexpr TableSchema kTlsFloorSchema{"policy.tls_floor", "[[policy.tls_floor]]", kTlsFloorKeys};
constexpr TableSchema kAuthSchema{"auth", "[auth]", kAuthKeys};
constexpr TableSchema kSpoolSchema{"spool", "[spool]", kSpoolKeys};
constexpr TableSchema kTimeoutsSchema{"timeouts", "[timeouts]", kTimeoutsKeys};
constexpr TableSchema kControlSchema{"control", "[control]", kControlKeys};
constexpr TableSchema kLogSchema{"log", "[log]", kLogKeys};
constexpr TableSchema kMetricsSchema{"metrics", "[metrics]", kMetricsKeys};
constexpr TableSchema kLimitsSchema{"limits", "[limits]", kLimitsKeys};
constexpr TableSchema kRouteSchema{"route", "[[route]]", kRouteKeys};
constexpr TableSchema kDeliverySchema{"delivery", "[delivery]", kDeliveryKeys};
constexpr TableSchema kMilterSchema{"milter", "[[milter]]", kMilterKeys};

constexpr const TableSchema* kAllSchemas[] = {
    &kRootSchema,    &kListenerSchema, &kTlsSchema,    &kSniSchema,
    &kPolicySchema,  &kAuthSchema,     &kSpoolSchema,  &kTimeoutsSchema,
    &kControlSchema, &kLogSchema,      &kLimitsSchema, &kTlsFloorSchema,
    &kRouteSchema,   &kDeliverySchema, &kMilterSchema, &kMetricsSchema};

// Upper bound for `workers`: far above any machine we run on, far below the 32768 shard indices a
// queue id can hold (core/queue_id.h).
constexpr int64_t kMaxWorkers = 1024;
// sun_path is 108 bytes on Linux, including the terminating NUL.
constexpr size_t kMaxUnixSocketPath = 107;

// ---------------------------------------------------------------------------------------------
// Small text helpers.

// A hint for an unknown key: the nearest key of the same table, or the table where the key would
// be valid. "" if nothing is close.
std::string SuggestKey(std::string_view key, const TableSchema& schema) {
  std::string_view best;
  size_t best_distance = std::numeric_limits<size_t>::max();
  for (std::string_view candidate : schema.keys) {
    // One edit for short names, two for longer ones; never "all of it".
    const size_t limit = std::max(key.size(), candidate.size()) <= 4 ? 1 : 2;
    const size_t distance = EditDistance(key, candidate);
    if (distance <= limit && distance < candidate.size() && distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (!best.empty()) return absl::StrCat(" (did you mean \"", Av(best), "\"?)");
  for (const TableSchema* other : kAllSchemas) {
    if (other == &schema) continue;
    for (std::string_view candidate : other->keys) {
      if (candidate != key) continue;
      // The classic TOML slip: a top-level key written after a [table] header lands in that table.
      if (other == &kRootSchema) {
        return absl::StrCat(" (\"", Av(key),
                            "\" is a top-level key: move it above the first [table] header)");
      }
      return absl::StrCat(" (\"", Av(key), "\" belongs in ", Av(other->header), ")");
    }
  }
  return "";
}

std::string Quote(std::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(Av(text)), "\"");
}

// toml++'s error descriptions quote the offending text, which may hold a line break or another
// control octet ("expected 'true', saw 'tru\n'"): those are escaped so that the error stays one
// line.
std::string OneLine(std::string_view text) {
  std::string out;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      absl::StrAppend(&out, absl::CHexEscape(absl::string_view(&c, 1)));
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string_view TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

uint32_t LineOf(const toml::node& node) { return node.source().begin.line; }

std::string SubPath(std::string_view path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(Av(path), ".", Av(key));
}

std::string IndexPath(std::string_view path, size_t index) {
  return absl::StrCat(Av(path), "[", index, "]");
}

// A SHA-256 fingerprint as operators copy it: 64 hex digits, or 32 pairs joined by ':' (what
// `openssl x509 -fingerprint -sha256` prints), either case. 64 lower-case hex digits, or nullopt.
std::optional<std::string> NormaliseSha256Fingerprint(std::string_view text) {
  const bool paired = text.find(':') != std::string_view::npos;
  if (text.size() != (paired ? 95 : 64)) return std::nullopt;
  std::string out;
  out.reserve(64);
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (paired && i % 3 == 2) {
      if (c != ':') return std::nullopt;
      continue;
    }
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The tree walk.

// One string element of an array, with where it came from.
struct Item {
  std::string value;
  std::string path;  // "policy.relay_networks[2]"
  uint32_t line = 0;
};

// Walks one parsed document into a Config. Use once: Load() then nothing else.
class Loader {
 public:
  Loader(std::string_view source_name, std::string_view base_dir)
      : source_name_(source_name), base_dir_(base_dir) {}

  absl::StatusOr<Config> Load(const toml::table& root);

 private:
  // Errors are reported in this order of kind, then of line: a typo or a bad value explains more
  // than the missing key it causes.
  enum class Kind { kValue = 0, kMissing = 1 };
  struct Error {
    Kind kind;
    uint32_t line;  // 0: no line (a key missing at the top level)
    size_t sequence;
    std::string text;
  };

  void Report(Kind kind, uint32_t line, std::string_view path, std::string_view message);
  // Reports against the line recorded for `path` by a reader below.
  void ReportAt(Kind kind, std::string_view path, std::string_view message);
  void Missing(uint32_t table_line, std::string_view table_path, std::string_view key);
  absl::Status Finish();

  void CheckKeys(const toml::table& table, std::string_view path, const TableSchema& schema);
  bool ExpectType(const toml::node& node, toml::node_type want, std::string_view path,
                  std::string_view hint = "");

  // Readers: nullopt when the key is absent (nothing reported) or wrong (reported). Each records
  // the key's line under its full path in `lines_`.
  const toml::node* Find(const toml::table& table, std::string_view table_path,
                         std::string_view key);
  std::optional<std::string> String(const toml::table& table, std::string_view table_path,
                                    std::string_view key);
  std::optional<bool> Bool(const toml::table& table, std::string_view table_path,
                           std::string_view key);
  std::optional<int64_t> Int(const toml::table& table, std::string_view table_path,
                             std::string_view key, int64_t min, int64_t max,
                             std::string_view unit = "");
  template <typename E>
  std::optional<E> Enum(const toml::table& table, std::string_view table_path, std::string_view key,
                        std::initializer_list<std::pair<std::string_view, E>> choices);
  std::optional<std::vector<Item>> StringArray(const toml::table& table,
                                               std::string_view table_path, std::string_view key);
  // A path: "" stays "" (the feature is off); anything else is resolved against `base_dir_`.
  std::optional<std::string> Path(const toml::table& table, std::string_view table_path,
                                  std::string_view key);
  // `cert` or `key`: a path or a non-empty array of non-empty paths, resolved. A string gives one
  // item named after the key ("tls.cert"), an array one per element ("tls.cert[1]"); a string
  // may be "" (the caller decides what that means).
  std::optional<std::vector<Item>> PathList(const toml::table& table, std::string_view table_path,
                                            std::string_view key);
  // Pairs certs[i] with keys[i] into `out`; reports against `<table_path>.key` if the counts
  // differ.
  void PairUp(std::string_view table_path, const std::vector<Item>& certs,
              const std::vector<Item>& keys, std::vector<CertKeyPair>& out);
  // `ciphers` or `ciphersuites`: printable ASCII, "" for the default.
  std::optional<std::string> CipherList(const toml::table& table, std::string_view key);
  std::vector<Cidr> Cidrs(const toml::table& table, std::string_view table_path,
                          std::string_view key);
  // The table under `key` or nullptr (absent or reported).
  const toml::table* Section(const toml::table& root, const TableSchema& schema);
  // The tables of an array of tables, one per element so that indices match the file; nullptr for
  // an element that is not a table (reported). Empty if absent or not an array (reported).
  std::vector<const toml::table*> TableArray(const toml::table& parent,
                                             std::string_view parent_path, std::string_view key,
                                             const TableSchema& schema);

  void LoadListener(const toml::table& table, const std::string& path, ListenerConfig& out);
  void LoadTls(const toml::table& root, TlsConfig& out);
  void LoadSniEntry(const toml::table& entry, const std::string& path,
                    absl::flat_hash_map<std::string, std::pair<std::string, uint32_t>>& seen,
                    SniConfig& sni);
  // The rules that join a listener's TLS keys to [tls].
  void CheckListenerTls(const Config& config);
  void LoadPolicy(const toml::table& root, PolicyConfig& out);
  // `[[policy.tls_floor]]` of the [policy] table.
  void LoadTlsFloors(const toml::table& policy, PolicyConfig& out);
  void LoadSimpleSections(const toml::table& root, Config& config);
  // [limits]; after LoadPolicy, since `exempt` defaults to policy.relay_networks.
  void LoadLimits(const toml::table& root, Config& config);
  void CheckListenersUnique(const Config& config);
  // listener[i].auth needs a TLS listener and [auth] passwd.
  void CheckListenerAuth(const Config& config);
  // A next hop (`path` names the key, e.g. "route[0].next_hop[1]"); nullopt if reported.
  std::optional<NextHop> Hop(const std::string& text, const std::string& path, uint32_t line);
  // `[[route]]`; `seen` maps each routed domain to where it was first listed.
  void LoadRoutes(const toml::table& root, Config& config);
  void LoadRoute(const toml::table& table, const std::string& path,
                 absl::flat_hash_map<std::string, std::pair<std::string, uint32_t>>& seen,
                 RouteConfig& out);
  void LoadDelivery(const toml::table& root, Config& config);
  // The rules that join [[route]], [delivery] and [policy] local_domains.
  void CheckRoutes(const Config& config);
  // `[[milter]]`, then the listeners' `milters` against them.
  void LoadMilters(const toml::table& root, Config& config);
  void LoadMilter(const toml::table& table, const std::string& path, MilterConfig& out);
  void CheckListenerMilters(const Config& config);
  // `name` of a [[listener]] or [[milter]]: 1-64 letters, digits, '-', '_' or '.'.
  std::optional<std::string> Name(const toml::table& table, const std::string& path);

  std::string_view source_name_;
  std::string_view base_dir_;
  std::vector<Error> errors_;
  absl::flat_hash_map<std::string, uint32_t> lines_;  // key path -> line of its value
};

void Loader::Report(Kind kind, uint32_t line, std::string_view path, std::string_view message) {
  std::string text(source_name_);
  if (line > 0) absl::StrAppend(&text, ":", line);
  absl::StrAppend(&text, ": ");
  if (!path.empty()) absl::StrAppend(&text, Av(path), ": ");
  absl::StrAppend(&text, Av(message));
  errors_.push_back(Error{kind, line, errors_.size(), std::move(text)});
}

void Loader::ReportAt(Kind kind, std::string_view path, std::string_view message) {
  auto it = lines_.find(Av(path));
  Report(kind, it == lines_.end() ? 0 : it->second, path, message);
}

void Loader::Missing(uint32_t table_line, std::string_view table_path, std::string_view key) {
  Report(Kind::kMissing, table_line, table_path,
         absl::StrCat("missing required key \"", Av(key), "\""));
}

absl::Status Loader::Finish() {
  if (errors_.empty()) return absl::OkStatus();
  const auto order = [](const Error& e) {
    // Errors without a line sort after those with one of the same kind.
    return std::make_tuple(static_cast<int>(e.kind),
                           e.line == 0 ? std::numeric_limits<uint32_t>::max() : e.line, e.sequence);
  };
  const Error& first =
      *std::min_element(errors_.begin(), errors_.end(),
                        [&](const Error& a, const Error& b) { return order(a) < order(b); });
  return absl::InvalidArgumentError(first.text);
}

void Loader::CheckKeys(const toml::table& table, std::string_view path, const TableSchema& schema) {
  for (const auto& [key, node] : table) {
    const std::string_view name = key.str();
    if (std::find(schema.keys.begin(), schema.keys.end(), name) != schema.keys.end()) continue;
    const uint32_t line = key.source().begin.line > 0 ? key.source().begin.line : LineOf(node);
    Report(Kind::kValue, line, path,
           absl::StrCat("unknown key ", Quote(name), SuggestKey(name, schema)));
  }
}

bool Loader::ExpectType(const toml::node& node, toml::node_type want, std::string_view path,
                        std::string_view hint) {
  if (node.type() == want) return true;
  Report(
      Kind::kValue, LineOf(node), path,
      absl::StrCat("expected ", Av(TypeName(want)), Av(hint), ", got ", Av(TypeName(node.type()))));
  return false;
}

const toml::node* Loader::Find(const toml::table& table, std::string_view table_path,
                               std::string_view key) {
  const toml::node* node = table.get(key);
  if (node != nullptr) lines_[SubPath(table_path, key)] = LineOf(*node);
  return node;
}

std::optional<std::string> Loader::String(const toml::table& table, std::string_view table_path,
                                          std::string_view key) {
  const toml::node* node = Find(table, table_path, key);
  if (node == nullptr) return std::nullopt;
  if (!ExpectType(*node, toml::node_type::string, SubPath(table_path, key),
                  node->is_floating_point() ? " (write the value in quotes)" : "")) {
    return std::nullopt;
  }
  return node->as_string()->get();
}

std::optional<bool> Loader::Bool(const toml::table& table, std::string_view table_path,
                                 std::string_view key) {
  const toml::node* node = Find(table, table_path, key);
  if (node == nullptr) return std::nullopt;
  if (!ExpectType(*node, toml::node_type::boolean, SubPath(table_path, key))) return std::nullopt;
  return node->as_boolean()->get();
}

std::optional<int64_t> Loader::Int(const toml::table& table, std::string_view table_path,
                                   std::string_view key, int64_t min, int64_t max,
                                   std::string_view unit) {
  const toml::node* node = Find(table, table_path, key);
  if (node == nullptr) return std::nullopt;
  const std::string path = SubPath(table_path, key);
  if (!ExpectType(*node, toml::node_type::integer, path)) return std::nullopt;
  const int64_t value = node->as_integer()->get();
  if (value < min || value > max) {
    std::string range = max == std::numeric_limits<int64_t>::max()
                            ? absl::StrCat("must be at least ", min, Av(unit))
                            : absl::StrCat("must be between ", min, " and ", max, Av(unit));
    Report(Kind::kValue, LineOf(*node), path, absl::StrCat(range, ", got ", value));
    return std::nullopt;
  }
  return value;
}

template <typename E>
std::optional<E> Loader::Enum(const toml::table& table, std::string_view table_path,
                              std::string_view key,
                              std::initializer_list<std::pair<std::string_view, E>> choices) {
  const toml::node* node = table.get(key);
  std::optional<std::string> text = String(table, table_path, key);
  if (!text) return std::nullopt;
  std::string expected;
  for (const auto& [name, value] : choices) {
    if (name == *text) return value;
    absl::StrAppend(&expected, expected.empty() ? "" : ", ", "\"", Av(name), "\"");
  }
  Report(Kind::kValue, LineOf(*node), SubPath(table_path, key),
         absl::StrCat("expected one of ", expected, ", got ", Quote(*text)));
  return std::nullopt;
}

std::optional<std::vector<Item>> Loader::StringArray(const toml::table& table,
                                                     std::string_view table_path,
                                                     std::string_view key) {
  const toml::node* node = Find(table, table_path, key);
  if (node == nullptr) return std::nullopt;
  const std::string path = SubPath(table_path, key);
  if (!ExpectType(*node, toml::node_type::array, path, " of strings")) return std::nullopt;
  std::vector<Item> items;
  bool ok = true;
  const toml::array& array = *node->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const toml::node& element = array[i];
    // Falls back to the array's line if toml++ gave the element none.
    const uint32_t line = LineOf(element) > 0 ? LineOf(element) : LineOf(*node);
    std::string element_path = IndexPath(path, i);
    if (!element.is_string()) {
      Report(Kind::kValue, line, element_path,
             absl::StrCat("expected a string, got ", Av(TypeName(element.type()))));
      ok = false;
      continue;
    }
    items.push_back(Item{element.as_string()->get(), std::move(element_path), line});
  }
  if (!ok) return std::nullopt;
  return items;
}

std::optional<std::string> Loader::Path(const toml::table& table, std::string_view table_path,
                                        std::string_view key) {
  std::optional<std::string> text = String(table, table_path, key);
  if (!text) return std::nullopt;
  return ResolvePath(base_dir_, *text);
}

std::optional<std::vector<Item>> Loader::PathList(const toml::table& table,
                                                  std::string_view table_path,
                                                  std::string_view key) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return std::nullopt;
  const std::string path = SubPath(table_path, key);
  if (node->is_string()) {
    lines_[path] = LineOf(*node);
    return std::vector<Item>{
        Item{ResolvePath(base_dir_, node->as_string()->get()), path, LineOf(*node)}};
  }
  if (!node->is_array()) {
    lines_[path] = LineOf(*node);
    Report(
        Kind::kValue, LineOf(*node), path,
        absl::StrCat("expected a string or an array of strings, got ", Av(TypeName(node->type()))));
    return std::nullopt;
  }
  std::optional<std::vector<Item>> items = StringArray(table, table_path, key);
  if (!items) return std::nullopt;
  if (items->empty()) {
    ReportAt(Kind::kValue, path, "must list at least one file");
    return std::nullopt;
  }
  bool ok = true;
  for (Item& item : *items) {
    if (item.value.empty()) {
      Report(Kind::kValue, item.line, item.path, "must not be empty");
      ok = false;
      continue;
    }
    item.value = ResolvePath(base_dir_, item.value);
  }
  if (!ok) return std::nullopt;
  return items;
}

void Loader::PairUp(std::string_view table_path, const std::vector<Item>& certs,
                    const std::vector<Item>& keys, std::vector<CertKeyPair>& out) {
  if (certs.size() != keys.size()) {
    const auto count = [](size_t n, std::string_view noun) {
      return absl::StrCat(n, " ", Av(noun), n == 1 ? "" : "s");
    };
    ReportAt(Kind::kValue, SubPath(table_path, "key"),
             absl::StrCat(count(keys.size(), "key"), " for ", count(certs.size(), "certificate"),
                          " in ", Av(SubPath(table_path, "cert")),
                          "; each key pairs with the certificate at the same position"));
    return;
  }
  for (size_t i = 0; i < certs.size(); ++i) {
    out.push_back(CertKeyPair{certs[i].value, keys[i].value});
  }
}

std::optional<std::string> Loader::CipherList(const toml::table& table, std::string_view key) {
  std::optional<std::string> text = String(table, "tls", key);
  if (!text) return std::nullopt;
  const bool printable =
      std::all_of(text->begin(), text->end(), [](char c) { return c >= 0x20 && c < 0x7F; });
  if (!printable) {
    ReportAt(
        Kind::kValue, SubPath("tls", key),
        absl::StrCat("expected an OpenSSL cipher list in printable ASCII, got ", Quote(*text)));
    return std::nullopt;
  }
  return text;
}

std::vector<Cidr> Loader::Cidrs(const toml::table& table, std::string_view table_path,
                                std::string_view key) {
  std::vector<Cidr> out;
  std::optional<std::vector<Item>> items = StringArray(table, table_path, key);
  if (!items) return out;
  for (const Item& item : *items) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(item.value);
    if (!cidr.ok()) {
      Report(Kind::kValue, item.line, item.path, Sv(cidr.status().message()));
      continue;
    }
    out.push_back(*cidr);
  }
  return out;
}

const toml::table* Loader::Section(const toml::table& root, const TableSchema& schema) {
  const toml::node* node = Find(root, "", schema.path);
  if (node == nullptr) return nullptr;
  const std::string hint = absl::StrCat(" (", Av(schema.header), ")");
  if (!ExpectType(*node, toml::node_type::table, schema.path, hint)) return nullptr;
  const toml::table* table = node->as_table();
  CheckKeys(*table, schema.path, schema);
  return table;
}

std::vector<const toml::table*> Loader::TableArray(const toml::table& parent,
                                                   std::string_view parent_path,
                                                   std::string_view key,
                                                   const TableSchema& schema) {
  std::vector<const toml::table*> tables;
  const toml::node* node = Find(parent, parent_path, key);
  if (node == nullptr) return tables;
  const std::string path = SubPath(parent_path, key);
  const std::string hint = absl::StrCat(" of tables (", Av(schema.header), ")");
  if (!ExpectType(*node, toml::node_type::array, path, hint)) return tables;
  const toml::array& array = *node->as_array();
  for (size_t i = 0; i < array.size(); ++i) {
    const std::string element_path = IndexPath(path, i);
    lines_[element_path] = LineOf(array[i]) > 0 ? LineOf(array[i]) : LineOf(*node);
    if (!array[i].is_table()) {
      Report(Kind::kValue, lines_[element_path], element_path,
             absl::StrCat("expected a table, got ", Av(TypeName(array[i].type()))));
      tables.push_back(nullptr);
      continue;
    }
    CheckKeys(*array[i].as_table(), element_path, schema);
    tables.push_back(array[i].as_table());
  }
  return tables;
}

void Loader::LoadListener(const toml::table& table, const std::string& path, ListenerConfig& out) {
  const uint32_t line = lines_[path];
  if (std::optional<std::string> name = Name(table, path)) {
    out.name = *name;
  } else if (!table.contains("name")) {
    Missing(line, path, "name");
  }
  if (std::optional<std::string> address = String(table, path, "address")) {
    absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(*address);
    if (endpoint.ok()) {
      out.address = *endpoint;
    } else {
      ReportAt(Kind::kValue, SubPath(path, "address"), Sv(endpoint.status().message()));
    }
  } else if (!table.contains("address")) {
    Missing(line, path, "address");
  }
  if (auto tls = Enum<TlsMode>(table, path, "tls",
                               {{"none", TlsMode::kNone},
                                {"starttls", TlsMode::kStartTls},
                                {"implicit", TlsMode::kImplicit}})) {
    out.tls = *tls;
  }
  if (auto v = Bool(table, path, "tls_required")) out.tls_required = *v;
  if (auto v = Enum<std::string_view>(table, path, "min_tls", {{"1.2", "1.2"}, {"1.3", "1.3"}})) {
    out.min_tls = std::string(*v);
  }
  if (auto mode = Enum<ClientCertMode>(table, path, "client_certs",
                                       {{"none", ClientCertMode::kNone},
                                        {"optional", ClientCertMode::kOptional},
                                        {"required", ClientCertMode::kRequired}})) {
    out.client_certs = *mode;
  }
  if (auto v = Bool(table, path, "sni_strict")) out.sni_strict = *v;
  out.no_tls_hosts = Cidrs(table, path, "no_tls_hosts");
  if (auto v = Bool(table, path, "auth")) out.auth = *v;
  std::optional<ProxyProtocol> proxy = Enum<ProxyProtocol>(table, path, "proxy_protocol",
                                                           {{"none", ProxyProtocol::kNone},
                                                            {"v1", ProxyProtocol::kV1},
                                                            {"v2", ProxyProtocol::kV2},
                                                            {"any", ProxyProtocol::kAny}});
  if (proxy) out.proxy_protocol = *proxy;
  const toml::node* trusted = table.get("proxy_trusted");
  out.proxy_trusted = Cidrs(table, path, "proxy_trusted");
  // doc/proxy-protocol.txt section 2: the header is taken from trusted balancers only; a proxy
  // listener open to everyone would let any client claim any address.
  if (proxy && *proxy != ProxyProtocol::kNone) {
    if (trusted == nullptr) {
      Report(Kind::kMissing, line, path,
             "missing required key \"proxy_trusted\" (the balancers' networks, needed when "
             "proxy_protocol is not \"none\")");
    } else if (trusted->is_array() && trusted->as_array()->empty()) {
      ReportAt(Kind::kValue, SubPath(path, "proxy_trusted"),
               "must list at least one network when proxy_protocol is not \"none\"");
    }
  } else if (trusted != nullptr && !table.contains("proxy_protocol")) {
    ReportAt(Kind::kValue, SubPath(path, "proxy_trusted"),
             "proxy_trusted needs proxy_protocol = \"v1\", \"v2\" or \"any\" on this listener");
  } else if (trusted != nullptr && proxy) {  // proxy_protocol = "none"
    ReportAt(Kind::kValue, SubPath(path, "proxy_trusted"),
             "proxy_trusted needs proxy_protocol = \"v1\", \"v2\" or \"any\" on this listener "
             "(it has \"none\")");
  }
  if (std::optional<std::vector<Item>> milters = StringArray(table, path, "milters")) {
    // Checked against [[milter]] once those are loaded (CheckListenerMilters).
    for (const Item& item : *milters) {
      lines_[item.path] = item.line;
      out.milters.push_back(item.value);
    }
  }
  if (auto v = Enum<MiltersSkip>(table, path, "milters_skip",
                                 {{"none", MiltersSkip::kNone},
                                  {"authenticated", MiltersSkip::kAuthenticated},
                                  {"relay", MiltersSkip::kRelay},
                                  {"both", MiltersSkip::kBoth}})) {
    out.milters_skip = *v;
  }
}

std::optional<std::string> Loader::Name(const toml::table& table, const std::string& path) {
  std::optional<std::string> name = String(table, path, "name");
  if (!name) return std::nullopt;
  const bool valid =
      !name->empty() && name->size() <= 64 && std::all_of(name->begin(), name->end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.';
      });
  if (!valid) {
    ReportAt(Kind::kValue, SubPath(path, "name"),
             absl::StrCat("expected 1-64 characters of letters, digits, '-', '_' or '.', got ",
                          Quote(*name)));
    return std::nullopt;
  }
  return name;
}

void Loader::LoadTls(const toml::table& root, TlsConfig& out) {
  const toml::table* tls = Section(root, kTlsSchema);
  if (tls == nullptr) return;
  const std::optional<std::vector<Item>> certs = PathList(*tls, "tls", "cert");
  const std::optional<std::vector<Item>> keys = PathList(*tls, "tls", "key");
  // A key of the wrong type is reported already; "" is the same as leaving the key out.
  const bool cert_bad = !certs && tls->contains("cert");
  const bool key_bad = !keys && tls->contains("key");
  const bool cert_set = certs && !certs->front().value.empty();
  const bool key_set = keys && !keys->front().value.empty();
  if (!cert_bad && !key_bad) {
    if (cert_set != key_set) {
      const std::string_view set = cert_set ? "cert" : "key";
      const std::string_view unset = cert_set ? "key" : "cert";
      ReportAt(Kind::kValue, SubPath("tls", set),
               absl::StrCat("tls.", Av(set), " and tls.", Av(unset), " go together; tls.",
                            Av(unset), " is missing"));
    } else if (cert_set) {
      PairUp("tls", *certs, *keys, out.pairs);
    }
  }
  if (!out.pairs.empty()) {
    out.cert = out.pairs.front().cert;
    out.key = out.pairs.front().key;
  }
  if (auto v = Path(*tls, "tls", "client_ca")) out.client_ca = *v;
  if (auto v = CipherList(*tls, "ciphers")) out.ciphers = *v;
  if (auto v = CipherList(*tls, "ciphersuites")) out.ciphersuites = *v;
  if (auto v = Bool(*tls, "tls", "ktls")) out.ktls = *v;

  // Every SNI name in the file, canonical, to the path and line of its first use.
  absl::flat_hash_map<std::string, std::pair<std::string, uint32_t>> seen;
  const std::vector<const toml::table*> entries = TableArray(*tls, "tls", "sni", kSniSchema);
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entries[i] == nullptr) continue;
    SniConfig sni;
    LoadSniEntry(*entries[i], IndexPath("tls.sni", i), seen, sni);
    out.sni.push_back(std::move(sni));
  }
}

void Loader::LoadSniEntry(const toml::table& entry, const std::string& path,
                          absl::flat_hash_map<std::string, std::pair<std::string, uint32_t>>& seen,
                          SniConfig& sni) {
  const uint32_t line = lines_[path];
  if (std::optional<std::vector<Item>> names = StringArray(entry, path, "names")) {
    if (names->empty()) {
      ReportAt(Kind::kValue, SubPath(path, "names"), "must list at least one name");
    }
    for (const Item& item : *names) {
      std::string name = CanonicalDomain(item.value);
      const std::string_view base =
          name.starts_with("*.") ? std::string_view(name).substr(2) : std::string_view(name);
      if (!IsDomainName(base, 1)) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat("expected a domain name or \"*.domain\", got ", Quote(item.value)));
        continue;
      }
      if (auto [it, inserted] = seen.try_emplace(name, item.path, item.line); !inserted) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat(Quote(name), " is already listed at ", it->second.first, ", line ",
                            it->second.second));
        continue;
      }
      sni.names.push_back(std::move(name));
    }
  } else if (!entry.contains("names")) {
    Missing(line, path, "names");
  }
  // Unlike [tls], an entry without a certificate means nothing: "" is an error.
  std::optional<std::vector<Item>> lists[2];
  constexpr std::string_view kKeys[2] = {"cert", "key"};
  for (int k = 0; k < 2; ++k) {
    lists[k] = PathList(entry, path, kKeys[k]);
    if (lists[k] && lists[k]->front().value.empty()) {
      ReportAt(Kind::kValue, SubPath(path, kKeys[k]), "must not be empty");
      lists[k].reset();
    } else if (!lists[k] && !entry.contains(kKeys[k])) {
      Missing(line, path, kKeys[k]);
    }
  }
  if (lists[0] && lists[1]) PairUp(path, *lists[0], *lists[1], sni.pairs);
  if (!sni.pairs.empty()) {
    sni.cert = sni.pairs.front().cert;
    sni.key = sni.pairs.front().key;
  }
}

void Loader::LoadPolicy(const toml::table& root, PolicyConfig& out) {
  const toml::table* policy = Section(root, kPolicySchema);
  if (policy == nullptr) return;
  if (std::optional<std::vector<Item>> domains = StringArray(*policy, "policy", "local_domains")) {
    for (const Item& item : *domains) {
      std::string domain = CanonicalDomain(item.value);
      if (!IsDomainName(domain, 1)) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat("expected a domain name, got ", Quote(item.value)));
        continue;
      }
      out.local_domains.push_back(std::move(domain));
    }
  }
  out.relay_networks = Cidrs(*policy, "policy", "relay_networks");
  if (std::optional<std::vector<Item>> certs =
          StringArray(*policy, "policy", "relay_client_certs")) {
    for (const Item& item : *certs) {
      std::optional<std::string> fingerprint = NormaliseSha256Fingerprint(item.value);
      if (!fingerprint) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat("expected a SHA-256 certificate fingerprint (64 hex digits, optionally "
                            "in pairs separated by ':'), got ",
                            Quote(item.value)));
        continue;
      }
      out.relay_client_certs.push_back(*std::move(fingerprint));
    }
  }
  if (auto v = Path(*policy, "policy", "recipients")) out.recipients = *v;
  if (auto v = Int(*policy, "policy", "max_recipients", 1, 100000)) {
    out.max_recipients = static_cast<int>(*v);
  }
  if (auto v = Int(*policy, "policy", "max_message_size", 1024, std::numeric_limits<int64_t>::max(),
                   " bytes")) {
    out.max_message_size = static_cast<uint64_t>(*v);
  }
  LoadTlsFloors(*policy, out);
}

void Loader::LoadTlsFloors(const toml::table& policy, PolicyConfig& out) {
  const std::vector<const toml::table*> floors =
      TableArray(policy, "policy", "tls_floor", kTlsFloorSchema);
  for (size_t i = 0; i < floors.size(); ++i) {
    if (floors[i] == nullptr) continue;
    const toml::table& table = *floors[i];
    const std::string path = IndexPath("policy.tls_floor", i);
    const uint32_t line = lines_[path];
    TlsFloorConfig floor;
    if (table.contains("networks")) {
      const bool was_array = table.get("networks")->is_array();
      floor.networks = Cidrs(table, path, "networks");
      if (was_array && table.get("networks")->as_array()->empty()) {
        ReportAt(Kind::kValue, SubPath(path, "networks"),
                 "must list at least one network (\"192.0.2.0/24\", \"2001:db8::/32\")");
      }
    } else {
      Missing(line, path, "networks");
    }
    if (auto v = Enum<std::string_view>(
            table, path, "min_tls",
            {{"1.0", "1.0"}, {"1.1", "1.1"}, {"1.2", "1.2"}, {"1.3", "1.3"}})) {
      floor.min_tls = std::string(*v);
    } else if (!table.contains("min_tls")) {
      Missing(line, path, "min_tls");
    }
    out.tls_floor.push_back(std::move(floor));
  }
}

void Loader::LoadSimpleSections(const toml::table& root, Config& config) {
  if (const toml::table* auth = Section(root, kAuthSchema)) {
    if (auto v = Path(*auth, "auth", "passwd")) config.auth.passwd = *v;
    // Failure counts and the window of the AUTH throttle (policy/auth_throttle.h).
    constexpr int64_t kMaxFailures = 1000000;
    const std::optional<int64_t> slow = Int(*auth, "auth", "slow_after", 1, kMaxFailures);
    const std::optional<int64_t> refuse = Int(*auth, "auth", "refuse_after", 1, kMaxFailures);
    if (slow) config.auth.slow_after = static_cast<int>(*slow);
    if (refuse) config.auth.refuse_after = static_cast<int>(*refuse);
    // Judged only when neither key is bad (a bad one is reported already), against the other's
    // default when it is absent.
    const bool slow_bad = !slow && auth->contains("slow_after");
    const bool refuse_bad = !refuse && auth->contains("refuse_after");
    if ((slow || refuse) && !slow_bad && !refuse_bad &&
        config.auth.slow_after > config.auth.refuse_after) {
      ReportAt(Kind::kValue, slow ? "auth.slow_after" : "auth.refuse_after",
               absl::StrCat("auth.slow_after (", config.auth.slow_after,
                            ") must not be more than auth.refuse_after (", config.auth.refuse_after,
                            "): failures are slowed down before AUTH is refused"));
    }
    // At most a week: a longer memory only keeps an address refused that has long gone.
    if (auto v = Int(*auth, "auth", "failure_window_s", 1, 7 * 24 * 3600)) {
      config.auth.failure_window = absl::Seconds(*v);
    }
  }

  // The default spool path is relative too: with a base directory it lands beside the file.
  config.spool.path = ResolvePath(base_dir_, config.spool.path);
  if (const toml::table* spool = Section(root, kSpoolSchema)) {
    if (auto v = Path(*spool, "spool", "path")) {
      if (v->empty()) {
        ReportAt(Kind::kValue, "spool.path", "must not be empty");
      } else {
        config.spool.path = *v;
      }
    }
    if (auto v =
            Enum<SpoolMode>(*spool, "spool", "mode",
                            {{"durable", SpoolMode::kDurable}, {"discard", SpoolMode::kDiscard}})) {
      config.spool.mode = *v;
    }
    if (auto v =
            Int(*spool, "spool", "segment_size", int64_t{1} << 20, int64_t{1} << 30, " bytes")) {
      config.spool.segment_size = static_cast<uint64_t>(*v);
    }
  }

  if (const toml::table* t = Section(root, kTimeoutsSchema)) {
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    TimeoutsConfig& out = config.timeouts;
    // The unit is in each key's name.
    if (auto v = Int(*t, "timeouts", "idle_s", 1, kMax)) out.idle = absl::Seconds(*v);
    if (auto v = Int(*t, "timeouts", "data_s", 1, kMax)) out.data = absl::Seconds(*v);
    if (auto v = Int(*t, "timeouts", "greet_pause_ms", 0, kMax)) {
      out.greet_pause = absl::Milliseconds(*v);
    }
    if (auto v = Int(*t, "timeouts", "shutdown_grace_s", 0, kMax)) {
      out.shutdown_grace = absl::Seconds(*v);
    }
    if (auto v = Int(*t, "timeouts", "proxy_s", 1, 3600)) out.proxy = absl::Seconds(*v);
  }

  if (const toml::table* control = Section(root, kControlSchema)) {
    if (auto v = Path(*control, "control", "socket")) {
      if (v->size() > kMaxUnixSocketPath) {
        ReportAt(Kind::kValue, "control.socket",
                 absl::StrCat("a Unix socket path may have at most ", kMaxUnixSocketPath,
                              " bytes, this one has ", v->size(), ": ", Quote(*v)));
      } else {
        config.control.socket = *v;
      }
    }
  }

  if (const toml::table* log = Section(root, kLogSchema)) {
    if (auto v = Path(*log, "log", "file")) config.log.file = *v;
  }

  if (const toml::table* metrics = Section(root, kMetricsSchema)) {
    // "" (or no [metrics]) leaves the endpoint off; anything else is an address like a listener's.
    if (std::optional<std::string> address = String(*metrics, "metrics", "address")) {
      if (!address->empty()) {
        absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(*address);
        if (endpoint.ok()) {
          config.metrics.address = *endpoint;
        } else {
          ReportAt(Kind::kValue, "metrics.address", Sv(endpoint.status().message()));
        }
      }
    }
  }
}

void Loader::LoadLimits(const toml::table& root, Config& config) {
  LimitsConfig& out = config.limits;
  const toml::table* limits = Section(root, kLimitsSchema);
  if (limits == nullptr || !limits->contains("exempt")) {
    out.exempt = config.policy.relay_networks;
  }
  if (limits == nullptr) return;
  // Upper bounds far above any real use, so that a typo (an extra digit or two) is caught and a
  // per-shard budget can never overflow.
  constexpr int64_t kMaxCount = 10'000'000;
  if (auto v = Int(*limits, "limits", "max_sessions", 0, kMaxCount, " (0 = no limit)")) {
    out.max_sessions = static_cast<int>(*v);
  }
  if (auto v = Int(*limits, "limits", "max_sessions_per_client", 0, kMaxCount, " (0 = no limit)")) {
    out.max_sessions_per_client = static_cast<int>(*v);
  }
  if (auto v = Int(*limits, "limits", "max_connection_rate_per_client", 0, kMaxCount,
                   " per minute (0 = no limit)")) {
    out.max_connection_rate_per_client = static_cast<int>(*v);
  }
  if (auto v = Int(*limits, "limits", "max_errors", 1, 100000))
    out.max_errors = static_cast<int>(*v);
  if (limits->contains("exempt")) out.exempt = Cidrs(*limits, "limits", "exempt");
}

void Loader::CheckListenersUnique(const Config& config) {
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& a = config.listeners[i];
    const std::string a_path = IndexPath("listener", i);
    for (size_t j = 0; j < i; ++j) {
      const ListenerConfig& b = config.listeners[j];
      const std::string b_path = IndexPath("listener", j);
      if (!a.name.empty() && a.name == b.name) {
        ReportAt(Kind::kValue, SubPath(a_path, "name"),
                 absl::StrCat("duplicate listener name ", Quote(a.name), " (also ", b_path,
                              ", line ", lines_[SubPath(b_path, "name")], ")"));
      }
      // Port 0 asks the kernel for a fresh port each time, so it never collides.
      if (a.address.port != 0 && a.address.port == b.address.port &&
          a.address.address == b.address.address) {
        ReportAt(Kind::kValue, SubPath(a_path, "address"),
                 absl::StrCat("duplicate listener address ", Quote(a.address.ToString()), " (also ",
                              b_path, ", line ", lines_[SubPath(b_path, "address")], ")"));
      }
    }
  }
}

void Loader::CheckListenerTls(const Config& config) {
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    const std::string path = IndexPath("listener", i);
    const std::string_view client_certs =
        listener.client_certs == ClientCertMode::kOptional ? "optional" : "required";
    if (listener.tls == TlsMode::kNone) {
      if (listener.tls_required) {
        ReportAt(Kind::kValue, SubPath(path, "tls_required"),
                 "tls_required = true needs tls = \"starttls\" or \"implicit\" on this listener "
                 "(it has tls = \"none\")");
      }
      if (listener.client_certs != ClientCertMode::kNone) {
        ReportAt(Kind::kValue, SubPath(path, "client_certs"),
                 absl::StrCat("client_certs = \"", Av(client_certs),
                              "\" needs tls = \"starttls\" or \"implicit\" on this listener (it "
                              "has tls = \"none\")"));
      }
      continue;
    }
    // RFC 3207 section 4: a tls_required listener refuses mail before STARTTLS, and no_tls_hosts
    // are never offered STARTTLS, so they could send nothing. Once this was a silent exemption.
    if (listener.tls_required && !listener.no_tls_hosts.empty()) {
      ReportAt(Kind::kValue, SubPath(path, "no_tls_hosts"),
               "no_tls_hosts cannot be used with tls_required = true (those clients would "
               "never be offered STARTTLS, yet need it to send mail); put them on a listener "
               "without tls_required");
    }
    // Missing rather than bad: a typo in [tls] (reported first) may be the cause.
    if (config.tls.pairs.empty()) {
      ReportAt(
          Kind::kMissing, SubPath(path, "tls"),
          absl::StrCat("tls = \"", listener.tls == TlsMode::kStartTls ? "starttls" : "implicit",
                       "\" needs a default certificate: set tls.cert and tls.key"));
    }
    if (listener.client_certs != ClientCertMode::kNone && config.tls.client_ca.empty()) {
      ReportAt(Kind::kMissing, SubPath(path, "client_certs"),
               absl::StrCat("client_certs = \"", Av(client_certs),
                            "\" needs tls.client_ca, the CA bundle client certificates are "
                            "verified against"));
    }
  }
}

// AUTH is offered only over TLS (RFC 4954 section 4, DESIGN.md section 7) and needs users.
void Loader::CheckListenerAuth(const Config& config) {
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& listener = config.listeners[i];
    if (!listener.auth) continue;
    const std::string path = SubPath(IndexPath("listener", i), "auth");
    if (listener.tls == TlsMode::kNone) {
      ReportAt(Kind::kValue, path,
               "AUTH is only offered over TLS: the listener needs tls = \"starttls\" or "
               "\"implicit\"");
    } else if (config.auth.passwd.empty()) {
      ReportAt(Kind::kValue, path, "AUTH needs users: set [auth] passwd");
    }
  }
}

std::optional<NextHop> Loader::Hop(const std::string& text, const std::string& path,
                                   uint32_t line) {
  absl::StatusOr<NextHop> hop = NextHop::Parse(text);
  if (!hop.ok()) {
    Report(Kind::kValue, line, path, Sv(hop.status().message()));
    return std::nullopt;
  }
  if (hop->is_unix) {
    hop->unix_path = ResolvePath(base_dir_, hop->unix_path);
    if (hop->unix_path.size() > kMaxUnixSocketPath) {
      Report(Kind::kValue, line, path,
             absl::StrCat("a Unix socket path may have at most ", kMaxUnixSocketPath,
                          " bytes, this one has ", hop->unix_path.size(), ": ",
                          Quote(hop->unix_path)));
      return std::nullopt;
    }
  }
  return *std::move(hop);
}

void Loader::LoadRoutes(const toml::table& root, Config& config) {
  absl::flat_hash_map<std::string, std::pair<std::string, uint32_t>> seen;
  const std::vector<const toml::table*> routes = TableArray(root, "", "route", kRouteSchema);
  for (size_t i = 0; i < routes.size(); ++i) {
    RouteConfig route;
    if (routes[i] != nullptr) LoadRoute(*routes[i], IndexPath("route", i), seen, route);
    config.routes.push_back(std::move(route));
  }
}

void Loader::LoadRoute(const toml::table& table, const std::string& path,
                       absl::flat_hash_map<std::string, std::pair<std::string, uint32_t>>& seen,
                       RouteConfig& out) {
  const uint32_t line = lines_[path];
  if (std::optional<std::vector<Item>> domains = StringArray(table, path, "domains")) {
    if (domains->empty()) {
      ReportAt(Kind::kValue, SubPath(path, "domains"),
               "must list at least one domain (\"example.test\", \"*.example.test\", or \"*\" "
               "for the default route)");
    }
    for (const Item& item : *domains) {
      std::string name = CanonicalDomain(item.value);
      const std::string_view base =
          name.starts_with("*.") ? std::string_view(name).substr(2) : std::string_view(name);
      // "*" exactly as written: "*." is not the default route.
      if ((name == "*" && item.value != "*") || (name != "*" && !IsDomainName(base, 1))) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat("expected a domain name, \"*.domain\" or \"*\" (the default route), "
                            "got ",
                            Quote(item.value)));
        continue;
      }
      if (auto [it, inserted] = seen.try_emplace(name, item.path, item.line); !inserted) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat(name == "*" ? "only one default route (\"*\") is allowed; " : "",
                            Quote(name), " is already listed at ", it->second.first, ", line ",
                            it->second.second));
        continue;
      }
      out.domains.push_back(std::move(name));
    }
  } else if (!table.contains("domains")) {
    Missing(line, path, "domains");
  }

  bool has_smtp = false;
  bool hops_ok = false;
  if (std::optional<std::vector<Item>> hops = StringArray(table, path, "next_hop")) {
    if (hops->empty()) {
      ReportAt(Kind::kValue, SubPath(path, "next_hop"),
               "must list at least one hop (\"lmtp:127.0.0.1:24\", \"smtp:[192.0.2.5]:25\")");
    }
    hops_ok = !hops->empty();
    for (size_t h = 0; h < hops->size(); ++h) {
      const Item& item = (*hops)[h];
      std::optional<NextHop> hop = Hop(item.value, item.path, item.line);
      if (!hop) {
        hops_ok = false;
        continue;
      }
      const auto previous = std::find(out.next_hop.begin(), out.next_hop.end(), *hop);
      if (previous != out.next_hop.end()) {
        Report(Kind::kValue, item.line, item.path,
               absl::StrCat(Quote(hop->ToString()), " is listed twice in this route"));
        hops_ok = false;
        continue;
      }
      has_smtp = has_smtp || hop->protocol == HopProtocol::kSmtp;
      out.next_hop.push_back(*std::move(hop));
    }
  } else if (!table.contains("next_hop")) {
    Missing(line, path, "next_hop");
  }

  const std::optional<RouteTls> tls = Enum<RouteTls>(table, path, "tls",
                                                     {{"none", RouteTls::kNone},
                                                      {"opportunistic", RouteTls::kOpportunistic},
                                                      {"verify", RouteTls::kVerify}});
  if (tls) {
    out.tls = *tls;
    // Judged only on a list of good hops: LMTP hops are local and always plain.
    if (hops_ok && !has_smtp && *tls != RouteTls::kNone) {
      ReportAt(Kind::kValue, SubPath(path, "tls"),
               "tls applies to smtp: hops and this route has only lmtp: hops; leave tls out or "
               "set \"none\"");
    }
  } else if (!table.contains("tls") && hops_ok && !has_smtp) {
    out.tls = RouteTls::kNone;
  }
  if (auto v = Path(table, path, "tls_ca")) out.tls_ca = *v;
  if (std::optional<std::string> name = String(table, path, "tls_name")) {
    std::string canonical = CanonicalDomain(*name);
    if (name->empty() || IsDomainName(canonical, 1)) {
      out.tls_name = std::move(canonical);
    } else {
      ReportAt(
          Kind::kValue, SubPath(path, "tls_name"),
          absl::StrCat("expected the domain name the hop's certificate holds, got ", Quote(*name)));
    }
  }
  if (out.tls == RouteTls::kVerify) {
    if (out.tls_ca.empty() && !table.contains("tls_ca")) {
      ReportAt(Kind::kValue, SubPath(path, "tls"),
               "tls = \"verify\" needs tls_ca, the CA bundle the hop's certificate is verified "
               "against");
    } else if (out.tls_ca.empty() && table.contains("tls_ca") && table.get("tls_ca")->is_string()) {
      ReportAt(Kind::kValue, SubPath(path, "tls_ca"), "must not be empty with tls = \"verify\"");
    }
    if (out.tls_name.empty() && !table.contains("tls_name")) {
      ReportAt(Kind::kValue, SubPath(path, "tls"),
               "tls = \"verify\" needs tls_name, the name the hop's certificate must hold (hops "
               "are IP addresses, so there is no host name to check)");
    } else if (out.tls_name.empty() && table.contains("tls_name") &&
               table.get("tls_name")->is_string()) {
      ReportAt(Kind::kValue, SubPath(path, "tls_name"), "must not be empty with tls = \"verify\"");
    }
  } else if (tls || !table.contains("tls")) {
    for (std::string_view key : {std::string_view("tls_ca"), std::string_view("tls_name")}) {
      if (table.contains(key)) {
        ReportAt(Kind::kValue, SubPath(path, key),
                 absl::StrCat(Av(key), " is used only with tls = \"verify\""));
      }
    }
  }

  if (auto v = Int(table, path, "max_connections", 1, 1000, " per shard and hop")) {
    out.max_connections = static_cast<int>(*v);
  }
  if (auto v = Bool(table, path, "verify_recipients")) out.verify_recipients = *v;
  constexpr int64_t kYear = 365 * 24 * 3600;
  if (auto v = Int(table, path, "verify_positive_ttl_s", 1, kYear)) {
    out.verify_positive_ttl = absl::Seconds(*v);
  }
  if (auto v = Int(table, path, "verify_negative_ttl_s", 1, kYear)) {
    out.verify_negative_ttl = absl::Seconds(*v);
  }
  if (auto v = Enum<VerifyUnreachable>(
          table, path, "verify_unreachable",
          {{"tempfail", VerifyUnreachable::kTempfail}, {"accept", VerifyUnreachable::kAccept}})) {
    out.verify_unreachable = *v;
  }
}

void Loader::LoadDelivery(const toml::table& root, Config& config) {
  const toml::table* delivery = Section(root, kDeliverySchema);
  if (delivery == nullptr) return;
  DeliveryConfig& out = config.delivery;
  if (std::optional<std::string> text = String(*delivery, "delivery", "bounce_next_hop")) {
    out.bounce_next_hop =
        Hop(*text, "delivery.bounce_next_hop", lines_["delivery.bounce_next_hop"]);
  }
  constexpr int64_t kDay = 24 * 3600;
  const std::optional<int64_t> first = Int(*delivery, "delivery", "retry_first_s", 1, kDay);
  const std::optional<int64_t> max = Int(*delivery, "delivery", "retry_max_s", 1, kDay);
  if (first) out.retry_first = absl::Seconds(*first);
  if (max) out.retry_max = absl::Seconds(*max);
  const bool first_bad = !first && delivery->contains("retry_first_s");
  const bool max_bad = !max && delivery->contains("retry_max_s");
  if ((first || max) && !first_bad && !max_bad && out.retry_first > out.retry_max) {
    ReportAt(Kind::kValue, first ? "delivery.retry_first_s" : "delivery.retry_max_s",
             absl::StrCat("delivery.retry_first_s (", absl::ToInt64Seconds(out.retry_first),
                          ") must not be more than delivery.retry_max_s (",
                          absl::ToInt64Seconds(out.retry_max),
                          "): retries start at the first and double up to the second"));
  }
  // 0: the first failed attempt is final, as Postfix's maximal_queue_lifetime = 0.
  if (auto v = Int(*delivery, "delivery", "max_lifetime_s", 0, 100 * kDay)) {
    out.max_lifetime = absl::Seconds(*v);
  }
  if (auto v = Int(*delivery, "delivery", "hop_down_s", 0, 3600, " (0: never mark a hop down)")) {
    out.hop_down = absl::Seconds(*v);
  }
  if (auto v = Int(*delivery, "delivery", "connect_timeout_s", 1, 600)) {
    out.connect_timeout = absl::Seconds(*v);
  }
  if (auto v = Int(*delivery, "delivery", "command_timeout_s", 1, 3600)) {
    out.command_timeout = absl::Seconds(*v);
  }
  if (auto v = Int(*delivery, "delivery", "data_timeout_s", 1, kDay)) {
    out.data_timeout = absl::Seconds(*v);
  }
}

void Loader::CheckRoutes(const Config& config) {
  if (config.routes.empty()) return;
  // Missing rather than bad: a typo in [delivery] (reported first) may be the cause.
  if (!config.delivery.bounce_next_hop && !lines_.contains("delivery.bounce_next_hop")) {
    const auto section = lines_.find("delivery");
    Report(Kind::kMissing, section != lines_.end() ? section->second : lines_["route[0]"],
           "delivery",
           "missing required key \"bounce_next_hop\": with [[route]] set, failed deliveries are "
           "reported to their senders (RFC 3464 DSNs) through this hop");
  }
  // Every local domain must leave by some route: its own, a wildcard above it, or the default.
  // Judged only on an otherwise good file: a bad or missing domain list would make it noise.
  if (!errors_.empty()) return;
  absl::flat_hash_map<std::string_view, size_t> routed;
  for (size_t r = 0; r < config.routes.size(); ++r) {
    for (const std::string& domain : config.routes[r].domains) routed.emplace(domain, r);
  }
  if (routed.contains("*")) return;
  for (size_t d = 0; d < config.policy.local_domains.size(); ++d) {
    const std::string& domain = config.policy.local_domains[d];
    bool covered = routed.contains(domain);
    for (size_t dot = domain.find('.'); !covered && dot != std::string::npos;
         dot = domain.find('.', dot + 1)) {
      covered = routed.contains(absl::StrCat("*", domain.substr(dot)));
    }
    if (covered) continue;
    Report(Kind::kValue, lines_["policy.local_domains"], IndexPath("policy.local_domains", d),
           absl::StrCat(Quote(domain),
                        " has no [[route]]: mail accepted for it could never be delivered; "
                        "list it in a route's domains or add a default route (domains = "
                        "[\"*\"])"));
  }
}

void Loader::LoadMilters(const toml::table& root, Config& config) {
  const std::vector<const toml::table*> milters = TableArray(root, "", "milter", kMilterSchema);
  absl::flat_hash_map<std::string, std::string> seen;  // name -> path of its first use
  for (size_t i = 0; i < milters.size(); ++i) {
    MilterConfig milter;
    const std::string path = IndexPath("milter", i);
    if (milters[i] != nullptr) LoadMilter(*milters[i], path, milter);
    if (!milter.name.empty()) {
      if (auto [it, inserted] = seen.try_emplace(milter.name, path); !inserted) {
        ReportAt(Kind::kValue, SubPath(path, "name"),
                 absl::StrCat("duplicate milter name ", Quote(milter.name), " (also ", it->second,
                              ", line ", lines_[SubPath(it->second, "name")], ")"));
      }
    }
    config.milters.push_back(std::move(milter));
  }
  CheckListenerMilters(config);
}

void Loader::LoadMilter(const toml::table& table, const std::string& path, MilterConfig& out) {
  const uint32_t line = lines_[path];
  if (std::optional<std::string> name = Name(table, path)) {
    out.name = *name;
  } else if (!table.contains("name")) {
    Missing(line, path, "name");
  }
  if (std::optional<std::string> address = String(table, path, "address")) {
    const std::string key = SubPath(path, "address");
    const std::string_view text = *address;
    if (text.starts_with("unix:") && text.size() > 5) {
      out.is_unix = true;
      out.unix_path = ResolvePath(base_dir_, text.substr(5));
      if (out.unix_path.size() > kMaxUnixSocketPath) {
        ReportAt(Kind::kValue, key,
                 absl::StrCat("a Unix socket path may have at most ", kMaxUnixSocketPath,
                              " bytes, this one has ", out.unix_path.size(), ": ",
                              Quote(out.unix_path)));
      }
    } else if (text.starts_with("inet:")) {
      absl::StatusOr<Endpoint> endpoint = Endpoint::Parse(text.substr(5));
      if (!endpoint.ok()) {
        ReportAt(Kind::kValue, key,
                 absl::StrCat("expected \"inet:ADDRESS:PORT\" (\"inet:127.0.0.1:11332\", "
                              "\"inet:[::1]:11332\"): ",
                              endpoint.status().message()));
      } else if (endpoint->port == 0) {
        ReportAt(Kind::kValue, key,
                 absl::StrCat("port 0 in ", Quote(text), ": give the milter's port"));
      } else {
        out.inet = *endpoint;
      }
    } else {
      ReportAt(Kind::kValue, key,
               absl::StrCat("expected \"inet:ADDRESS:PORT\" or \"unix:PATH\" (IP addresses only, "
                            "no host names), got ",
                            Quote(text)));
    }
  } else if (!table.contains("address")) {
    Missing(line, path, "address");
  }
  constexpr int64_t kHour = 3600;
  if (auto v = Int(table, path, "connect_timeout_s", 1, kHour)) {
    out.connect_timeout = absl::Seconds(*v);
  }
  if (auto v = Int(table, path, "command_timeout_s", 1, kHour)) {
    out.command_timeout = absl::Seconds(*v);
  }
  if (auto v = Int(table, path, "content_timeout_s", 1, kHour)) {
    out.content_timeout = absl::Seconds(*v);
  }
  if (auto v = Enum<MilterDefaultAction>(table, path, "default_action",
                                         {{"tempfail", MilterDefaultAction::kTempfail},
                                          {"accept", MilterDefaultAction::kAccept},
                                          {"reject", MilterDefaultAction::kReject}})) {
    out.default_action = *v;
  }
}

void Loader::CheckListenerMilters(const Config& config) {
  absl::flat_hash_map<std::string_view, size_t> known;
  for (size_t i = 0; i < config.milters.size(); ++i) {
    if (!config.milters[i].name.empty()) known.emplace(config.milters[i].name, i);
  }
  // A bad [[milter]] name is reported already; its references would only repeat it.
  const bool milters_ok = std::none_of(config.milters.begin(), config.milters.end(),
                                       [](const MilterConfig& m) { return m.name.empty(); });
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    const std::vector<std::string>& names = config.listeners[l].milters;
    const std::string list_path = SubPath(IndexPath("listener", l), "milters");
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string item_path = IndexPath(list_path, i);
      if (std::find(names.begin(), names.begin() + static_cast<ptrdiff_t>(i), names[i]) !=
          names.begin() + static_cast<ptrdiff_t>(i)) {
        ReportAt(Kind::kValue, item_path,
                 absl::StrCat(Quote(names[i]), " is listed twice: a milter is called once"));
        continue;
      }
      if (milters_ok && !known.contains(names[i])) {
        ReportAt(Kind::kValue, item_path,
                 absl::StrCat("no [[milter]] named ", Quote(names[i]),
                              known.empty() ? " (there is no [[milter]] table)" : ""));
      }
    }
  }
}

absl::StatusOr<Config> Loader::Load(const toml::table& root) {
  Config config;
  CheckKeys(root, "", kRootSchema);

  if (std::optional<std::string> hostname = String(root, "", "hostname")) {
    std::string canonical = CanonicalDomain(*hostname);
    if (IsDomainName(canonical, 2)) {
      // Kept as written (minus a trailing dot): it is what the greeting shows.
      if (!hostname->empty() && hostname->back() == '.') hostname->pop_back();
      config.hostname = *hostname;
    } else {
      ReportAt(Kind::kValue, "hostname",
               absl::StrCat("expected a fully qualified domain name such as "
                            "\"mx.example.com\", got ",
                            Quote(*hostname)));
    }
  } else if (!root.contains("hostname")) {
    Missing(0, "", "hostname");
  }
  if (auto v = Int(root, "", "workers", 0, kMaxWorkers)) config.workers = static_cast<int>(*v);
  if (auto v = Bool(root, "", "pin_threads")) config.pin_threads = *v;

  const toml::node* listeners_node = root.get("listener");
  const std::vector<const toml::table*> listeners =
      TableArray(root, "", "listener", kListenerSchema);
  for (size_t i = 0; i < listeners.size(); ++i) {
    // A placeholder for an element that is not a table keeps config indices equal to file ones.
    ListenerConfig listener;
    if (listeners[i] != nullptr) LoadListener(*listeners[i], IndexPath("listener", i), listener);
    config.listeners.push_back(std::move(listener));
  }
  if (listeners_node == nullptr) {
    Report(Kind::kMissing, 0, "", "missing required key \"listener\" (at least one [[listener]])");
  } else if (listeners_node->is_array() && listeners_node->as_array()->empty()) {
    Report(Kind::kValue, LineOf(*listeners_node), "listener",
           "at least one [[listener]] is required");
  }
  CheckListenersUnique(config);

  LoadTls(root, config.tls);
  CheckListenerTls(config);
  LoadPolicy(root, config.policy);
  LoadLimits(root, config);
  LoadSimpleSections(root, config);

  CheckListenerAuth(config);
  LoadRoutes(root, config);
  LoadDelivery(root, config);
  CheckRoutes(config);
  LoadMilters(root, config);
  RINGMX_RETURN_IF_ERROR(Finish());
  return config;
}

}  // namespace

std::string MilterConfig::AddressString() const {
  if (is_unix) return absl::StrCat("unix:", unix_path);
  return absl::StrCat("inet:", inet.ToString());
}

absl::StatusOr<Config> ParseConfig(std::string_view toml_text, std::string_view source_name,
                                   std::string_view base_dir) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(Av(source_name), ":", e.source().begin.line,
                     ": TOML syntax error: ", OneLine(e.description())));
  }
  return Loader(source_name, base_dir).Load(root);
}

// Far above any real config; a bound so that pointing -c at the wrong file fails clearly.
constexpr size_t kMaxConfigFileBytes = size_t{16} << 20;

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  RINGMX_ASSIGN_OR_RETURN(
      std::string text,
      ReadWholeFile(path, absl::StrCat("read config file ", Quote(path)), kMaxConfigFileBytes));

  // Absolute, so that paths stay right if the process changes directory later.
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  if (ec) absolute = path;
  const std::string base_dir = absolute.lexically_normal().parent_path().string();
  return ParseConfig(text, path, base_dir);
}

std::vector<std::string> ConfigSchemaKeys() {
  std::vector<std::string> keys;
  for (const TableSchema* schema : kAllSchemas) {
    for (std::string_view key : schema->keys) {
      std::string full = SubPath(schema->path, key);
      // A key that is itself a table ("listener", "tls.sni") is not a leaf.
      bool is_table = false;
      for (const TableSchema* other : kAllSchemas) is_table = is_table || other->path == full;
      if (!is_table) keys.push_back(std::move(full));
    }
  }
  return keys;
}

}  // namespace ringmx::core

// The PROXY preamble stage (docs/proxy.md): on a listener with `proxy_protocol`, the bytes a
// connection receives before its session exists. It checks that the socket's peer may speak for a
// client (`proxy_trusted`), parses the header (smtp::ProxyHeaderParser) from reads split
// anywhere, and keeps the deadline (`timeouts.proxy_s`). It owns no socket and no clock:
// net/connection.cc feeds it what the receive brings and asks it about the shard's time, so it is
// unit-tested alone (tests/net/preamble_test.cc).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"

#include "core/config.h"
#include "core/ip.h"
#include "smtp/proxy_header.h"

namespace ringmx::net {

// Shard-local: one per connection on a proxy_protocol listener, until its header is in.
class ProxyPreamble {
 public:
  // What one Feed() came to.
  struct Outcome {
    enum class State : uint8_t {
      kNeedMore,  // the header is not complete yet: feed the next read
      kDone,      // the header is in: see `client`, `local`, `balancer`, `leftover`
      kFailed,    // malformed: `reason` and `detail` are for the log line; close without a reply
    };
    State state = State::kNeedMore;
    // kDone with a PROXY TCP4/TCP6 header: the client the header names and the address it
    // connected to (the balancer's front end). nullopt for LOCAL (the balancer's health checks),
    // UNKNOWN and the families not taken: the socket's own addresses stay (spec 2.1, 2.2).
    std::optional<core::Endpoint> client;
    std::optional<core::Endpoint> local;
    // kDone: the socket's peer, which relayed the connection.
    core::Endpoint balancer;
    // kDone: the bytes of this Feed()'s input after the header: the client's first SMTP or TLS
    // bytes. A view into the input given to Feed(), valid as long as it is.
    std::string_view leftover;
    // kFailed: "malformed"; `detail` the parser's error text.
    std::string reason;
    std::string detail;
  };

  // `peer` is the socket's peer (the balancer, or someone pretending to be one); `now` starts
  // the deadline of `timeout` (timeouts.proxy_s).
  ProxyPreamble(const core::ListenerConfig& listener, const core::Endpoint& peer,
                absl::Duration timeout, absl::Time now);

  // The peer is inside the listener's proxy_trusted. When false the connection is closed at once
  // (reason "untrusted"), without reading anything.
  bool trusted() const { return trusted_; }
  absl::Time deadline() const { return deadline_; }
  // True once `now` is at or past the deadline with the header not in.
  bool Expired(absl::Time now) const { return now >= deadline_; }
  // The log detail of a timeout: "no header within 5 s".
  std::string TimeoutDetail() const;

  // Consumes the header's bytes of `bytes` (a read, split anywhere). Once kDone or kFailed the
  // stage is over and must not be fed again.
  Outcome Feed(std::string_view bytes);

 private:
  smtp::ProxyHeaderParser parser_;
  const core::Endpoint peer_;
  const absl::Duration timeout_;
  const absl::Time deadline_;
  bool trusted_ = false;
};

// The parser versions a listener's `proxy_protocol` takes (kNone is taken as kAny).
smtp::ProxyVersions ProxyVersionsOf(core::ProxyProtocol protocol);

}  // namespace ringmx::net

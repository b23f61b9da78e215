// Transcript helpers for smtp::Session tests: a fixed configuration and connection, a driver that
// feeds bytes and answers deliveries the way net/ does, and a checker that replays a transcript
// split at every byte boundary and one byte at a time and expects the same result each time.
#pragma once

#include <stddef.h>

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

#include "core/config.h"
#include "core/snapshot.h"
#include "core/spool_record.h"
#include "core/tls_facts.h"
#include "policy/policy.h"
#include "smtp/session.h"

namespace ringmx::smtp::testing {

// 2023-11-14T22:13:20Z, a Tuesday.
inline const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
inline constexpr char kHostname[] = "mx.example.test";
inline constexpr uint64_t kMaxMessageSize = 10000;
inline constexpr int kMaxRecipients = 3;

// hostname mx.example.test; listener "mx" on 192.0.2.10:25; local domains example.test and
// Example.ORG; relay network 10.0.0.0/8; 3 recipients; 10000-octet messages; idle 300 s, data
// 600 s.
core::Config TestConfig();

// A snapshot and connection facts for one test session: client 203.0.113.5:40000.
struct Env {
  explicit Env(core::Config config = TestConfig());
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  std::shared_ptr<const core::Snapshot> snapshot;
  policy::ConnectionFacts facts;
  // Deliveries are answered with these results in order, then OK.
  std::vector<absl::Status> delivery_results;
  // Stored pieces of streamed messages (Output::fragment) likewise.
  std::vector<absl::Status> fragment_results;
  // Checks (Output::check) are answered at once with these in order, then kAccept.
  std::vector<CheckAnswer> check_answers;
  // Set for an implicit-TLS connection: OnTlsEstablished() with these facts before Start().
  std::optional<core::TlsFacts> implicit_tls;
};

// Written into Transcript::replies where the session asked for the TLS handshake (`start_tls`),
// so that a transcript shows where the client switched to TLS.
inline constexpr char kTlsHandshake[] = "[TLS handshake]\r\n";

struct Transcript {
  std::string replies;  // every reply, greeting included
  // Delivered messages; a streamed one with its pieces joined back into `body` (its `fragments`
  // says how many there were).
  std::vector<core::SpoolRecord> records;
  std::vector<std::string> aborted_streams;  // Output::abort_streams, in order
  uint32_t fragments = 0;                    // pieces handed over in all
  bool closed = false;
  std::string end_reason;
  SessionStats stats;
  size_t max_memory = 0;             // largest MemoryUsageForTest() seen after any call
  int tls_starts = 0;                // outputs with `start_tls` set
  bool tls = false;                  // facts().tls at the end
  std::string helo;                  // helo() at the end
  std::vector<CheckRequest> checks;  // every Output::check, in order (secrets included)
  std::vector<std::string> log;      // every Output::log line, in order
  std::string auth_identity;         // facts().auth_identity at the end
};

// How a STARTTLS handshake ends in RunTls()/CheckTls().
struct TlsPlan {
  core::TlsFacts facts;
  bool fail = false;     // OnTlsFailed() instead of OnTlsEstablished()
  std::string over_tls;  // what the client sends once TLS is up
};

// Starts a session at kT0 and feeds `input` cut at the ascending offsets `cuts`, all at kT0,
// answering each delivery at once (like the driver).
Transcript Run(const Env& env, std::string_view input, const std::vector<size_t>& cuts = {});

// Runs `input` whole, then split in two at every offset (a sample of offsets for inputs over
// 4 KiB), then one byte at a time, and EXPECTs every run to give the same transcript. Returns
// the whole-input transcript.
Transcript Check(const Env& env, std::string_view input);

// A conversation with a STARTTLS upgrade, driven like a careless driver would: all of `plaintext`
// is fed (cut at `cuts`), even after the session asked for `start_tls`; then the handshake ends as
// `plan` says (OnTlsEstablished is called whether or not it was due), then `plan.over_tls` is fed
// (cut at `tls_cuts`).
Transcript RunTls(const Env& env, std::string_view plaintext, const TlsPlan& plan,
                  const std::vector<size_t>& cuts = {}, const std::vector<size_t>& tls_cuts = {});

// RunTls() whole, then with `plaintext` split at every offset, then with `plan.over_tls` split at
// every offset, then both one byte at a time; EXPECTs the same transcript every time.
Transcript CheckTls(const Env& env, std::string_view plaintext, const TlsPlan& plan);

// Joins lines, each followed by CRLF.
std::string Lines(std::initializer_list<std::string_view> lines);

// "220 mx.example.test ESMTP ringmx\r\n"
std::string Greeting();
// The full EHLO reply.
std::string EhloReply();

}  // namespace ringmx::smtp::testing

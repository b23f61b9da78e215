// Fuzz target: the kernel-TLS record rules (tls/ktls_records.h), fed a stream of records as the
// kernel would hand them up, checked against the rules as RFC 8446 and RFC 5246 state them, with
// each KeyUpdate followed by a real key advance (tls::AdvanceTrafficKeys) on a TLS 1.3 hand-off.
//
// Input: [version selector] then records: [type][length][payload...] until the input ends.
#include <stddef.h>
#include <stdint.h>

#include <string>
#include <string_view>

#include "core/check.h"
#include "tests/fuzz/fuzz_input.h"
#include "tls/ktls_keys.h"
#include "tls/ktls_records.h"

namespace ringmx::fuzz {
namespace {

using Action = tls::KtlsRecordDecision::Action;

// The expected verdict, from the RFCs rather than from tls/ktls_records.cc.
Action Expected(uint16_t version, uint8_t type, std::string_view p) {
  const auto at = [&](size_t i) { return i < p.size() ? static_cast<uint8_t>(p[i]) : 0x100; };
  switch (type) {
    case 23:  // application_data
      return Action::kSessionData;
    case 21:  // alert: level, description
      return p.size() >= 2 && at(1) == 0 ? Action::kPeerClosed : Action::kPeerAlert;
    case 22:  // handshake
      if (version == 0x0304 && p.size() == 5 && at(0) == 24 && at(1) == 0 && at(2) == 0 &&
          at(3) == 1 && (at(4) == 0 || at(4) == 1)) {
        return Action::kKeyUpdate;
      }
      if (version == 0x0303 && at(0) == 1) return Action::kRefuseRenegotiation;
      return Action::kFail;
    default:
      return Action::kFail;
  }
}

tls::KtlsHandoff Tls13Handoff(bool sha384) {
  tls::KtlsHandoff keys;
  keys.tls_version = 0x0304;
  keys.cipher = sha384 ? tls::KtlsCipher::kAes256Gcm : tls::KtlsCipher::kAes128Gcm;
  keys.digest = sha384 ? "SHA384" : "SHA256";
  const size_t hash = sha384 ? 48 : 32;
  keys.rx_secret.assign(hash, '\x11');
  keys.tx_secret.assign(hash, '\x22');
  keys.rx.key.assign(sha384 ? 32 : 16, '\x33');
  keys.rx.iv.assign(12, '\x44');
  keys.rx.rec_seq = 7;
  keys.tx = keys.rx;
  return keys;
}

}  // namespace
}  // namespace ringmx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ringmx;
  using namespace ringmx::fuzz;
  FuzzInput in(data, size);
  const uint8_t selector = in.Byte();
  // Mostly the two versions a hand-off can have; sometimes anything.
  const uint16_t version = (selector & 3) == 0   ? tls::kTls12
                           : (selector & 3) == 1 ? tls::kTls13
                           : (selector & 3) == 2 ? static_cast<uint16_t>(0x0300 | (selector >> 2))
                                                 : in.U16();
  tls::KtlsHandoff keys = Tls13Handoff((selector & 4) != 0);
  keys.tls_version = version;
  int records = 0;
  while (!in.empty() && records < 64) {
    ++records;
    const uint8_t type = in.Byte();
    const std::string_view payload = in.ShortString();
    const tls::KtlsRecordDecision d = tls::ClassifyKtlsRecord(version, type, payload);
    RINGMX_CHECK(d.action == Expected(version, type, payload));
    switch (d.action) {
      case Action::kSessionData:
      case Action::kPeerClosed:
      case Action::kRefuseRenegotiation:
        RINGMX_CHECK(d.reason.empty());
        break;
      case Action::kPeerAlert:
        RINGMX_CHECK(payload.size() >= 2 ? d.peer_alert == static_cast<uint8_t>(payload[1])
                                         : d.peer_alert == -1);
        RINGMX_CHECK(d.peer_alert != 0);
        break;
      case Action::kKeyUpdate: {
        RINGMX_CHECK(d.update_requested == (payload[4] == 1));
        // What net/ does next: advance the receive key. Under TLS 1.3 it must work and change
        // the key; the sequence number restarts at 0 (RFC 8446 §5.3).
        const std::string old_key = keys.rx.key;
        const absl::Status advanced = tls::AdvanceTrafficKeys(keys, tls::KtlsSide::kRx);
        RINGMX_CHECK(advanced.ok());
        RINGMX_CHECK(keys.rx.key != old_key && keys.rx.key.size() == old_key.size());
        RINGMX_CHECK(keys.rx.rec_seq == 0 && keys.rx.iv.size() == 12);
        break;
      }
      case Action::kFail:
        RINGMX_CHECK(d.fatal_alert == tls::kAlertUnexpectedMessage);
        RINGMX_CHECK(!d.reason.empty() && d.reason.size() < 100);
        break;
    }
    if (d.action == Action::kPeerClosed || d.action == Action::kPeerAlert ||
        d.action == Action::kFail) {
      break;  // the connection ends: net/ reads no further record
    }
  }
  return 0;
}

// The kTLS key hand-off, proved without a kernel: after the handshake the engine exports the keys,
// IVs and sequence numbers it would give to TLS_TX/TLS_RX, and this test decrypts the next real
// records of the live session with EVP AEAD on its own (nonce, AAD and record format built here
// from RFC 8446 §5.2-5.3 and RFC 5246/5288/7905), in both directions.
#include <stdint.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "tests/tls/tls_test_util.h"
#include "tls/engine.h"
#include "tls/ktls_keys.h"

namespace ringmx::tls {
namespace {

using testing::BaseConfig;
using testing::ClientOptions;
using ::testing::HasSubstr;
using testing::Message;
using testing::MustBuild;
using testing::MustEngine;
using testing::Record;
using testing::SplitRecords;
using testing::TestClient;

constexpr size_t kTagLen = 16;

std::string Be64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

std::string Be16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

// iv XOR the sequence number left-padded to 12 bytes (RFC 8446 §5.3, RFC 7905 §2).
std::string XorNonce(const std::string& iv, uint64_t seq) {
  std::string nonce = iv;
  const std::string s = Be64(seq);
  for (size_t i = 0; i < 8; ++i) nonce[4 + i] = static_cast<char>(nonce[4 + i] ^ s[i]);
  return nonce;
}

const EVP_CIPHER* AeadFor(KtlsCipher cipher) {
  switch (cipher) {
    case KtlsCipher::kAes128Gcm:
      return EVP_aes_128_gcm();
    case KtlsCipher::kAes256Gcm:
      return EVP_aes_256_gcm();
    case KtlsCipher::kChaCha20Poly1305:
      return EVP_chacha20_poly1305();
  }
  return nullptr;
}

std::optional<std::string> AeadOpen(KtlsCipher cipher, const std::string& key,
                                    const std::string& nonce, const std::string& aad,
                                    const std::string& sealed) {
  if (sealed.size() < kTagLen || nonce.size() != 12) return std::nullopt;
  const std::string ct = sealed.substr(0, sealed.size() - kTagLen);
  std::string tag = sealed.substr(sealed.size() - kTagLen);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::string out(ct.size() + 16, '\0');
  int len = 0;
  int total = 0;
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* n = reinterpret_cast<const unsigned char*>(nonce.data());
  bool ok =
      EVP_DecryptInit_ex(ctx, AeadFor(cipher), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx, nullptr, nullptr, k, n) == 1 &&
      EVP_DecryptUpdate(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len,
                        reinterpret_cast<const unsigned char*>(ct.data()),
                        static_cast<int>(ct.size())) == 1;
  total = len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag.data()) == 1 &&
       EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + total, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  ERR_clear_error();
  if (!ok) return std::nullopt;
  out.resize(static_cast<size_t>(total + len));
  return out;
}

// Decrypts one application record sent in direction `dir` with sequence number `seq`, the way
// the kernel would with the exported material. Returns the plaintext of an application_data
// record, nullopt if authentication fails (wrong key, iv or sequence number).
std::optional<std::string> OpenRecord(const KtlsHandoff& h, const KtlsDirection& dir, uint64_t seq,
                                      const Record& record) {
  if (record.type != 23) return std::nullopt;
  if (h.tls_version == TLS1_3_VERSION) {
    // RFC 8446 §5.2: AAD is the record header; the plaintext ends with the real content type
    // followed by zero padding.
    std::optional<std::string> inner =
        AeadOpen(h.cipher, dir.key, XorNonce(dir.iv, seq), record.header, record.body);
    if (!inner) return std::nullopt;
    while (!inner->empty() && inner->back() == '\0') inner->pop_back();
    if (inner->empty() || inner->back() != 23) return std::nullopt;
    inner->pop_back();
    return inner;
  }
  // TLS 1.2 (RFC 5246 §6.2.3.3): AAD = seq_num + type + version + length of the plaintext.
  std::string nonce;
  std::string sealed;
  if (h.cipher == KtlsCipher::kChaCha20Poly1305) {
    nonce = XorNonce(dir.iv, seq);  // RFC 7905 §2
    sealed = record.body;
  } else {
    // RFC 5288 §3: nonce = salt (4) + explicit nonce carried in the record (8).
    if (record.body.size() < 8 + kTagLen) return std::nullopt;
    nonce = dir.iv.substr(0, 4) + record.body.substr(0, 8);
    sealed = record.body.substr(8);
  }
  const std::string aad = Be64(seq) + std::string(1, static_cast<char>(record.type)) +
                          Be16(static_cast<size_t>(record.version)) + Be16(sealed.size() - kTagLen);
  return AeadOpen(h.cipher, dir.key, nonce, aad, sealed);
}

// TLS 1.3 only: decrypts a record and returns its inner content type and content (RFC 8446
// §5.2), so that handshake messages (KeyUpdate) can be read too.
std::optional<std::pair<int, std::string>> OpenRecord13(const KtlsHandoff& h,
                                                        const KtlsDirection& dir, uint64_t seq,
                                                        const Record& record) {
  if (record.type != 23) return std::nullopt;
  std::optional<std::string> inner =
      AeadOpen(h.cipher, dir.key, XorNonce(dir.iv, seq), record.header, record.body);
  if (!inner) return std::nullopt;
  while (!inner->empty() && inner->back() == '\0') inner->pop_back();
  if (inner->empty()) return std::nullopt;
  const int type = static_cast<unsigned char>(inner->back());
  inner->pop_back();
  return std::make_pair(type, *inner);
}

struct CipherCase {
  std::string test_name;
  int version;
  std::string client_ciphers;  // TLS 1.2 list or TLS 1.3 suite
  std::string server_cipher_name;
  KtlsCipher cipher;
  size_t key_len;
};

class KtlsExportTest : public ::testing::TestWithParam<CipherCase> {
 protected:
  // Handshakes; the client sends "EHLO early" as soon as its side is done, so for TLS 1.3 the
  // record travels with the client's Finished and OpenSSL has it buffered when we export.
  void Connect() {
    const CipherCase& c = GetParam();
    ClientOptions options;
    options.min_version = c.version;
    options.max_version = c.version;
    (c.version == TLS1_3_VERSION ? options.ciphersuites : options.ciphers) = c.client_ciphers;
    client_ = std::make_unique<TestClient>(options);
    engine_ = MustEngine(MustBuild(BaseConfig()));
    ASSERT_NE(engine_, nullptr);
    bool wrote = false;
    bool established = false;
    for (int round = 0; round < 10 && !(established && wrote); ++round) {
      ASSERT_GE(client_->Step(), 0) << client_->error();
      if (client_->done() && !wrote) {
        client_->Write("EHLO early\r\n");
        wrote = true;
      }
      engine_->PutCiphertext(client_->Take());
      absl::StatusOr<Progress> p = engine_->Handshake();
      ASSERT_TRUE(p.ok()) << p.status();
      established = *p == Progress::kEstablished;
      client_->Put(engine_->TakeCiphertext());
    }
    ASSERT_TRUE(established && wrote);
    EXPECT_EQ(engine_->facts().cipher, c.server_cipher_name);
  }

  std::unique_ptr<TestClient> client_;
  std::unique_ptr<Engine> engine_;
};

TEST_P(KtlsExportTest, ExportedKeysDecryptTheNextRecordsBothWays) {
  const CipherCase& c = GetParam();
  ASSERT_NO_FATAL_FAILURE(Connect());
  absl::StatusOr<KtlsHandoff> h = engine_->ExportForKernel();
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->tls_version, c.version);
  EXPECT_EQ(h->cipher, c.cipher);
  EXPECT_EQ(h->tx.key.size(), c.key_len);
  EXPECT_EQ(h->rx.key.size(), c.key_len);
  EXPECT_EQ(h->tx.iv.size(), 12u);
  EXPECT_EQ(h->rx.iv.size(), 12u);
  EXPECT_NE(h->tx.key, h->rx.key);
  // The early record was decrypted by OpenSSL and comes with the keys.
  EXPECT_EQ(h->pending_plaintext, "EHLO early\r\n");
  // TLS 1.3: application keys start at 0; TLS 1.2: the Finished records used 0. The client's
  // early record was one more.
  const uint64_t base = c.version == TLS1_3_VERSION ? 0 : 1;
  EXPECT_EQ(h->tx.rec_seq, base);
  EXPECT_EQ(h->rx.rec_seq, base + 1);
  if (c.version == TLS1_2_VERSION && c.cipher != KtlsCipher::kChaCha20Poly1305) {
    EXPECT_EQ(h->tx.iv.substr(4), Be64(h->tx.rec_seq));  // explicit nonce seed
  }

  // RX: the client's next real records, decrypted with rx key/iv/rec_seq.
  client_->Write("MAIL FROM:<a@example.test>\r\n");
  client_->Write("RCPT TO:<b@example.test>\r\n");
  std::vector<Record> records = SplitRecords(client_->Take());
  ASSERT_EQ(records.size(), 2u);
  std::optional<std::string> first = OpenRecord(*h, h->rx, h->rx.rec_seq, records[0]);
  std::optional<std::string> second = OpenRecord(*h, h->rx, h->rx.rec_seq + 1, records[1]);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*first, "MAIL FROM:<a@example.test>\r\n");
  EXPECT_EQ(*second, "RCPT TO:<b@example.test>\r\n");
  // Control: a wrong sequence number or the other direction's key does not authenticate.
  EXPECT_FALSE(OpenRecord(*h, h->rx, h->rx.rec_seq + 1, records[0]).has_value());
  EXPECT_FALSE(OpenRecord(*h, h->tx, h->rx.rec_seq, records[0]).has_value());

  // TX: records the engine (OpenSSL) writes now, decrypted with tx key/iv/rec_seq.
  ASSERT_TRUE(engine_->Encrypt("250-mx.example.test\r\n").ok());
  ASSERT_TRUE(engine_->Encrypt("250 SMTPUTF8\r\n").ok());
  records = SplitRecords(engine_->TakeCiphertext());
  ASSERT_EQ(records.size(), 2u);
  first = OpenRecord(*h, h->tx, h->tx.rec_seq, records[0]);
  second = OpenRecord(*h, h->tx, h->tx.rec_seq + 1, records[1]);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(*first, "250-mx.example.test\r\n");
  EXPECT_EQ(*second, "250 SMTPUTF8\r\n");
  // And the client agrees.
  client_->Put(records[0].header + records[0].body + records[1].header + records[1].body);
  std::string plain;
  ASSERT_TRUE(client_->Read(plain)) << client_->error();
  EXPECT_EQ(plain, "250-mx.example.test\r\n250 SMTPUTF8\r\n");
}

TEST_P(KtlsExportTest, SequenceNumbersCountRecordsAlreadyRead) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  // Three more records reach OpenSSL before the export.
  client_->Write("a");
  client_->Write("b");
  client_->Write("c");
  engine_->PutCiphertext(client_->Take());
  absl::StatusOr<KtlsHandoff> h = engine_->ExportForKernel();
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->pending_plaintext, "EHLO early\r\nabc");
  const uint64_t base = GetParam().version == TLS1_3_VERSION ? 0 : 1;
  EXPECT_EQ(h->rx.rec_seq, base + 4);
  client_->Write("next");
  std::vector<Record> records = SplitRecords(client_->Take());
  ASSERT_EQ(records.size(), 1u);
  std::optional<std::string> next = OpenRecord(*h, h->rx, h->rx.rec_seq, records[0]);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, "next");
}

TEST_P(KtlsExportTest, PartialRecordKeepsTheSessionInUserspace) {
  ASSERT_NO_FATAL_FAILURE(Connect());
  client_->Write("QUIT\r\n");
  const std::string record = client_->Take();
  engine_->PutCiphertext(record.substr(0, 7));
  absl::StatusOr<KtlsHandoff> h = engine_->ExportForKernel();
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(h.status()), HasSubstr("partial TLS record"));
  // Nothing is lost: the userspace path carries on.
  engine_->PutCiphertext(record.substr(7));
  std::string plain;
  ASSERT_TRUE(engine_->Decrypt(plain).ok());
  EXPECT_EQ(plain, "EHLO early\r\nQUIT\r\n");
}

// What the kernel path does on a KeyUpdate: AdvanceTrafficKeys derives the next key and IV of a
// direction from the traffic secret exported with the keys, and the records the peer sends after
// its KeyUpdate decrypt with them, starting again at sequence number 0.
TEST_P(KtlsExportTest, KeyUpdateKeysDecryptTheRecordsAfterTheUpdate) {
  const CipherCase& c = GetParam();
  ASSERT_NO_FATAL_FAILURE(Connect());
  absl::StatusOr<KtlsHandoff> h = engine_->ExportForKernel();
  ASSERT_TRUE(h.ok()) << h.status();
  if (c.version != TLS1_3_VERSION) {
    EXPECT_TRUE(h->tx_secret.empty());
    EXPECT_EQ(AdvanceTrafficKeys(*h, KtlsSide::kRx).code(), absl::StatusCode::kFailedPrecondition);
    return;
  }
  ASSERT_FALSE(h->digest.empty());
  const KtlsHandoff before = *h;

  // RX: the client updates its keys and asks for ours, then sends data.
  ASSERT_EQ(SSL_key_update(client_->ssl(), SSL_KEY_UPDATE_REQUESTED), 1);
  client_->Write("DATA\r\n");
  const std::string from_client = client_->Take();
  std::vector<Record> records = SplitRecords(from_client);
  ASSERT_EQ(records.size(), 2u);
  std::optional<std::pair<int, std::string>> update =
      OpenRecord13(*h, h->rx, h->rx.rec_seq, records[0]);
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(update->first, 22);                                       // handshake
  EXPECT_EQ(update->second, std::string("\x18\x00\x00\x01\x01", 5));  // update_requested
  // The old keys do not open the next record; the advanced ones do, at sequence number 0.
  EXPECT_FALSE(OpenRecord(*h, h->rx, h->rx.rec_seq + 1, records[1]).has_value());
  ASSERT_TRUE(AdvanceTrafficKeys(*h, KtlsSide::kRx).ok());
  EXPECT_EQ(h->rx.rec_seq, 0u);
  EXPECT_NE(h->rx.key, before.rx.key);
  EXPECT_NE(h->rx.iv, before.rx.iv);
  EXPECT_NE(h->rx_secret, before.rx_secret);
  EXPECT_EQ(h->tx.key, before.tx.key);  // the other direction is untouched
  std::optional<std::string> data = OpenRecord(*h, h->rx, 0, records[1]);
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(*data, "DATA\r\n");

  // TX: OpenSSL, following the request, sends its own KeyUpdate before its next data; that data
  // opens with our advanced transmit keys.
  engine_->PutCiphertext(from_client);
  std::string plain;
  ASSERT_TRUE(engine_->Decrypt(plain).ok());
  EXPECT_EQ(plain, "DATA\r\n");
  std::string from_server = engine_->TakeCiphertext();
  ASSERT_TRUE(engine_->Encrypt("354 go ahead\r\n").ok());
  from_server += engine_->TakeCiphertext();
  records = SplitRecords(from_server);
  ASSERT_EQ(records.size(), 2u);
  update = OpenRecord13(*h, h->tx, h->tx.rec_seq, records[0]);
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(update->first, 22);
  EXPECT_EQ(update->second, std::string("\x18\x00\x00\x01\x00", 5));  // update_not_requested
  ASSERT_TRUE(AdvanceTrafficKeys(*h, KtlsSide::kTx).ok());
  data = OpenRecord(*h, h->tx, 0, records[1]);
  ASSERT_TRUE(data.has_value());
  EXPECT_EQ(*data, "354 go ahead\r\n");
  // A second update chains from the first (secret_N+1 from secret_N), not from the original.
  const std::string once = h->rx.key;
  ASSERT_TRUE(AdvanceTrafficKeys(*h, KtlsSide::kRx).ok());
  EXPECT_NE(h->rx.key, once);
  EXPECT_NE(h->rx.key, before.rx.key);
}

INSTANTIATE_TEST_SUITE_P(
    Ciphers, KtlsExportTest,
    ::testing::Values(CipherCase{"Tls13Aes256Gcm", TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384",
                                 "TLS_AES_256_GCM_SHA384", KtlsCipher::kAes256Gcm, 32},
                      CipherCase{"Tls13Aes128Gcm", TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256",
                                 "TLS_AES_128_GCM_SHA256", KtlsCipher::kAes128Gcm, 16},
                      CipherCase{"Tls13ChaCha20", TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256",
                                 "TLS_CHACHA20_POLY1305_SHA256", KtlsCipher::kChaCha20Poly1305, 32},
                      CipherCase{"Tls12Aes256Gcm", TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384",
                                 "ECDHE-RSA-AES256-GCM-SHA384", KtlsCipher::kAes256Gcm, 32},
                      CipherCase{"Tls12Aes128Gcm", TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256",
                                 "ECDHE-RSA-AES128-GCM-SHA256", KtlsCipher::kAes128Gcm, 16},
                      CipherCase{"Tls12ChaCha20", TLS1_2_VERSION, "ECDHE-RSA-CHACHA20-POLY1305",
                                 "ECDHE-RSA-CHACHA20-POLY1305", KtlsCipher::kChaCha20Poly1305, 32}),
    [](const ::testing::TestParamInfo<CipherCase>& info) { return info.param.test_name; });

TEST(KtlsExportOtherTest, CipherTheKernelCannotTakeIsUnimplemented) {
  core::Config config = BaseConfig();
  config.tls.ciphersuites = "TLS_AES_128_CCM_SHA256";
  std::unique_ptr<Engine> engine = MustEngine(MustBuild(config));
  ClientOptions options;
  options.ciphersuites = "TLS_AES_128_CCM_SHA256";
  TestClient client(options);
  testing::HandshakeOutcome outcome = testing::Handshake(client, *engine);
  ASSERT_TRUE(outcome.server.ok()) << outcome.server;
  client.Write("EHLO x\r\n");
  engine->PutCiphertext(client.Take());
  absl::StatusOr<KtlsHandoff> h = engine->ExportForKernel();
  EXPECT_EQ(h.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(Message(h.status()), HasSubstr("TLS_AES_128_CCM_SHA256"));
  std::string plain;
  ASSERT_TRUE(engine->Decrypt(plain).ok());
  EXPECT_EQ(plain, "EHLO x\r\n");
}

TEST(KtlsExportOtherTest, KeyUpdateBeforeExportIsRefused) {
  std::unique_ptr<Engine> engine = MustEngine(MustBuild(BaseConfig()));
  TestClient client({});
  testing::HandshakeOutcome outcome = testing::Handshake(client, *engine);
  ASSERT_TRUE(outcome.server.ok()) << outcome.server;
  ASSERT_EQ(SSL_key_update(client.ssl(), SSL_KEY_UPDATE_NOT_REQUESTED), 1);
  client.Write("after update");
  engine->PutCiphertext(client.Take());
  absl::StatusOr<KtlsHandoff> h = engine->ExportForKernel();
  EXPECT_EQ(h.status().code(), absl::StatusCode::kFailedPrecondition);
  std::string plain;
  ASSERT_TRUE(engine->Decrypt(plain).ok());
  EXPECT_EQ(plain, "after update");
}

TEST(KtlsExportOtherTest, ExportBeforeHandshakeIsRefused) {
  std::unique_ptr<Engine> engine = MustEngine(MustBuild(BaseConfig()));
  EXPECT_EQ(engine->ExportForKernel().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ringmx::tls

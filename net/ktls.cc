#include "net/ktls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

#include "core/status.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace ringmx::net {
namespace {

template <typename Info>
void FillAead(Info& info, uint16_t version, uint16_t cipher_type,
              const tls::KtlsDirection& direction) {
  memset(&info, 0, sizeof(info));
  info.info.version = version;
  info.info.cipher_type = cipher_type;
  // `direction.iv` is salt (4 bytes) followed by the 8-byte IV, as linux/tls.h splits them.
  memcpy(info.salt, direction.iv.data(), sizeof(info.salt));
  memcpy(info.iv, direction.iv.data() + sizeof(info.salt), sizeof(info.iv));
  memcpy(info.key, direction.key.data(), sizeof(info.key));
  for (int i = 0; i < 8; ++i) {
    info.rec_seq[i] = static_cast<unsigned char>(direction.rec_seq >> (8 * (7 - i)));
  }
}

absl::Status InstallDirection(int fd, int optname, const tls::KtlsHandoff& keys,
                              const tls::KtlsDirection& direction) {
  const char* what = optname == TLS_TX ? "setsockopt TLS_TX" : "setsockopt TLS_RX";
  int rc;
  switch (keys.cipher) {
    case tls::KtlsCipher::kAes128Gcm: {
      tls12_crypto_info_aes_gcm_128 info;
      if (direction.key.size() != sizeof(info.key) || direction.iv.size() != 12) {
        return absl::InvalidArgumentError("AES-128-GCM key material has the wrong size");
      }
      FillAead(info, keys.tls_version, TLS_CIPHER_AES_GCM_128, direction);
      rc = setsockopt(fd, SOL_TLS, optname, &info, sizeof(info));
      break;
    }
    case tls::KtlsCipher::kAes256Gcm: {
      tls12_crypto_info_aes_gcm_256 info;
      if (direction.key.size() != sizeof(info.key) || direction.iv.size() != 12) {
        return absl::InvalidArgumentError("AES-256-GCM key material has the wrong size");
      }
      FillAead(info, keys.tls_version, TLS_CIPHER_AES_GCM_256, direction);
      rc = setsockopt(fd, SOL_TLS, optname, &info, sizeof(info));
      break;
    }
    case tls::KtlsCipher::kChaCha20Poly1305: {
      tls12_crypto_info_chacha20_poly1305 info;
      memset(&info, 0, sizeof(info));
      if (direction.key.size() != sizeof(info.key) || direction.iv.size() != sizeof(info.iv)) {
        return absl::InvalidArgumentError("ChaCha20-Poly1305 key material has the wrong size");
      }
      info.info.version = keys.tls_version;
      info.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
      memcpy(info.iv, direction.iv.data(), sizeof(info.iv));
      memcpy(info.key, direction.key.data(), sizeof(info.key));
      for (int i = 0; i < 8; ++i) {
        info.rec_seq[i] = static_cast<unsigned char>(direction.rec_seq >> (8 * (7 - i)));
      }
      rc = setsockopt(fd, SOL_TLS, optname, &info, sizeof(info));
      break;
    }
    default:
      return absl::UnimplementedError("cipher not offloadable");
  }
  if (rc < 0) {
    const int err = errno;
    return err == ENOENT || err == ENOPROTOOPT || err == EOPNOTSUPP
               ? absl::UnimplementedError(absl::StrCat(what, ": ", strerror(err)))
               : core::ErrnoStatus(err, what);
  }
  return absl::OkStatus();
}

// Installs TLS 1.3 keys twice in each direction on one end of a loopback connection: kernels that
// can follow a KeyUpdate accept the second installation, older ones answer EBUSY.
bool ProbeRekey() {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int server = -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bool ok = listener >= 0 && client >= 0 &&
            bind(listener, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
            listen(listener, 1) == 0 &&
            getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
            connect(client, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
            (server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;
  if (ok) {
    tls::KtlsHandoff keys;
    keys.tls_version = 0x0304;
    keys.cipher = tls::KtlsCipher::kAes128Gcm;
    keys.tx.key = keys.rx.key = std::string(16, 'k');
    keys.tx.iv = keys.rx.iv = std::string(12, 'i');
    ok = InstallKernelTls(server, keys).ok() &&
         InstallDirection(server, TLS_TX, keys, keys.tx).ok() &&
         InstallDirection(server, TLS_RX, keys, keys.rx).ok();
  }
  for (int fd : {server, client, listener}) {
    if (fd >= 0) close(fd);
  }
  return ok;
}

}  // namespace

KernelTlsSupport ProbeKernelTls() {
  KernelTlsSupport support;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    support.reason = absl::StrCat("socket: ", strerror(errno));
    return support;
  }
  // On an unconnected socket the kernel answers ENOTCONN when the ULP exists (it only attaches to
  // established connections) and ENOENT when the tls module is absent.
  const int rc = setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
  const int err = errno;
  close(fd);
  if (rc == 0 || err == ENOTCONN) {
    support.available = true;
    support.rekey = ProbeRekey();
  } else {
    support.reason = absl::StrCat("TCP_ULP tls: ", strerror(err));
  }
  return support;
}

absl::Status InstallKernelTls(int fd, const tls::KtlsHandoff& keys, bool* tx_installed) {
  if (tx_installed != nullptr) *tx_installed = false;
  if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
    const int err = errno;
    return err == ENOENT ? absl::UnimplementedError("TCP_ULP tls: the kernel has no TLS ULP")
                         : core::ErrnoStatus(err, "setsockopt TCP_ULP tls");
  }
  // With the ULP attached but no key set the socket still passes bytes through unchanged.
  absl::Status tx = InstallDirection(fd, TLS_TX, keys, keys.tx);
  if (!tx.ok()) return tx;
  if (tx_installed != nullptr) *tx_installed = true;
  return InstallDirection(fd, TLS_RX, keys, keys.rx);
}

absl::Status UpdateKernelTlsKey(int fd, const tls::KtlsHandoff& keys, tls::KtlsSide side) {
  return side == tls::KtlsSide::kTx ? InstallDirection(fd, TLS_TX, keys, keys.tx)
                                    : InstallDirection(fd, TLS_RX, keys, keys.rx);
}

absl::Status SendKernelTlsRecord(int fd, uint8_t record_type, std::string_view bytes) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(record_type))] = {};
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_TLS;
  cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
  cmsg->cmsg_len = CMSG_LEN(sizeof(record_type));
  memcpy(CMSG_DATA(cmsg), &record_type, sizeof(record_type));
  const ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) {
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      return absl::UnavailableError("sendmsg TLS_SET_RECORD_TYPE: the socket buffer is full");
    }
    return absl::AbortedError(absl::StrCat("sendmsg TLS_SET_RECORD_TYPE: ", strerror(err)));
  }
  if (static_cast<size_t>(n) != bytes.size()) {
    return absl::InternalError("sendmsg TLS_SET_RECORD_TYPE: part of the record was taken");
  }
  return absl::OkStatus();
}

}  // namespace ringmx::net

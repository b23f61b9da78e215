#include "net/tlsa_check.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "core/status.h"
#include "smtp/reply.h"
#include "tls/chain_probe.h"

namespace ringmx::net {
namespace {

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

absl::Status SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return core::ErrnoStatus(errno, "send");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Appends what arrives to `buffer`; error on EOF or deadline.
absl::Status ReadSome(int fd, std::string& buffer, absl::Time deadline) {
  while (true) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return absl::DeadlineExceededError("timed out waiting for the server");
    pollfd p{fd, POLLIN, 0};
    const int rc = poll(&p, 1, static_cast<int>(ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return core::ErrnoStatus(errno, "poll");
    if (rc == 0) continue;
    char buf[16384];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return core::ErrnoStatus(errno, "recv");
    if (n == 0) return absl::UnavailableError("the server closed the connection");
    buffer.append(buf, static_cast<size_t>(n));
    return absl::OkStatus();
  }
}

// Reads one whole SMTP reply (smtp/reply.h) and checks its code. Bytes after the reply are
// dropped: the server has no business sending any (after the 220 to STARTTLS come TLS records).
absl::Status ExpectReply(int fd, int code, absl::Time deadline) {
  smtp::ReplyParser parser;
  std::string buffer;
  while (true) {
    absl::Status status = ReadSome(fd, buffer, deadline);
    if (!status.ok()) return status;
    std::string_view input = buffer;
    smtp::Reply reply;
    const smtp::ReplyParser::Result r = parser.Parse(input, reply);
    buffer.clear();
    if (r == smtp::ReplyParser::Result::kError) {
      return absl::FailedPreconditionError(
          absl::StrCat("the server sent a malformed reply: ", parser.error()));
    }
    if (r == smtp::ReplyParser::Result::kNeedMore) continue;
    if (reply.code != code) {
      return absl::FailedPreconditionError(absl::StrCat("server answered: ", reply.OneLine()));
    }
    return absl::OkStatus();
  }
}

}  // namespace

absl::StatusOr<ServedChain> FetchServedChain(const core::Endpoint& server, bool starttls,
                                             const std::string& sni, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  sockaddr_storage storage;
  memset(&storage, 0, sizeof(storage));
  socklen_t len;
  if (server.address.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(server.port);
    memcpy(&sin->sin_addr, server.address.bytes().data(), 4);
    len = sizeof(*sin);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(server.port);
    memcpy(&sin6->sin6_addr, server.address.bytes().data(), 16);
    len = sizeof(*sin6);
  }
  Socket sock(socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (sock.fd() < 0) return core::ErrnoStatus(errno, "socket");
  if (connect(sock.fd(), reinterpret_cast<sockaddr*>(&storage), len) < 0) {
    return core::ErrnoStatus(errno, absl::StrCat("connect ", server.ToString()));
  }
  if (starttls) {
    absl::Status s = ExpectReply(sock.fd(), 220, deadline);
    if (s.ok()) s = SendAll(sock.fd(), "EHLO tlsa-check.invalid\r\n");
    if (s.ok()) s = ExpectReply(sock.fd(), 250, deadline);
    if (s.ok()) s = SendAll(sock.fd(), "STARTTLS\r\n");
    if (s.ok()) s = ExpectReply(sock.fd(), 220, deadline);
    if (!s.ok()) return s;
  }
  absl::StatusOr<std::unique_ptr<tls::ChainProbe>> probe = tls::ChainProbe::Create(sni);
  if (!probe.ok()) return probe.status();
  std::string incoming;
  while (true) {
    absl::StatusOr<bool> done = (*probe)->Handshake();
    absl::Status sent = SendAll(sock.fd(), (*probe)->TakeCiphertext());
    if (!done.ok()) return done.status();
    if (!sent.ok()) return sent;
    if (*done) break;
    incoming.clear();
    absl::Status read = ReadSome(sock.fd(), incoming, deadline);
    if (!read.ok()) return read;
    (*probe)->PutCiphertext(incoming);
  }
  ServedChain chain;
  chain.tls_version = (*probe)->version();
  chain.der = (*probe)->ServedChainDer();
  return chain;
}

}  // namespace ringmx::net

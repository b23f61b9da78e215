#include "tests/testing/smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "smtp/reply.h"

namespace ringmx::testing {

std::string SmtpReply::Enhanced() const {
  // Last line: "250 2.0.0 Ok" -> "2.0.0".
  std::string_view t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
  size_t start = t.rfind('\n');
  std::string_view line = start == std::string_view::npos ? t : t.substr(start + 1);
  if (line.size() < 9 || line[3] != ' ') return "";
  std::string_view rest = line.substr(4);
  size_t space = rest.find(' ');
  std::string_view code = rest.substr(0, space);
  if (code.size() < 5 || code[1] != '.') return "";
  return std::string(code);
}

std::unique_ptr<SmtpClient> SmtpClient::Connect(const std::string& host, uint16_t port,
                                                const std::string& source) {
  sockaddr_storage storage;
  memset(&storage, 0, sizeof(storage));
  socklen_t len;
  int family;
  auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = family = AF_INET;
    sin->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = family = AF_INET6;
    sin6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return nullptr;
  }
  int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  if (!source.empty()) {
    sockaddr_storage from;
    memset(&from, 0, sizeof(from));
    auto* from4 = reinterpret_cast<sockaddr_in*>(&from);
    auto* from6 = reinterpret_cast<sockaddr_in6*>(&from);
    bool parsed = false;
    if (family == AF_INET) {
      from4->sin_family = AF_INET;
      parsed = inet_pton(AF_INET, source.c_str(), &from4->sin_addr) == 1;
    } else {
      from6->sin6_family = AF_INET6;
      parsed = inet_pton(AF_INET6, source.c_str(), &from6->sin6_addr) == 1;
    }
    if (!parsed || bind(fd, reinterpret_cast<sockaddr*>(&from), len) < 0) {
      close(fd);
      return nullptr;
    }
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), len) < 0) {
    close(fd);
    return nullptr;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return std::unique_ptr<SmtpClient>(new SmtpClient(fd));
}

SmtpClient::~SmtpClient() { close(fd_); }

bool SmtpClient::Send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool SmtpClient::Fill(absl::Time deadline) {
  while (true) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (ms <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int rc = poll(&p, 1, static_cast<int>(ms));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return false;
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
}

size_t ReplyLength(std::string_view bytes, int& code) {
  smtp::ReplyParser parser;
  std::string_view rest = bytes;
  smtp::Reply parsed;
  const smtp::ReplyParser::Result r = parser.Parse(rest, parsed);
  if (r == smtp::ReplyParser::Result::kNeedMore) return 0;
  size_t consumed = bytes.size() - rest.size();
  code = parsed.code;
  if (r == smtp::ReplyParser::Result::kError) {
    // Malformed: the bytes up to the end of the line where it went wrong, code -1, so that a
    // test can see what the server sent; wait if that line has not ended yet.
    const size_t eol = bytes.find('\n', consumed == 0 ? 0 : consumed - 1);
    if (eol == std::string_view::npos) return 0;
    consumed = eol + 1;
    code = -1;
  }
  return consumed;
}

bool TakeReply(std::string& buffer, SmtpReply& reply) {
  int code = -1;
  const size_t length = ReplyLength(buffer, code);
  if (length == 0) return false;
  reply.text = buffer.substr(0, length);
  reply.code = code;
  buffer.erase(0, length);
  return true;
}

SmtpReply SmtpClient::ReadReply(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  SmtpReply reply;
  while (!TakeReply(buffer_, reply)) {
    if (!Fill(deadline)) return SmtpReply{};  // code -1
  }
  return reply;
}

SmtpReply SmtpClient::Command(std::string_view line, absl::Duration timeout) {
  if (!Send(absl::StrCat(absl::string_view(line.data(), line.size()), "\r\n"))) return SmtpReply{};
  return ReadReply(timeout);
}

bool SmtpClient::WaitClosed(absl::Duration timeout, std::string* rest) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!eof_ && Fill(deadline)) {
  }
  if (eof_ && rest != nullptr) {
    rest->append(buffer_);
    buffer_.clear();
  }
  return eof_;
}

SmtpReply SmtpClient::SendMail(const std::string& from, const std::vector<std::string>& rcpts,
                               std::string_view data, bool ehlo) {
  SmtpReply r = Command(ehlo ? "EHLO client.example.test" : "HELO client.example.test");
  if (r.code != 250) return r;
  r = Command(absl::StrCat("MAIL FROM:<", from, ">"));
  if (r.code != 250) return r;
  for (const std::string& rcpt : rcpts) {
    r = Command(absl::StrCat("RCPT TO:<", rcpt, ">"));
    if (r.code != 250) return r;
  }
  r = Command("DATA");
  if (r.code != 354) return r;
  if (!Send(data) || !Send(".\r\n")) return SmtpReply{};
  return ReadReply();
}

}  // namespace ringmx::testing

// ringmx-noop-milter: the cheapest milter that still gets a whole message, for measuring what
// calling a milter costs ringmx (bench/proxy/proxy_bench.sh --modes ...,milter). It negotiates
// as rspamd does (no reply to any stage but end of message, so every stage's packets still
// flow), answers end of message with "continue" and changes nothing. One thread per milter
// connection, blocking I/O on 127.0.0.1. Bench-only.
//
// usage: ringmx-noop-milter PORT
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "smtp/milter/codec.h"

namespace {

namespace proto = ringmx::smtp::milter::proto;

bool ReadFull(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t got = read(fd, p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool WriteFull(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void Be32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string Packet(char command, const std::string& data) {
  std::string out;
  Be32(out, static_cast<uint32_t>(data.size() + 1));
  out.push_back(command);
  out.append(data);
  return out;
}

void Serve(int fd) {
  constexpr uint32_t kProtocol = proto::kNrConnect | proto::kNrHelo | proto::kNrMail |
                                 proto::kNrRcpt | proto::kNrData | proto::kNrUnknown |
                                 proto::kNrHeader | proto::kNrEoh | proto::kNrBody;
  std::string data;
  for (;;) {
    char head[4];
    if (!ReadFull(fd, head, 4)) break;
    const uint32_t n = (uint32_t{static_cast<uint8_t>(head[0])} << 24) |
                       (uint32_t{static_cast<uint8_t>(head[1])} << 16) |
                       (uint32_t{static_cast<uint8_t>(head[2])} << 8) |
                       uint32_t{static_cast<uint8_t>(head[3])};
    if (n == 0 || n > 1024 * 1024) break;
    data.resize(n);
    if (!ReadFull(fd, data.data(), n)) break;
    const char command = data[0];
    if (command == 'O') {
      std::string reply;
      Be32(reply, 6);
      Be32(reply, 0);  // no actions: it changes nothing
      Be32(reply, kProtocol);
      if (!WriteFull(fd, Packet('O', reply))) break;
    } else if (command == 'E') {
      if (!WriteFull(fd, Packet('c', ""))) break;
    } else if (command == 'Q') {
      break;
    }
    // Every other command ('D' macros, 'C', 'H', 'M', 'R', 'T', 'L', 'N', 'B', 'A', 'U'): no reply.
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: ringmx-noop-milter PORT\n");
    return 2;
  }
  const int port = atoi(argv[1]);
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (port <= 0 || port > 65535 ||
      bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 512) != 0) {
    perror("ringmx-noop-milter: listen");
    return 1;
  }
  fprintf(stderr, "ringmx-noop-milter: listening on 127.0.0.1:%d\n", port);
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::thread(Serve, fd).detach();
  }
}

#include "bench/load/proxy_header.h"

#include "absl/strings/str_cat.h"

namespace ringmx::bench {
namespace {

std::string Dotted(uint32_t a) {
  return absl::StrCat(a >> 24, ".", (a >> 16) & 0xff, ".", (a >> 8) & 0xff, ".", a & 0xff);
}

void AppendBigEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

std::string ProxyHeaderBytes(int version, uint32_t source, uint16_t source_port,
                             uint32_t destination, uint16_t destination_port) {
  if (version == 1) {
    return absl::StrCat("PROXY TCP4 ", Dotted(source), " ", Dotted(destination), " ", source_port,
                        " ", destination_port, "\r\n");
  }
  std::string out("\r\n\r\n\0\r\nQUIT\n", 12);  // the v2 signature
  out.push_back('\x21');                        // version 2, command PROXY
  out.push_back('\x11');                        // TCP over IPv4
  AppendBigEndian(out, 12, 2);                  // the address block's length
  AppendBigEndian(out, source, 4);
  AppendBigEndian(out, destination, 4);
  AppendBigEndian(out, source_port, 2);
  AppendBigEndian(out, destination_port, 2);
  return out;
}

}  // namespace ringmx::bench

#include "tls/tls_floor.h"

namespace ringmx::tls {

int FindTlsFloor(const std::vector<core::TlsFloorConfig>& floors, const core::IpAddress& client) {
  for (size_t i = 0; i < floors.size(); ++i) {
    for (const core::Cidr& network : floors[i].networks) {
      if (network.Contains(client)) return static_cast<int>(i);
    }
  }
  return -1;
}

std::string_view EffectiveMinTls(const std::vector<core::TlsFloorConfig>& floors,
                                 const core::IpAddress& client, std::string_view listener_min_tls) {
  const int floor = FindTlsFloor(floors, client);
  return floor < 0 ? listener_min_tls
                   : std::string_view(floors[static_cast<size_t>(floor)].min_tls);
}

}  // namespace ringmx::tls

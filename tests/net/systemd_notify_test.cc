// net/systemd_notify.h: the sd_notify datagrams, as formatted and as systemd receives them.
#include "net/systemd_notify.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

#include "tests/testing/temp_dir.h"

namespace ringmx::net {
namespace {

TEST(ServiceNotifyMessageTest, EachState) {
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kReady, "serving"), "READY=1\nSTATUS=serving\n");
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kReady, ""), "READY=1\n");
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kReloading, "reloading", 123456789),
            "RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading\n");
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kStopping, "draining"),
            "STOPPING=1\nSTATUS=draining\n");
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kStatus, "x y"), "STATUS=x y\n");
}

TEST(ServiceNotifyMessageTest, StatusIsOneBoundedLine) {
  // A reload error may carry a config file's line breaks; the status must stay one assignment.
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kStatus, "a\nREADY=1\r\tb\x7f"),
            "STATUS=a READY=1  b \n");
  const std::string long_status(1000, 's');
  EXPECT_EQ(ServiceNotifyMessage(ServiceState::kStatus, long_status),
            absl::StrCat("STATUS=", std::string(200, 's'), "\n"));
}

// What systemd would read: NOTIFY_SOCKET names a datagram socket of ours.
TEST(NotifyServiceTest, SendsToNotifySocket) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/notify";
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_EQ(setenv("NOTIFY_SOCKET", path.c_str(), 1), 0);

  NotifyService(ServiceState::kReloading, "reloading");
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  const std::string got(buf, static_cast<size_t>(n));
  ASSERT_TRUE(absl::StartsWith(got, "RELOADING=1\nMONOTONIC_USEC=")) << got;
  EXPECT_TRUE(absl::EndsWith(got, "\nSTATUS=reloading\n")) << got;
  const size_t at = got.find('=', strlen("RELOADING=1\n")) + 1;
  uint64_t usec = 0;
  ASSERT_TRUE(absl::SimpleAtoi(got.substr(at, got.find('\n', at) - at), &usec)) << got;
  EXPECT_GT(usec, 0u);

  NotifyService(ServiceState::kReady, "serving");
  n = recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "READY=1\nSTATUS=serving\n");

  // Without NOTIFY_SOCKET nothing is sent.
  ASSERT_EQ(unsetenv("NOTIFY_SOCKET"), 0);
  NotifyService(ServiceState::kStopping, "draining");
  EXPECT_LT(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0);
  close(fd);
}

}  // namespace
}  // namespace ringmx::net

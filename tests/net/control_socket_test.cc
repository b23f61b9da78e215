// net/control_socket.h: the control socket is created 0600, and a path someone else could have
// prepared is refused with a message naming control.socket.
#include "net/control_socket.h"

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "tests/testing/temp_dir.h"

namespace ringmx::net {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Error(const std::string& path) {
  absl::StatusOr<int> fd = ListenControlSocket(path);
  if (fd.ok()) {
    close(*fd);
    return "opened";
  }
  return std::string(fd.status().message());
}

// A bound socket file at `path` that nobody listens on (a crashed server's leftover).
void MakeStaleSocket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
}

uid_t Nobody() {
  const passwd* pw = getpwnam("nobody");
  return pw != nullptr ? pw->pw_uid : 65534;
}

TEST(ControlSocketTest, CreatedOwnerOnly) {
  ringmx::testing::TempDir dir;
  const std::string path = dir / "control.sock";
  absl::StatusOr<int> fd = ListenControlSocket(path);
  ASSERT_TRUE(fd.ok()) << fd.status();
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  // A second server on the same path is refused while the first listens.
  EXPECT_THAT(Error(path), HasSubstr("another server is listening on it"));
  close(*fd);
}

TEST(ControlSocketTest, StaleSocketOfOursIsReplaced) {
  ringmx::testing::TempDir dir;
  const std::string path = dir / "control.sock";
  ASSERT_NO_FATAL_FAILURE(MakeStaleSocket(path));
  absl::StatusOr<int> fd = ListenControlSocket(path);
  ASSERT_TRUE(fd.ok()) << fd.status();
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  close(*fd);
}

TEST(ControlSocketTest, SymlinkIsRefused) {
  ringmx::testing::TempDir dir;
  const std::string path = dir / "control.sock";
  ASSERT_NO_FATAL_FAILURE(MakeStaleSocket(dir / "real.sock"));
  ASSERT_EQ(symlink((dir / "real.sock").c_str(), path.c_str()), 0);
  EXPECT_EQ(Error(path), "control.socket: " + path + " is a symbolic link; refusing to use it");
  // A dangling one too.
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_EQ(symlink((dir / "nowhere").c_str(), path.c_str()), 0);
  EXPECT_THAT(Error(path), HasSubstr("is a symbolic link"));
  struct stat st;
  EXPECT_NE(lstat((dir / "nowhere").c_str(), &st), 0) << "nothing was created through the link";
}

TEST(ControlSocketTest, OtherFilesAreNotReplaced) {
  ringmx::testing::TempDir dir;
  const std::string path = dir / "control.sock";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  EXPECT_THAT(Error(path), StartsWith("control.socket: "));
  EXPECT_THAT(Error(path), HasSubstr("exists and is not a socket"));
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << "the file is still there";
}

TEST(ControlSocketTest, ForeignOwnersAreRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give files to another user";
  ringmx::testing::TempDir dir;
  // A socket owned by someone else.
  const std::string path = dir / "control.sock";
  ASSERT_NO_FATAL_FAILURE(MakeStaleSocket(path));
  ASSERT_EQ(chown(path.c_str(), Nobody(), static_cast<gid_t>(-1)), 0);
  EXPECT_THAT(Error(path), StartsWith("control.socket: " + path + " is owned by "));
  EXPECT_THAT(Error(path), HasSubstr("uid " + std::to_string(Nobody())));
  // A directory owned by someone else.
  const std::string sub = dir / "sub";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  ASSERT_EQ(chown(sub.c_str(), Nobody(), static_cast<gid_t>(-1)), 0);
  EXPECT_THAT(Error(sub + "/control.sock"),
              StartsWith("control.socket: directory " + sub + " is owned by "));
}

TEST(ControlSocketTest, SharedDirectoryWithoutStickyBitIsRefused) {
  ringmx::testing::TempDir dir;
  const std::string sub = dir / "shared";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  ASSERT_EQ(chmod(sub.c_str(), 0777), 0);
  EXPECT_THAT(Error(sub + "/control.sock"), HasSubstr("writable by group or others"));
  ASSERT_EQ(chmod(sub.c_str(), 01777), 0);  // like /tmp
  EXPECT_EQ(Error(sub + "/control.sock"), "opened");
}

TEST(ControlSocketTest, MissingDirectoryAndLongPath) {
  ringmx::testing::TempDir dir;
  EXPECT_THAT(Error(dir / "missing/control.sock"), StartsWith("control.socket: "));
  EXPECT_THAT(Error(dir.path() + "/" + std::string(120, 'x')),
              StartsWith("control.socket: path too long"));
}

}  // namespace
}  // namespace ringmx::net

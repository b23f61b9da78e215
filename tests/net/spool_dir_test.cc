#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

#include "net/spool.h"
#include "tests/net/spool_test_util.h"

namespace ringmx::net {
namespace {

using ::testing::ElementsAre;
using testing::FileMode;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::ListDir;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

TEST(PrepareSpoolDirectoryTest, CreatesMissingDirectories) {
  TempDir dir;
  const std::string path = dir.path() + "/var/spool/ringmx";
  absl::Status status = PrepareSpoolDirectory(path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(ListDir(path), ElementsAre("queue"));
  EXPECT_THAT(ListDir(path + "/queue"), IsEmpty());  // the write probe is gone
  const int expected = 0750 & ~testing::CurrentUmask();
  EXPECT_EQ(FileMode(path), expected);
  EXPECT_EQ(FileMode(path + "/queue"), expected);
}

TEST(PrepareSpoolDirectoryTest, LeavesTheQueueAndOldSpoolFilesAlone) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
  ASSERT_EQ(mkdir((path + "/queue/0").c_str(), 0750), 0);
  WriteFile(path + "/queue/0/0000000000000001.seg", "RMXQLOG1");
  ASSERT_EQ(mkdir((path + "/new").c_str(), 0750), 0);
  WriteFile(path + "/new/C.eml", "committed by the old directory spool");

  absl::Status status = PrepareSpoolDirectory(path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(ListDir(path + "/queue/0"), ElementsAre("0000000000000001.seg"));
  EXPECT_EQ(ReadFile(path + "/new/C.eml"), "committed by the old directory spool");
}

TEST(PrepareSpoolDirectoryTest, IsIdempotent) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
  absl::Status again = PrepareSpoolDirectory(path);
  EXPECT_TRUE(again.ok()) << again;
  EXPECT_THAT(ListDir(path), ElementsAre("queue"));
}

TEST(PrepareSpoolDirectoryTest, RefusesAReadOnlyQueue) {
  if (geteuid() == 0) GTEST_SKIP() << "root writes through mode bits";
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
  ASSERT_EQ(chmod((path + "/queue").c_str(), 0550), 0);
  absl::Status status = PrepareSpoolDirectory(path);
  chmod((path + "/queue").c_str(), 0750);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("not writable"));
  EXPECT_THAT(status.message(), HasSubstr(path + "/queue"));
}

TEST(PrepareSpoolDirectoryTest, RefusesAFileWhereADirectoryBelongs) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_EQ(mkdir(path.c_str(), 0750), 0);
  WriteFile(path + "/queue", "a file");
  absl::Status status = PrepareSpoolDirectory(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr(path + "/queue"));
}

TEST(PrepareSpoolDirectoryTest, NamesThePathItCannotCreate) {
  TempDir dir;
  WriteFile(dir.path() + "/file", "x");
  const std::string path = dir.path() + "/file/spool";
  absl::Status status = PrepareSpoolDirectory(path);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(dir.path() + "/file"));
  EXPECT_FALSE(PrepareSpoolDirectory("").ok());
}

}  // namespace
}  // namespace ringmx::net

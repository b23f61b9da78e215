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
  EXPECT_THAT(ListDir(path), ElementsAre("new", "tmp"));
  const int expected = 0750 & ~testing::CurrentUmask();
  EXPECT_EQ(FileMode(path), expected);
  EXPECT_EQ(FileMode(path + "/tmp"), expected);
  EXPECT_EQ(FileMode(path + "/new"), expected);
}

TEST(PrepareSpoolDirectoryTest, RemovesLeftoversFromTmpOnly) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
  WriteFile(path + "/tmp/A.eml", "half a message");
  WriteFile(path + "/tmp/A.json", "{");
  WriteFile(path + "/tmp/B.eml", "");
  ASSERT_EQ(symlink("/etc/passwd", (path + "/tmp/link").c_str()), 0);
  ASSERT_EQ(mkdir((path + "/tmp/not-ours").c_str(), 0750), 0);
  WriteFile(path + "/new/C.eml", "committed");
  WriteFile(path + "/new/C.json", "{}");

  absl::Status status = PrepareSpoolDirectory(path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(ListDir(path + "/tmp"), ElementsAre("not-ours"));  // the link itself is removed
  EXPECT_THAT(ListDir(path + "/new"), ElementsAre("C.eml", "C.json"));
  EXPECT_EQ(ReadFile(path + "/new/C.eml"), "committed");
  EXPECT_NE(ReadFile("/etc/passwd"), "<missing>");
}

TEST(PrepareSpoolDirectoryTest, RemovesMessageFilesWhoseEnvelopeWasNeverCommitted) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
  // A crash between the .eml and the .json rename of one commit leaves D.eml alone.
  WriteFile(path + "/new/C.eml", "committed");
  WriteFile(path + "/new/C.json", "{}");
  WriteFile(path + "/new/D.eml", "renamed, envelope never followed");
  WriteFile(path + "/new/notes.txt", "not ours");

  absl::Status status = PrepareSpoolDirectory(path);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(ListDir(path + "/new"), ElementsAre("C.eml", "C.json", "notes.txt"));
}

TEST(PrepareSpoolDirectoryTest, IsIdempotent) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_TRUE(PrepareSpoolDirectory(path).ok());
  absl::Status again = PrepareSpoolDirectory(path);
  EXPECT_TRUE(again.ok()) << again;
  EXPECT_THAT(ListDir(path + "/tmp"), IsEmpty());
}

TEST(PrepareSpoolDirectoryTest, RefusesAFileWhereADirectoryBelongs) {
  TempDir dir;
  const std::string path = dir.path() + "/spool";
  ASSERT_EQ(mkdir(path.c_str(), 0750), 0);
  WriteFile(path + "/tmp", "a file");
  absl::Status status = PrepareSpoolDirectory(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr(path + "/tmp"));
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

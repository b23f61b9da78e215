#include "core/status.h"

#include <errno.h>

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

#include "core/strings.h"

namespace ringmx::core {
namespace {

std::string Message(const absl::Status& status) { return std::string(Sv(status.message())); }

TEST(ErrnoStatusTest, ZeroIsOk) { EXPECT_TRUE(ErrnoStatus(0, "anything").ok()); }

TEST(ErrnoStatusTest, NoSpaceIsResourceExhausted) {
  const absl::Status s = ErrnoStatus(ENOSPC, "fsync spool file");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Message(s), "fsync spool file: No space left on device");
}

TEST(ErrnoStatusTest, NoEntryIsNotFound) {
  const absl::Status s = ErrnoStatus(ENOENT, "open /etc/ringmx/ringmx.toml");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Message(s), "open /etc/ringmx/ringmx.toml: No such file or directory");
}

TEST(ErrnoStatusTest, AccessIsPermissionDenied) {
  const absl::Status s = ErrnoStatus(EACCES, "bind 0.0.0.0:25");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Message(s), "bind 0.0.0.0:25: Permission denied");
  EXPECT_EQ(ErrnoStatus(EPERM, "x").code(), absl::StatusCode::kPermissionDenied);
}

TEST(ErrnoStatusTest, OtherMappings) {
  EXPECT_EQ(ErrnoStatus(EDQUOT, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(EMFILE, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(EADDRINUSE, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EINVAL, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrnoStatus(EAGAIN, "x").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoStatus(ETIMEDOUT, "x").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(ErrnoStatus(ECANCELED, "x").code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(ErrnoStatus(EOPNOTSUPP, "x").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(ErrnoStatus(EIO, "x").code(), absl::StatusCode::kInternal);
}

TEST(ErrnoStatusTest, UnknownErrnoStillHasAMessage) {
  const absl::Status s = ErrnoStatus(9999, "op");
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Message(s), "op: Unknown error 9999");
}

}  // namespace
}  // namespace ringmx::core

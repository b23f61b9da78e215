#include "net/control_socket.h"

#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/status.h"

namespace ringmx::net {
namespace {

constexpr char kKey[] = "control.socket";

std::string UserName(uid_t uid) {
  passwd pw;
  passwd* found = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != nullptr) {
    return absl::StrCat(found->pw_name, " (uid ", uid, ")");
  }
  return absl::StrCat("uid ", uid);
}

absl::Status Refuse(const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(kKey, ": ", what));
}

// Whether a server answers on the socket at `addr`.
bool Answers(const sockaddr_un& addr) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace

absl::StatusOr<int> ListenControlSocket(const std::string& path) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(kKey, ": path too long (", path.size(),
                                                   " bytes, at most ", sizeof(addr.sun_path) - 1,
                                                   ")"));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  const uid_t me = geteuid();

  // The directory: ours or root's, and not open to others' writes (they could swap the socket).
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        kKey, ": ", core::ErrnoStatus(errno, absl::StrCat("directory ", dir)).message()));
  }
  if (!S_ISDIR(st.st_mode)) return Refuse(absl::StrCat(dir, " is not a directory"));
  if (st.st_uid != me && st.st_uid != 0) {
    return Refuse(absl::StrCat("directory ", dir, " is owned by ", UserName(st.st_uid),
                               ", not by this user, ", UserName(me), ", or root"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return Refuse(
        absl::StrCat("directory ", dir, " is writable by group or others without the sticky bit"));
  }

  // The path itself: absent, or a socket of ours that nobody answers on any more.
  if (lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      return Refuse(absl::StrCat(path, " is a symbolic link; refusing to use it"));
    }
    if (!S_ISSOCK(st.st_mode)) {
      return Refuse(absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
    }
    if (st.st_uid != me) {
      return Refuse(absl::StrCat(path, " is owned by ", UserName(st.st_uid), ", not by this user, ",
                                 UserName(me)));
    }
    if (Answers(addr)) {
      return Refuse(absl::StrCat(path, ": another server is listening on it"));
    }
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return absl::InvalidArgumentError(absl::StrCat(
          kKey, ": ", core::ErrnoStatus(errno, absl::StrCat("remove stale ", path)).message()));
    }
    core::LogInfo(absl::StrCat("control socket: replaced the stale socket ", path));
  } else if (errno != ENOENT) {
    return absl::InvalidArgumentError(
        absl::StrCat(kKey, ": ", core::ErrnoStatus(errno, absl::StrCat("lstat ", path)).message()));
  }

  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return core::ErrnoStatus(errno, "control socket");
  // Owner only: created under a restrictive umask, then chmod to be sure.
  const mode_t old_umask = umask(0177);
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  umask(old_umask);
  if (rc < 0) {
    const int err = errno;
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(kKey, ": ", core::ErrnoStatus(err, absl::StrCat("bind ", path)).message()));
  }
  if (chmod(path.c_str(), 0600) != 0 || listen(fd, 16) < 0) {
    const int err = errno;
    close(fd);
    unlink(path.c_str());
    return core::ErrnoStatus(err, absl::StrCat("control socket ", path));
  }
  return fd;
}

}  // namespace ringmx::net

// PrepareSpoolDirectory(): the spool layout of DESIGN.md section 6, made ready once at start with
// plain syscalls (no shard runs yet, so blocking is fine here).

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "net/spool.h"

namespace ringmx::net {
namespace {

constexpr mode_t kDirMode = 0750;

// Owns one file descriptor.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status FsyncDirectory(const std::string& path) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return core::ErrnoStatus(errno, absl::StrCat("open directory ", path));
  if (fsync(fd.get()) != 0) return core::ErrnoStatus(errno, absl::StrCat("fsync directory ", path));
  return absl::OkStatus();
}

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Creates `path` if it is missing (`created` tells), and checks that it is a directory.
absl::Status MakeDirectory(const std::string& path, bool& created) {
  created = false;
  if (mkdir(path.c_str(), kDirMode) == 0) {
    created = true;
    return absl::OkStatus();
  }
  if (errno != EEXIST) {
    return core::ErrnoStatus(errno, absl::StrCat("create spool directory ", path));
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return core::ErrnoStatus(errno, absl::StrCat("stat spool directory ", path));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("spool directory ", path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

// `mkdir -p`: creates every missing component of `path`, then makes each new entry durable by
// fsyncing the directory that holds it.
absl::Status MakeDirectories(const std::string& path) {
  std::vector<std::string> created_in;  // parents that gained an entry
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix.back() == '/') continue;  // "//" in the path
    bool created = false;
    RINGMX_RETURN_IF_ERROR(MakeDirectory(prefix, created));
    if (created) created_in.push_back(Parent(prefix));
  }
  for (const std::string& parent : created_in) RINGMX_RETURN_IF_ERROR(FsyncDirectory(parent));
  return absl::OkStatus();
}

// Removes every file in `<path>/tmp`: a write that a crash or a kill interrupted. Never touches
// new/. Directories in tmp/ are not ours (the spool only creates files there) and are left alone.
// Names in the directory open as `fd` (not "." or ".."); `path` is for messages.
absl::StatusOr<std::vector<std::string>> ListDirectory(int fd, const std::string& path) {
  std::vector<std::string> names;
  const int list_fd = dup(fd);
  if (list_fd < 0) return core::ErrnoStatus(errno, absl::StrCat("list spool directory ", path));
  DIR* dir = fdopendir(list_fd);
  if (dir == nullptr) {
    const int err = errno;
    close(list_fd);
    return core::ErrnoStatus(err, absl::StrCat("list spool directory ", path));
  }
  while (true) {
    errno = 0;
    const dirent* entry = readdir(dir);
    if (entry == nullptr) break;
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(name);
  }
  const int err = errno;
  closedir(dir);
  if (err != 0) return core::ErrnoStatus(err, absl::StrCat("list spool directory ", path));
  return names;
}

// A crash between the two renames of a commit leaves `<id>.eml` in new/ without its `<id>.json`.
// That message was never acknowledged (250 waits for the directory fsync after both renames), so
// the orphan is removed rather than left for readers to trip over.
absl::Status ClearOrphans(const std::string& path) {
  const std::string dir = absl::StrCat(path, "/new");
  ScopedFd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return core::ErrnoStatus(errno, absl::StrCat("open spool directory ", dir));
  RINGMX_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir_fd.get(), dir));
  const absl::flat_hash_set<std::string> present(names.begin(), names.end());
  size_t removed = 0;
  for (const std::string& name : names) {
    if (name.size() <= 4 || name.compare(name.size() - 4, 4, ".eml") != 0) continue;
    if (present.contains(absl::StrCat(name.substr(0, name.size() - 4), ".json"))) continue;
    if (unlinkat(dir_fd.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
      return core::ErrnoStatus(errno, absl::StrCat("remove orphan spool file ", dir, "/", name));
    }
    ++removed;
  }
  if (removed > 0) {
    core::LogWarning(absl::StrCat("spool: removed ", removed, " message file(s) in ", dir,
                                  " whose envelope was never committed (crash during a commit)"));
  }
  return absl::OkStatus();
}

absl::Status ClearTmp(const std::string& path) {
  const std::string tmp = absl::StrCat(path, "/tmp");
  ScopedFd tmp_fd(open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (tmp_fd.get() < 0) return core::ErrnoStatus(errno, absl::StrCat("open spool directory ", tmp));

  RINGMX_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(tmp_fd.get(), tmp));

  size_t removed = 0;
  for (const std::string& name : names) {
    struct stat st;
    if (fstatat(tmp_fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return core::ErrnoStatus(errno, absl::StrCat("stat leftover spool file ", tmp, "/", name));
    }
    if (S_ISDIR(st.st_mode)) {
      core::LogWarning(absl::StrCat("spool: ", tmp, "/", name,
                                    " is a directory, not a leftover of ours; left alone"));
      continue;
    }
    if (unlinkat(tmp_fd.get(), name.c_str(), 0) != 0) {
      if (errno == ENOENT) continue;
      return core::ErrnoStatus(errno, absl::StrCat("remove leftover spool file ", tmp, "/", name));
    }
    ++removed;
  }
  if (removed > 0) {
    core::LogWarning(absl::StrCat("spool: removed ", removed, " leftover file(s) from ", tmp,
                                  " (writes interrupted by a crash or a kill)"));
  }
  if (fsync(tmp_fd.get()) != 0) {
    return core::ErrnoStatus(errno, absl::StrCat("fsync spool directory ", tmp));
  }
  return absl::OkStatus();
}

// Fails unless the spool can store: mkdir of existing directories succeeds even on a read-only
// file system, so without this a read-only spool would start and refuse every message with 452.
// tmp/ gets a real file created and removed (what every message does first); new/ only receives
// renames, so it is checked with access(2), which reports a read-only mount (EROFS) even to root.
absl::Status CheckWritable(const std::string& path) {
  const std::string tmp = absl::StrCat(path, "/tmp");
  const std::string probe = absl::StrCat(tmp, "/.write-probe-", getpid());
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return core::ErrnoStatus(
        errno, absl::StrCat("spool directory ", tmp, " is not writable: create a file in it"));
  }
  close(fd);
  if (unlink(probe.c_str()) != 0) {
    return core::ErrnoStatus(
        errno, absl::StrCat("spool directory ", tmp, " is not writable: remove ", probe));
  }
  const std::string new_dir = absl::StrCat(path, "/new");
  if (faccessat(AT_FDCWD, new_dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return core::ErrnoStatus(errno, absl::StrCat("spool directory ", new_dir, " is not writable"));
  }
  return absl::OkStatus();
}

absl::Status Prepare(const std::string& path) {
  RINGMX_RETURN_IF_ERROR(MakeDirectories(path));
  bool tmp_created = false;
  bool new_created = false;
  RINGMX_RETURN_IF_ERROR(MakeDirectory(absl::StrCat(path, "/tmp"), tmp_created));
  RINGMX_RETURN_IF_ERROR(MakeDirectory(absl::StrCat(path, "/new"), new_created));
  RINGMX_RETURN_IF_ERROR(CheckWritable(path));
  RINGMX_RETURN_IF_ERROR(ClearTmp(path));
  RINGMX_RETURN_IF_ERROR(ClearOrphans(path));
  RINGMX_RETURN_IF_ERROR(FsyncDirectory(absl::StrCat(path, "/new")));
  // The spool directory holds the entries of tmp/ and new/.
  return FsyncDirectory(path);
}

}  // namespace

absl::Status PrepareSpoolDirectory(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("spool path is empty");
  absl::Status status = Prepare(path);
  // Every message names a path, but not always the configured one (a parent that is a file, say):
  // the operator must see which setting to fix.
  if (!status.ok() && status.message().find(path) == absl::string_view::npos) {
    return absl::Status(status.code(), absl::StrCat("spool.path ", path, ": ", status.message()));
  }
  return status;
}

}  // namespace ringmx::net

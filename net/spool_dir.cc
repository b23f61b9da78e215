// PrepareSpoolDirectory(): the spool directory and its queue/ (DESIGN.md section 6), made ready
// once at start with plain syscalls (no shard runs yet, so blocking is fine here). Each shard
// creates and replays its own `queue/<shard>` (net/queue_log.h).

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#include "core/log.h"
#include "core/status.h"
#include "core/status_macros.h"
#include "net/queue_adopt.h"
#include "net/spool.h"

namespace ringmx::net {
namespace {

using queue_files::FsyncDirectoryPath;
using queue_files::kDirMode;

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
  for (const std::string& parent : created_in) RINGMX_RETURN_IF_ERROR(FsyncDirectoryPath(parent));
  return absl::OkStatus();
}

// Names in `path` (not "." or ".."); empty if it cannot be read.
std::vector<std::string> ListNames(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  while (const dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(dir);
  return names;
}

// Fails unless the queue can store: mkdir of existing directories succeeds even on a read-only
// file system, so without this a read-only spool would start and refuse every message with 451.
// A real file is created and removed in queue/ (where every shard creates its directory and
// segments), which also reports a read-only mount (EROFS) to root.
absl::Status CheckWritable(const std::string& queue) {
  const std::string probe = absl::StrCat(queue, "/.write-probe-", getpid());
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return core::ErrnoStatus(
        errno, absl::StrCat("spool directory ", queue, " is not writable: create a file in it"));
  }
  close(fd);
  if (unlink(probe.c_str()) != 0) {
    return core::ErrnoStatus(
        errno, absl::StrCat("spool directory ", queue, " is not writable: remove ", probe));
  }
  return absl::OkStatus();
}

absl::Status Prepare(const std::string& path) {
  RINGMX_RETURN_IF_ERROR(MakeDirectories(path));
  const std::string queue = absl::StrCat(path, "/queue");
  bool created = false;
  RINGMX_RETURN_IF_ERROR(MakeDirectory(queue, created));
  RINGMX_RETURN_IF_ERROR(CheckWritable(queue));
  // Messages stored by the directory spool that the queue replaced are not served by it.
  const size_t old_files = ListNames(absl::StrCat(path, "/new")).size();
  if (old_files > 0) {
    core::LogWarning(absl::StrCat("spool: ", path, "/new holds ", old_files,
                                  " file(s) of the old directory spool; the queue (", queue,
                                  ") does not read them"));
  }
  // The spool directory holds the entry of queue/.
  return FsyncDirectoryPath(path);
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

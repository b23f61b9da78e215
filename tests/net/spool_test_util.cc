#include "tests/net/spool_test_util.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace ringmx::net::testing {

TempDir::TempDir(const std::string& base) {
  std::string pattern = base + "/ringmx-spool-test-XXXXXX";
  const char* made = mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr) << "mkdtemp under " << base << " failed";
  if (made != nullptr) path_ = made;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  nftw(
      path_.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) { return remove(path); }, 16,
      FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "<missing>";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

int FileMode(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

int CurrentUmask() {
  const mode_t mask = umask(022);
  umask(mask);
  return static_cast<int>(mask);
}

bool Drive(Reactor& reactor, Spool& spool, const std::function<bool()>& done, int max_idle_rounds) {
  int idle_rounds = 0;
  while (idle_rounds < max_idle_rounds) {
    if (done()) return true;
    absl::StatusOr<int> ran = reactor.RunOnce(absl::Milliseconds(50));
    EXPECT_TRUE(ran.ok()) << ran.status();
    if (!ran.ok()) return false;
    idle_rounds = *ran > 0 ? 0 : idle_rounds + 1;
    spool.Flush();
  }
  return done();
}

}  // namespace ringmx::net::testing

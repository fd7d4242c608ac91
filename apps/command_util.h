// What the `streamlm` commands share (apps/README.md): the exit code of an
// error, and signal handling for long-running commands.
#ifndef STREAMLM_APPS_COMMAND_UTIL_H_
#define STREAMLM_APPS_COMMAND_UTIL_H_

#include <atomic>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"

namespace streamlm {

// Prints "streamlm: error: MESSAGE" to stderr; the exit code: 2 for bad
// input (InvalidArgument), else 1.
int Fail(const absl::Status& s);

// Blocks `signals` (default SIGINT and SIGTERM) in this thread and every
// thread started afterwards; WaitForSignal(signals) returns the next one.
void BlockSignals(std::initializer_list<int> signals = {});
int WaitForSignal(std::initializer_list<int> signals = {});
// Wakes a thread blocked in WaitForSignal() (it gets SIGTERM).
void WakeSignalThread();

// For long-running commands, after BlockSignals(): the first SIGINT or
// SIGTERM sets stopped() and runs `on_signal` (e.g. stopping the learner)
// on a thread of its own. Finish(code) ends that thread, waking it when no
// signal came, and returns `code`; the destructor does it too.
class StopOnSignal {
 public:
  explicit StopOnSignal(std::function<void()> on_signal);
  ~StopOnSignal() { Finish(0); }
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
  bool stopped() const { return stop_; }
  const std::atomic<bool>* flag() const { return &stop_; }
  int Finish(int code);

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The whole of file `path`, or of stdin when it is empty or "-".
[[nodiscard]] absl::StatusOr<std::string> ReadInput(const std::string& path);

// A role run as a process of its own (`command`: serve, learn, evaluate)
// needs `kafka`, the broker the other roles use, and it must answer:
// InvalidArgument naming the key when it is not set.
[[nodiscard]] absl::Status NeedSharedBroker(const Config& c, const std::string& command);

// The topics a StreamLM broker holds: text, feedback, rejects, decisions,
// candidates and verdicts.
std::vector<std::string> DefaultTopics(const Config& c);

}  // namespace streamlm

#endif  // STREAMLM_APPS_COMMAND_UTIL_H_

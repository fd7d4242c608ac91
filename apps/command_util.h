// What the `streamlm` commands share (apps/README.md): the exit code of an
// error, and signal handling for long-running commands.
#ifndef STREAMLM_APPS_COMMAND_UTIL_H_
#define STREAMLM_APPS_COMMAND_UTIL_H_

#include <initializer_list>
#include <string>
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

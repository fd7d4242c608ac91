#include "apps/command_util.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/kafka.h"
#include "common/log.h"

namespace streamlm {
namespace {

sigset_t SignalSet(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : signals) sigaddset(&set, sig);
  if (signals.size() == 0) {
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
  }
  return set;
}

}  // namespace

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "streamlm: error: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) ? 2 : 1;
}

void BlockSignals(std::initializer_list<int> signals) {
  sigset_t set = SignalSet(signals);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForSignal(std::initializer_list<int> signals) {
  sigset_t set = SignalSet(signals);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

void WakeSignalThread() { kill(getpid(), SIGTERM); }

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  std::stringstream ss;
  if (path.empty() || path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError("cannot read input file '" + path + "'");
    ss << in.rdbuf();
  }
  return ss.str();
}

StopOnSignal::StopOnSignal(std::function<void()> on_signal) {
  thread_ = std::thread([this, on_signal = std::move(on_signal)] {
    const int sig = WaitForSignal();
    if (!stop_) SLM_LOG(kInfo) << "signal " << sig << ": checkpointing and stopping";
    stop_ = true;
    on_signal();
  });
}

int StopOnSignal::Finish(int code) {
  if (!thread_.joinable()) return code;
  if (!stop_.exchange(true)) WakeSignalThread();
  thread_.join();
  return code;
}

absl::Status NeedSharedBroker(const Config& c, const std::string& command) {
  if (!c.kafka.empty()) return CheckBrokerReachable(c.kafka, 10000);
  return absl::InvalidArgumentError(absl::StrCat(
      "kafka: streamlm ", command,
      " works with the other roles through the broker they share; give --kafka HOST:PORT (an "
      "embedded broker is private to `streamlm run`: start one with `streamlm broker`)"));
}

std::vector<std::string> DefaultTopics(const Config& c) {
  return {c.topic_text,     c.topic_feedback,   c.topic_rejects,
          c.topic_decisions, c.topic_candidates, c.topic_verdicts};
}

}  // namespace streamlm

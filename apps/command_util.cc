#include "apps/command_util.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>

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

std::vector<std::string> DefaultTopics(const Config& c) {
  return {c.topic_text, c.topic_feedback, c.topic_rejects, c.topic_decisions};
}

}  // namespace streamlm

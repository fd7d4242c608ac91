// `streamlm broker`: a standalone Kafka-protocol broker (in memory; with
// --journal also on disk, so a restart keeps every record).
#include "apps/commands.h"

#include <signal.h>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "apps/command_util.h"
#include "common/broker.h"
#include "common/log.h"

namespace streamlm {

// SIGUSR1 takes the broker down (clients disconnected, connections
// refused; the topics keep what they hold), SIGUSR2 brings it back: outage
// drills for the learner and serving (tests/broker_outage_test.cc).
int RunBroker(const Config& c, const std::string& journal_dir) {
  BlockSignals({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
  auto broker = EmbeddedBroker::Start(c.broker_port, DefaultTopics(c), c.broker_partitions,
                                      journal_dir);
  if (!broker.ok()) return Fail(broker.status());
  std::printf("%s\n", (*broker)->bootstrap().c_str());
  std::fflush(stdout);
  SLM_LOG(kInfo) << "embedded Kafka broker at " << (*broker)->bootstrap() << "; Ctrl-C stops it "
                 << (journal_dir.empty()
                         ? "(data is kept in memory only)"
                         : absl::StrCat("(data is kept in ", journal_dir, ": ",
                                        (*broker)->replayed(), " records replayed)"))
                 << "; SIGUSR1 takes it down, SIGUSR2 brings it back";
  while (true) {
    const int sig = WaitForSignal({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    if (sig != SIGUSR1 && sig != SIGUSR2) {
      // Everything the topics hold goes to the journal before the broker.
      if (absl::Status s = (*broker)->CloseJournal(); !s.ok()) return Fail(s);
      return 0;
    }
    absl::Status s = (*broker)->SetDown(sig == SIGUSR1);
    if (!s.ok()) {
      SLM_LOG(kError) << s;
    } else {
      SLM_LOG(kWarning) << "embedded Kafka broker is "
                        << (sig == SIGUSR1 ? "DOWN (SIGUSR1; SIGUSR2 brings it back)"
                                           : "up again (SIGUSR2)");
    }
  }
}

}  // namespace streamlm

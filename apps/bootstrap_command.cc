// `streamlm bootstrap`: batch pretraining of a champion.
#include "apps/commands.h"

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_join.h"
#include "apps/command_util.h"
#include "common/log.h"
#include "learner/bootstrap.h"
#include "model/language_model.h"
#include "store/store.h"
#include "store/store_open.h"

namespace streamlm {

absl::StatusOr<std::string> BootstrapChampion(const Config& c, Store* store,
                                      const std::atomic<bool>* stop) {
  auto result = RunBootstrap(c, store, [](const std::string& line) {
    SLM_LOG(kInfo) << line;
  }, stop);
  if (!result.ok()) return result.status();
  return result->snapshot_id;
}

absl::Status BootstrapIfNoChampion(const Config& c, Store* store,
                                   const std::atomic<bool>* stop) {
  if (store->GetAlias(kChampion).ok()) return absl::OkStatus();
  SLM_LOG(kInfo) << "no champion in " << c.data_dir << ": bootstrapping one from "
                 << (c.bootstrap.topic.empty() ? absl::StrJoin(c.bootstrap.corpus, ", ")
                                               : "topic " + c.bootstrap.topic);
  return BootstrapChampion(c, store, stop).status();
}

int RunBootstrapCommand(const Config& c) {
  BlockSignals();
  ConfigureTorchThreads(c.threads);
  auto store = OpenStore(c);
  if (!store.ok()) return Fail(store.status());
  std::atomic<bool> stop{false}, finished{false};
  std::thread signals([&] {
    WaitForSignal();
    if (!finished) SLM_LOG(kInfo) << "signal: checkpointing the bootstrap and stopping";
    stop = true;
  });
  auto id = BootstrapChampion(c, store->get(), &stop);
  finished = true;
  if (!stop) WakeSignalThread();
  signals.join();
  if (!id.ok()) return Fail(id.status());
  std::printf("%s\n", id->c_str());
  return 0;
}

}  // namespace streamlm

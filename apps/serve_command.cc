#include "apps/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "apps/command_util.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/metrics.h"
#include "model/language_model.h"
#include "serving/admin_api.h"
#include "serving/decision_follower.h"
#include "serving/server.h"
#include "store/store.h"

namespace streamlm {

int RunServe(const Config& c, const std::string& snapshots_from) {
  BlockSignals();
  absl::Status s = NeedSharedBroker(c, "serve");
  if (!s.ok()) return Fail(s);
  // On the owner's host: follow its store; every follower keeps RocksDB's
  // secondary logs in a directory of its own. Elsewhere: a store of its
  // own, holding the champions fetched from `snapshots_from`.
  const bool remote = !snapshots_from.empty();
  const std::string follower_dir = absl::StrCat(c.data_dir, "/followers/serve-", getpid());
  const std::string partial_dir = c.data_dir + "/partial";
  absl::StatusOr<std::unique_ptr<Store>> store =
      remote ? Store::Open(c.data_dir) : Store::OpenFollower(c.data_dir, follower_dir);
  if (!store.ok()) return Fail(store.status());
  std::function<absl::Status()> catch_up = [&store] { return (*store)->CatchUp(); };
  if (remote) {
    catch_up = [&] {
      FetchStats stats;
      auto id = SyncChampion(snapshots_from, c.serving.admin_token, store->get(), partial_dir,
                             &stats);
      if (id.ok() && stats.chunks_fetched > 0) {
        SLM_LOG(kInfo) << "serve: fetched " << *id << " from " << snapshots_from << " ("
                       << stats.chunks_fetched << " chunks, " << stats.chunks_reused
                       << " reused, " << stats.retries << " retries)";
      }
      return id.status();
    };
    // The champion first: serving starts with the source's.
    if (absl::Status first = catch_up(); !first.ok()) return Fail(first);
  }
  ConfigureTorchThreads(c.threads);
  SetThreadComputeBudget(c.threads > 0 ? c.threads : ServingThreads(c));

  Counters counters;
  auto producer = KafkaProducer::Create(c.kafka);
  if (!producer.ok()) return Fail(producer.status());
  Server server(c, store->get(), &counters);
  server.set_feedback_producer(producer->get());
  s = server.Start();
  if (!s.ok()) return Fail(s);
  DecisionFollower follower(c.kafka, c.topic_decisions, catch_up, &counters,
                         [&server](const std::vector<Json>& decisions) {
                           for (const Json& d : decisions) server.OnDecision(d);
                           if (decisions.empty()) {
                             // A periodic catch-up: whatever moved the champion.
                             absl::Status r = server.RefreshChampion();
                             if (!r.ok()) SLM_LOG(kWarning) << "serve: " << r;
                           }
                         },
                         // A decision record lost on its way is made up for
                         // this often (serving.poll_ms, at least a minute).
                         std::max<int64_t>(60000, c.serving.poll_ms));
  s = follower.Start();
  if (!s.ok()) {
    server.Stop();
    return Fail(s);
  }
  std::string host = c.http.substr(0, c.http.rfind(':'));
  std::printf(
      "StreamLM serving (Ctrl-C stops it)\n"
      "  kafka   %s  (decisions from %s)\n"
      "  http    http://%s:%d  (POST /v1/completions, /v1/chat/completions; GET /v1/models)\n"
      "  store   %s  (%s)\n",
      c.kafka.c_str(), c.topic_decisions.c_str(), host.c_str(), server.port(),
      c.data_dir.c_str(),
      remote ? ("champions fetched from " + snapshots_from).c_str()
             : "followed: another process owns it");
  std::fflush(stdout);
  const int sig = WaitForSignal();
  SLM_LOG(kInfo) << "signal " << sig << ": stopping";
  follower.Stop();
  server.Stop();
  store->reset();
  std::error_code ec;
  if (!remote) std::filesystem::remove_all(follower_dir, ec);
  return 0;
}

}  // namespace streamlm

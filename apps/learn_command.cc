// `streamlm learn`: the learner as a process of its own, the owner of the
// store's writes (docs/architecture.md, "Roles as processes").
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "apps/active_learner.h"
#include "apps/command_util.h"
#include "apps/commands.h"
#include "apps/control_http.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/metrics.h"
#include "evaluator/verdicts.h"
#include "learner/data_parallel.h"
#include "learner/learner.h"
#include "model/language_model.h"
#include "serving/decision_follower.h"
#include "store/store.h"
#include "store/store_open.h"

namespace streamlm {
namespace {

absl::StatusOr<std::unique_ptr<DataParallel>> ConnectRanks(const Config& c,
                                                           const LearnOptions& o) {
  if (o.world_size > 1 && o.master.empty()) {
    return absl::InvalidArgumentError("--world-size above 1 needs --master HOST:PORT");
  }
  DataParallelOptions dp;
  dp.world_size = o.world_size;
  dp.rank = o.rank;
  dp.master = o.master;
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr) {
    dp.interface = ifname;
  }
  dp.timeout = std::chrono::milliseconds(static_cast<int64_t>(c.learner.dp_timeout_s * 1000));
  SLM_LOG(kInfo) << "learn: rank " << o.rank << " of " << o.world_size << " meeting the others at "
                 << o.master;
  return DataParallel::Connect(dp);
}

// A data-parallel rank above 0: no store, no verdicts; its model and state
// come from rank 0, which it follows until rank 0 stops.
int RunLearnRank(const Config& c, const LearnOptions& o) {
  ActiveLearner active_learner;
  StopOnSignal signals([&] { active_learner.Stop(); });
  auto finish = [&signals](int code) { return signals.Finish(code); };
  Counters counters;
  ControlHttp http(c, &counters, /*store=*/nullptr);
  if (absl::Status s = http.Start(); !s.ok()) return finish(Fail(s));
  SetThreadComputeBudget(LearnerThreads(c, /*serving_in_process=*/false));
  auto dp = ConnectRanks(c, o);
  if (!dp.ok()) return finish(Fail(dp.status()));
  auto learner = Learner::CreateWorker(c, c.kafka, &counters, dp->get());
  if (!learner.ok()) return finish(Fail(learner.status()));
  active_learner.Set(learner->get(), signals.stopped());
  http.set_ready(true);
  std::string host = c.http.substr(0, c.http.rfind(':'));
  std::printf(
      "StreamLM learner rank %d of %d (Ctrl-C stops all ranks)\n"
      "  kafka  %s  (its share of %s's partitions)\n"
      "  http   http://%s:%d  (GET /healthz, /readyz, /metrics)\n",
      o.rank, o.world_size, c.kafka.c_str(), c.topic_text.c_str(), host.c_str(), http.port());
  std::fflush(stdout);
  counters.Set("streamlm_learner_running", 1);
  absl::Status s = (*learner)->Run();
  counters.Set("streamlm_learner_running", 0);
  active_learner.Clear();
  http.Stop();
  return finish(s.ok() ? 0 : Fail(s));
}

}  // namespace

int RunLearn(const Config& c, const LearnOptions& o) {
  BlockSignals();
  if (absl::Status s = NeedSharedBroker(c, "learn"); !s.ok()) return Fail(s);
  ConfigureTorchThreads(c.threads);
  if (o.rank > 0) return RunLearnRank(c, o);
  auto store = OpenStore(c);  // the owner: holds RocksDB's lock
  if (!store.ok()) return Fail(store.status());
  ActiveLearner active_learner;
  StopOnSignal signals([&] { active_learner.Stop(); });
  auto finish = [&signals](int code) { return signals.Finish(code); };
  Counters counters;
  ControlHttp http(c, &counters, store->get());
  if (absl::Status s = http.Start(); !s.ok()) return finish(Fail(s));
  if (absl::Status b = BootstrapIfNoChampion(c, store->get(), signals.flag()); !b.ok()) {
    return finish(Fail(b));
  }
  SetThreadComputeBudget(LearnerThreads(c, /*serving_in_process=*/false));
  auto producer = KafkaProducer::Create(c.kafka);
  if (!producer.ok()) return finish(Fail(producer.status()));

  // The evaluator's verdicts become decisions here, once each, and are
  // published on the decisions topic for serving replicas and the learner.
  VerdictCommitter committer(store->get(), &counters);
  if (absl::Status s = committer.Load(); !s.ok()) return finish(Fail(s));
  auto on_verdicts = [&](const std::vector<Json>& verdicts) {
    for (const Json& v : verdicts) {
      auto stored = committer.Commit(v);
      if (!stored.ok()) {
        SLM_LOG(kWarning) << "learn: verdict on " << c.topic_verdicts
                          << " not committed: " << stored.status();
        continue;
      }
      if (!stored->has_value()) continue;
      const Json& d = **stored;
      absl::Status s = (*producer)->Produce(c.topic_decisions, d.value("candidate", ""), d.dump());
      if (s.ok()) s = (*producer)->Flush(10000);
      if (!s.ok()) SLM_LOG(kWarning) << "learn: cannot publish decision: " << s;
      active_learner.OnDecision(d);
    }
  };
  // Verdicts need no catch-up: this process wrote everything they name.
  DecisionFollower verdicts(
      c.kafka, c.topic_verdicts, [] { return absl::OkStatus(); }, &counters, on_verdicts,
      /*fallback_ms=*/int64_t{1} << 40);

  // Each candidate is announced once it is stored (with the candidate alias).
  auto on_candidate = [&](const std::string& id) {
    Json record = {{"candidate", id}};
    absl::Status s = (*producer)->Produce(c.topic_candidates, id, record.dump());
    if (s.ok()) s = (*producer)->Flush(10000);
    if (!s.ok()) {
      // The evaluator also takes up an undecided candidate alias when it starts.
      SLM_LOG(kWarning) << "learn: cannot announce candidate " << id << " on " << c.topic_candidates
                        << ": " << s;
    }
  };
  std::unique_ptr<DataParallel> dp;
  if (o.world_size > 1) {
    auto connected = ConnectRanks(c, o);
    if (!connected.ok()) return finish(Fail(connected.status()));
    dp = std::move(*connected);
  }
  auto learner = Learner::Create(c, c.kafka, store->get(), &counters, on_candidate, dp.get());
  if (!learner.ok()) return finish(Fail(learner.status()));
  active_learner.Set(learner->get(), signals.stopped());
  if (absl::Status s = verdicts.Start(); !s.ok()) return finish(Fail(s));
  http.set_ready(true);
  std::string host = c.http.substr(0, c.http.rfind(':'));
  std::printf(
      "StreamLM learner (Ctrl-C stops it)\n"
      "  kafka  %s  (text from %s; candidates to %s; verdicts from %s)\n"
      "  http   http://%s:%d  (GET /healthz, /readyz, /metrics; snapshots for "
      "serve --snapshots-from)\n"
      "  store  %s  (owner)\n",
      c.kafka.c_str(), c.topic_text.c_str(), c.topic_candidates.c_str(), c.topic_verdicts.c_str(),
      host.c_str(), http.port(), c.data_dir.c_str());
  std::fflush(stdout);
  counters.Set("streamlm_learner_running", 1);
  absl::Status s = (*learner)->Run();
  counters.Set("streamlm_learner_running", 0);
  verdicts.Stop();
  active_learner.Clear();
  http.Stop();
  return finish(s.ok() ? 0 : Fail(s));
}

}  // namespace streamlm

// `streamlm evaluate`: the gated evaluator as a process of its own, a
// follower of the store the learner owns (docs/architecture.md, "Roles as
// processes").
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "apps/command_util.h"
#include "apps/commands.h"
#include "apps/control_http.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/metrics.h"
#include "evaluator/evaluator.h"
#include "model/language_model.h"
#include "serving/decision_follower.h"
#include "store/store.h"

namespace streamlm {
int RunEvaluate(const Config& c) {
  BlockSignals();
  if (absl::Status s = NeedSharedBroker(c, "evaluate"); !s.ok()) return Fail(s);
  ConfigureTorchThreads(c.threads);
  SetThreadComputeBudget(LearnerThreads(c, /*serving_in_process=*/false));
  const std::string follower_dir = absl::StrCat(c.data_dir, "/followers/evaluate-", getpid());
  auto store = Store::OpenFollower(c.data_dir, follower_dir);
  if (!store.ok()) return Fail(store.status());
  // A bad trusted-feedback file stops start-up, naming the key and line.
  if (auto trusted = LoadTrustedFeedback(c, store->get()); !trusted.ok()) {
    return Fail(trusted.status());
  }
  auto producer = KafkaProducer::Create(c.kafka);
  if (!producer.ok()) return Fail(producer.status());
  Counters counters;
  ControlHttp http(c, &counters, /*store=*/nullptr);
  if (absl::Status s = http.Start(); !s.ok()) return Fail(s);

  Evaluator evaluator(c, store->get(), /*decisions=*/nullptr, /*on_decision=*/nullptr);
  evaluator.set_verdict_producer(producer->get());
  // Start() takes up a candidate alias no decision settled; the topic's
  // replay must not submit it a second time.
  std::string last_submitted = (*store)->GetAlias(kCandidate).value_or("");
  evaluator.Start();
  DecisionFollower candidates(
      c.kafka, c.topic_candidates, [&store] { return (*store)->CatchUp(); }, &counters,
      [&](const std::vector<Json>& batch) {
        // Only the newest candidate matters: it holds the older ones' training.
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          const std::string id = it->value("candidate", "");
          if (id.empty()) continue;
          if (id != last_submitted && !CandidateDecided(**store, id)) {
            last_submitted = id;
            counters.Add("streamlm_evaluator_candidates_total", 1);
            evaluator.Submit(id);
          }
          break;
        }
      });
  if (absl::Status s = candidates.Start(); !s.ok()) {
    evaluator.Stop();
    return Fail(s);
  }
  http.set_ready(true);
  std::string host = c.http.substr(0, c.http.rfind(':'));
  std::printf(
      "StreamLM evaluator (Ctrl-C stops it)\n"
      "  kafka  %s  (candidates from %s; verdicts to %s)\n"
      "  http   http://%s:%d  (GET /healthz, /readyz, /metrics)\n"
      "  store  %s  (followed: the learner owns it)\n",
      c.kafka.c_str(), c.topic_candidates.c_str(), c.topic_verdicts.c_str(), host.c_str(),
      http.port(), c.data_dir.c_str());
  std::fflush(stdout);
  const int sig = WaitForSignal();
  SLM_LOG(kInfo) << "signal " << sig << ": stopping";
  candidates.Stop();
  evaluator.Stop();
  http.Stop();
  store->reset();
  std::error_code ec;
  std::filesystem::remove_all(follower_dir, ec);
  return 0;
}

}  // namespace streamlm

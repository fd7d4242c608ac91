// `streamlm run`: every role in one process (docs/architecture.md).
#include "apps/commands.h"

#include <signal.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/strings/str_join.h"
#include "apps/active_learner.h"
#include "apps/command_util.h"
#include "common/broker.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/metrics.h"
#include "evaluator/evaluator.h"
#include "evaluator/rollback.h"
#include "learner/learner.h"
#include "model/language_model.h"
#include "serving/server.h"
#include "store/store.h"
#include "store/store_open.h"

namespace streamlm {

int RunAll(const Config& c) {
  BlockSignals();
  ConfigureTorchThreads(c.threads);
  std::unique_ptr<EmbeddedBroker> broker;
  std::string brokers = c.kafka;
  if (brokers.empty()) {
    auto b = EmbeddedBroker::Start(c.broker_port, DefaultTopics(c), c.broker_partitions);
    if (!b.ok()) return Fail(b.status());
    broker = std::move(*b);
    brokers = broker->bootstrap();
  } else {
    absl::Status s = CheckBrokerReachable(brokers, 10000);
    if (!s.ok()) return Fail(s);
  }
  auto store = OpenStore(c);
  if (!store.ok()) return Fail(store.status());
  // From here on SIGINT/SIGTERM stop whatever runs: bootstrap or learner.
  ActiveLearner active_learner;
  StopOnSignal signals([&] { active_learner.Stop(); });
  auto finish = [&signals](int code) { return signals.Finish(code); };
  if (absl::Status b = BootstrapIfNoChampion(c, store->get(), signals.flag()); !b.ok()) {
    return finish(Fail(b));
  }
  // Compute budget: serving's scheduler takes serving.threads; the learner
  // (this thread) and the evaluator the rest, so neither starves the other.
  const int learner_threads = LearnerThreads(c, /*serving_in_process=*/true);
  SetThreadComputeBudget(learner_threads);
  SLM_LOG(kInfo) << "compute budget: learner and evaluator " << learner_threads
                 << " thread(s), serving " << ServingThreads(c);
  Counters counters;
  auto producer = KafkaProducer::Create(brokers);
  if (!producer.ok()) return finish(Fail(producer.status()));
  Server server(c, store->get(), &counters);
  server.set_feedback_producer(producer->get());  // POST /v1/feedback -> topic.feedback
  absl::Status s = server.Start();
  if (!s.ok()) return finish(Fail(s));
  // A bad trusted-feedback file stops start-up, naming the key and line.
  if (auto trusted = LoadTrustedFeedback(c, store->get()); !trusted.ok()) {
    return finish(Fail(trusted.status()));
  }
  // Serving, the learner and (for promotions) the rollback monitor hear of
  // every decision: the evaluator's and the monitor's rollbacks alike.
  RollbackMonitor* monitor = nullptr;  // set below, before any decision
  auto on_decision = [&](const Json& d) {
    server.OnDecision(d);
    if (monitor != nullptr) monitor->OnDecision(d);
    active_learner.OnDecision(d);
  };
  // Rolls the champion back on a confident serving-side regression
  // (evaluator/README.md "Rollback"); the learner's compute budget.
  RollbackMonitor rollback(
      c, store->get(), producer->get(),
      [&server](const std::string& id) {
        const ModelServingSignals m = server.ModelSignals(id);
        return ServingCounts{m.requests, m.errors, m.feedback, m.negative_feedback};
      },
      on_decision);
  monitor = &rollback;
  rollback.Start();
  Evaluator evaluator(c, store->get(), producer->get(), on_decision);
  evaluator.Start();
  auto learner = Learner::Create(c, brokers, store->get(), &counters,
                                 [&evaluator](const std::string& id) { evaluator.Submit(id); });
  if (!learner.ok()) return finish(Fail(learner.status()));
  active_learner.Set(learner->get(), signals.stopped());

  std::string host = c.http.substr(0, c.http.rfind(':'));
  std::printf(
      "StreamLM is running (Ctrl-C stops it)\n"
      "  kafka  %s%s\n"
      "         produce text: kcat -P -b %s -t %s   (one JSON {\"text\": ...} per line)\n"
      "  http   http://%s:%d  (POST /v1/completions, /v1/chat/completions; GET /v1/models, /metrics)\n"
      "  ui     http://%s:%d/ui  (dashboard: decisions, learner, serving)\n"
      "  store  %s   (streamlm decisions --data-dir %s)\n",
      brokers.c_str(), broker ? " (embedded)" : "", brokers.c_str(), c.topic_text.c_str(),
      host.c_str(), server.port(), host.c_str(), server.port(), c.data_dir.c_str(),
      c.data_dir.c_str());
  std::fflush(stdout);

  counters.Set("streamlm_learner_running", 1);
  s = (*learner)->Run();
  active_learner.Clear();
  if (!s.ok()) {
    // A learner that cannot go on (full disk, a fatal consumer error) stops
    // learning, not serving: requests are answered by the champion until an
    // operator fixes the cause and restarts; the learner then resumes from
    // its last checkpoint. The exit code says it failed.
    counters.Set("streamlm_learner_running", 0);
    SLM_LOG(kError) << "learner stopped: " << s
                    << "; serving goes on with the champion it has. Fix the cause and restart "
                       "(the learner resumes from its last checkpoint); streamlm_learner_running "
                       "is 0 until then";
    while (!signals.stopped()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  evaluator.Stop();
  rollback.Stop();
  server.Stop();
  return finish(s.ok() ? 0 : Fail(s));
}

}  // namespace streamlm

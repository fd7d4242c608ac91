// Evaluator: judges candidate snapshots against the champion (README.md).
//
// Lifecycle: Start() launches the worker; Submit() queues a candidate from
// any thread (a newer candidate replaces queued older ones); Stop() finishes
// the decision in progress and joins. Evaluate() runs one synchronously.
#ifndef STREAMLM_EVALUATOR_EVALUATOR_H_
#define STREAMLM_EVALUATOR_EVALUATOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "evaluator/gate.h"
#include "store/store.h"

namespace streamlm {

// The trusted feedback set: the store's (`streamlm feedback trust`) and the
// `feedback.trusted_file` key's records, cleaned. A bad file is an error
// naming the key and line.
[[nodiscard]] absl::StatusOr<std::vector<Json>> LoadTrustedFeedback(const Config& config,
                                                                  Store* store);

class Evaluator {
 public:
  using DecisionCallback = std::function<void(const Json& decision)>;

  // `decisions` may be null (no topic to publish to).
  Evaluator(const Config& config, Store* store, KafkaProducer* decisions,
            DecisionCallback on_decision);
  ~Evaluator();

  // Also queues the `candidate` alias when no decision promoted or
  // rejected it: a process stopped or killed before or during its
  // evaluation (or while it was held) leaves it undecided.
  void Start();
  void Stop();
  void Submit(const std::string& candidate_id);

  // Scores, decides, stores, publishes and notifies. Returns the decision.
  // Evaluating the candidate held last again (same champion) is its next
  // look (gate.h, Decide). Not concurrently with the worker (Start()).
  [[nodiscard]] absl::StatusOr<Json> Evaluate(const std::string& candidate_id);

 private:
  void Loop();

  Config config_;
  GateConfig gate_;
  Store* store_;
  KafkaProducer* decisions_;
  DecisionCallback on_decision_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;              // GUARDED_BY(mu_)
  std::thread worker_;
  // The candidate held for more evidence, owned by the worker (or the
  // caller of Evaluate()).
  struct HeldCandidate {
    std::string candidate, champion;
    int looks = 0;
    int64_t last_seq = -1;  // newest held-out record seen at its last look
  };
  HeldCandidate held_;
  // Candidates rejected since the last promotion (worker-owned): under
  // learner.on_rejection=reset their descendants are not judged.
  std::set<std::string> rejected_;
  std::once_flag trusted_once_;
  absl::StatusOr<std::vector<Json>> trusted_;  // set once, under trusted_once_
};

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_EVALUATOR_H_

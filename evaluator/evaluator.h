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
#include <map>
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

// Whether a decision among the store's newest 200 promoted or rejected
// `candidate` (a held one is still undecided).
bool CandidateDecided(const Store& store, const std::string& candidate);

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

  // A separate evaluator (`streamlm evaluate`) does not own the store: with
  // `verdicts` set, Evaluate() proposes each decision on
  // config.topic_verdicts (with a unique "verdict_id") instead of storing
  // and publishing it; the owner commits it (evaluator/verdicts.h) and
  // publishes it on the decisions topic. Evaluation sets it sets aside (the
  // base set, the anchor's losses) go with the verdict ("eval_sets") for
  // the owner to store. A follower store is caught up
  // (Store::CatchUp) before each evaluation and each held-out check. Call
  // before Start().
  void set_verdict_producer(KafkaProducer* verdicts) { verdicts_ = verdicts; }

  // Scores, decides, stores, publishes and notifies. Returns the decision.
  // Evaluating the candidate held last again (same champion) is its next
  // look (gate.h, Decide). Not concurrently with the worker (Start()).
  [[nodiscard]] absl::StatusOr<Json> Evaluate(const std::string& candidate_id);

 private:
  void Loop();
  // Evaluation sets (Store::GetEvalSet/PutEvalSet); with a verdict
  // producer, what it sets aside is proposed with the next verdict and read
  // from here until the store has it. Worker-only.
  [[nodiscard]] absl::StatusOr<std::string> GetEvalSet(const std::string& name) const;
  [[nodiscard]] absl::Status PutEvalSet(const std::string& name, const std::string& value);

  Config config_;
  GateConfig gate_;
  Store* store_;
  KafkaProducer* decisions_;
  KafkaProducer* verdicts_ = nullptr;
  std::map<std::string, std::string> proposed_eval_sets_;  // not yet in the store
  std::map<std::string, std::string> unsent_eval_sets_;    // for the next verdict
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
  // Candidates rejected since the last promotion, each with the champion it
  // was judged against (worker-owned): under learner.on_rejection=reset
  // their descendants are not judged while that champion stands.
  std::map<std::string, std::string> rejected_;
  std::once_flag trusted_once_;
  absl::StatusOr<std::vector<Json>> trusted_;  // set once, under trusted_once_
};

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_EVALUATOR_H_

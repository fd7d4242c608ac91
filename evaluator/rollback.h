// Rollback: after a promotion, watches the champion on serving-side evidence
// and rolls it back to the previous champion on a confident regression
// (evaluator/README.md, "Rollback").
//
// DecideRollback() is a pure function (thread-safe). RollbackMonitor owns one
// worker thread: Start() launches it (a no-op when rollback.enabled is
// false), Stop() joins it; CheckOnce() runs one check synchronously and may
// be called from any thread (checks are serialized).
#ifndef STREAMLM_EVALUATOR_ROLLBACK_H_
#define STREAMLM_EVALUATOR_ROLLBACK_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "evaluator/gate.h"
#include "store/store.h"

namespace streamlm {

class LanguageModel;

// What serving counted for one model (serving/server.h ModelServingSignals;
// the evaluator does not depend on serving, so `run` copies them over).
struct ServingCounts {
  int64_t requests = 0;           // generation requests run to an outcome
  int64_t errors = 0;             // of those, failed (5xx, failed generation)
  int64_t feedback = 0;           // ratings and preference sides received
  int64_t negative_feedback = 0;  // rating -1, or the rejected side
};

// The evidence about the champion and the previous champion.
struct RollbackSignals {
  std::string champion, previous;
  ServingCounts champion_serving, previous_serving;
  // Held-out stream records that arrived since the promotion, scored under
  // both models on the same sequences: `candidate_nats` is the champion's,
  // `champion_nats` the previous champion's (so Compare()'s delta is
  // champion - previous, nats/token). Empty when not scored.
  PairedLosses stream;
};

struct RollbackConfig {
  int64_t min_requests = 200;  // each model, before error rates are compared
  int64_t min_feedback = 30;   // each model, before negative-feedback rates are
  double max_error_rate_increase = 0.02;          // absolute rate
  double max_negative_feedback_increase = 0.10;   // absolute rate
  double max_stream_loss_increase = 0.05;         // nats/token
  int64_t min_stream_tokens = 512;                // scored held-out tokens
};
RollbackConfig RollbackConfigFrom(const Config& config);

// Wilson's 95% score interval of the proportion k/n (n > 0).
void WilsonInterval(int64_t k, int64_t n, double* low, double* high);
// k1/n1 - k2/n2 with Newcombe's hybrid score 95% interval (his method 10,
// built from the two Wilson intervals; sound at zero counts, unlike Wald's).
// `sequences` holds n1 + n2. Zeros when n1 or n2 is 0.
Estimate ProportionDelta(int64_t k1, int64_t n1, int64_t k2, int64_t n2);

struct RollbackResult {
  bool roll_back = false;
  // One rule per signal, as the gate's: `serving_errors`
  // (error_rate_increase), `negative_feedback`
  // (negative_feedback_rate_increase), `live_stream_loss`
  // (stream_loss_increase). observed = champion - previous; threshold = the
  // tolerance; passed = false only for a confident regression (the 95% CI
  // lies wholly above the tolerance); has_ci only with enough evidence.
  std::vector<RuleResult> rules;
  std::vector<bool> enough_evidence;  // per rule
  std::string reason;  // names each failed signal and its interval
  // {"error_rate", "negative_feedback_rate", "stream_loss"}: each signal's
  // figures for champion and previous and the delta with its ci95.
  Json metrics = Json::object();
};

// A rule as the gate writes it (RuleToJson), plus its 95% interval as
// `ci95` [low, high] when it has one.
Json RollbackRuleToJson(const RuleResult& rule);

// Rolls back when any signal regresses confidently. Pure.
RollbackResult DecideRollback(const RollbackSignals& signals, const RollbackConfig& config);

// A rollback decision record (DESIGN.md "Decision record"; verdict
// "rolled_back"): champion is the one rolled back, candidate the previous
// champion restored. For Store::AppendRollback, which assigns the id.
Json RollbackDecision(const std::string& champion, const std::string& previous,
                      const RollbackResult& result, double duration_s);
// (The record of a rollback an operator asks for is ManualDecision, in
// serving/admin_api.h.)

// Lines `streamlm decisions` prints under a rolled_back decision: each
// failed rule with its observed value, 95% CI and tolerance ("rollback:
// live_stream_loss stream_loss_increase +0.2310, 95% CI [+0.2100, +0.2520],
// tolerance 0.0500"), or "rollback: manual". Empty for other verdicts.
std::vector<std::string> RollbackDecisionLines(const Json& decision);

class RollbackMonitor {
 public:
  using CountsFn = std::function<ServingCounts(const std::string& model_id)>;
  using DecisionCallback = std::function<void(const Json& decision)>;

  // `decisions` may be null (no topic to publish to); `counts` reads
  // serving's counters (may be null: rates are then never judged). Both,
  // `store` and the callback must outlive the monitor.
  RollbackMonitor(const Config& config, Store* store, KafkaProducer* decisions,
                  CountsFn counts, DecisionCallback on_decision);
  ~RollbackMonitor();

  // Checks every rollback.check_every_s on its own thread, with the
  // learner's compute budget (it scores models on the learner's cores).
  void Start();
  void Stop();

  // A decision was made elsewhere: a promotion starts the watch of the new
  // champion now (held-out records from here on count as "since the
  // promotion"). Cheap; any thread.
  void OnDecision(const Json& decision);

  // One check. Returns the stored rollback decision when it rolled back,
  // nullopt otherwise (nothing to compare, not enough evidence, no
  // confident regression). Scores models only when held-out records arrived
  // since its last scoring, at most rollback.max_stream_records of them.
  [[nodiscard]] absl::StatusOr<std::optional<Json>> CheckOnce();

  // The last check's result (for logs and tests). Thread-safe.
  RollbackResult last_result() const;

 private:
  void Loop();
  // The held-out sequence number after which records count for `champion`
  // as successor of `previous`; recorded in the champion's snapshot metrics
  // ("rollback_watch") the first time it is seen.
  absl::StatusOr<int64_t> WatchMark(const std::string& champion, const std::string& previous);
  absl::StatusOr<std::shared_ptr<LanguageModel>> Model(const std::string& id);

  Config config_;
  RollbackConfig rollback_;
  Store* store_;
  KafkaProducer* decisions_;
  CountsFn counts_;
  DecisionCallback on_decision_;

  std::mutex check_mu_;  // one check at a time; guards the caches below
  std::map<std::string, std::shared_ptr<LanguageModel>> models_;  // champion, previous
  std::string scored_key_;  // champion/previous/last seq of the cached losses
  PairedLosses scored_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;            // GUARDED_BY(mu_)
  RollbackResult last_result_;   // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_ROLLBACK_H_

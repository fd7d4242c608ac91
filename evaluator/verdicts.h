// Verdicts: how a separate evaluator's decisions reach the store's owner
// (docs/architecture.md, "Roles as processes").
//
// `streamlm evaluate` follows the store (a RocksDB secondary) and cannot
// write it: it proposes each decision as a record on `topic.verdicts`
// (Evaluator::set_verdict_producer), carrying a unique "verdict_id". The
// owner (`streamlm learn`) reads that topic from the beginning and hands
// each record to VerdictCommitter::Commit, which stores it as a decision
// (and, for "promoted", moves the aliases in the same commit,
// Store::AppendDecision) exactly once: a verdict whose id a stored decision
// already carries was committed before (the topic is read again after
// every restart) and is skipped. Evaluation sets the evaluator set aside
// ("eval_sets": name -> value, Store::PutEvalSet) are stored first,
// whatever becomes of the verdict (writing them again is harmless). A verdict judged against a
// champion that is no longer the champion is stale and skipped too: its evidence no longer compares
// the candidate with what is served. The owner then publishes the stored decision on
// `topic.decisions`, as a single-process `run` does.
//
// Thread-safety: not thread-safe; one thread (the owner's verdict reader).
#ifndef STREAMLM_EVALUATOR_VERDICTS_H_
#define STREAMLM_EVALUATOR_VERDICTS_H_

#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "common/metrics.h"
#include "store/store.h"

namespace streamlm {

class VerdictCommitter {
 public:
  // `store` (the owner's) and `counters` must outlive this object.
  VerdictCommitter(Store* store, Counters* counters) : store_(store), counters_(counters) {}

  // Learns the verdict ids the store's decisions already carry.
  [[nodiscard]] absl::Status Load();

  // Commits one proposed verdict. Returns the stored decision (with its
  // "id"), or nullopt when it was committed before or is stale (counted in
  // streamlm_verdicts_total{reason="duplicate"|"stale"}, logged).
  // InvalidArgument names what a malformed record lacks (counted as
  // "invalid"); other errors are the store's (nothing was committed, the
  // caller may retry).
  [[nodiscard]] absl::StatusOr<std::optional<Json>> Commit(const Json& verdict);

 private:
  Store* store_;
  Counters* counters_;
  std::set<std::string> committed_;
};

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_VERDICTS_H_

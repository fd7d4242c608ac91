// DecisionFollower: keeps a process that does not own the store up to date
// with the one that does, driven by the decisions topic rather than by
// polling (docs/architecture.md, "Roles as processes"): a follower store on
// the same host catches up (Store::CatchUp), a replica on another host
// fetches the new champion (serving/snapshot_transfer.h).
//
// A background thread reads every record of `topic` (all partitions, from
// the beginning, no consumer group offsets); after each batch of records
// that arrived together it calls `catch_up` once, then hands the batch's
// decisions (the JSON values, oldest first; unparsable values are counted
// and skipped) to `on_decisions`. The owner commits a decision to the store
// before it publishes it, so what a decision names is there to read when
// `catch_up` runs. A decision record lost on the way (the owner
// died between its commit and its publish) is made up for by a catch-up
// every `fallback_ms` without one, after which `on_decisions` runs with no
// decisions. Kafka errors (a broker that is down) are logged and retried;
// the thread reads on once the broker answers.
//
// Thread-safety: Start and Stop from one thread; `on_decisions` runs on the
// follower's thread.
#ifndef STREAMLM_SERVING_DECISION_FOLLOWER_H_
#define STREAMLM_SERVING_DECISION_FOLLOWER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/json_util.h"
#include "common/metrics.h"

namespace streamlm {

class DecisionFollower {
 public:
  using CatchUp = std::function<absl::Status()>;
  using OnDecisions = std::function<void(const std::vector<Json>&)>;
  // `counters` must outlive this object.
  DecisionFollower(std::string brokers, std::string topic, CatchUp catch_up, Counters* counters,
                   OnDecisions on_decisions, int64_t fallback_ms = 60000);
  ~DecisionFollower();
  DecisionFollower(const DecisionFollower&) = delete;
  DecisionFollower& operator=(const DecisionFollower&) = delete;

  // Creates the consumer and starts the thread.
  [[nodiscard]] absl::Status Start();
  void Stop();

 private:
  void Loop();

  std::string brokers_;
  std::string topic_;
  CatchUp catch_up_;
  Counters* counters_;
  OnDecisions on_decisions_;
  int64_t fallback_ms_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_DECISION_FOLLOWER_H_

// Learner: keeps training the model on `streamlm.text` (see README.md).
//
// Lifecycle: Create() restores the last checkpoint (or starts from the
// champion), Run() loops on the calling thread until Stop() is called from
// any thread, then writes a final checkpoint and returns.
#ifndef STREAMLM_LEARNER_LEARNER_H_
#define STREAMLM_LEARNER_LEARNER_H_

#include <atomic>
#include <chrono>
#include <deque>
#include <set>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/metrics.h"
#include "ingest/dedup.h"
#include "ingest/pipeline.h"
#include "ingest/text_source.h"
#include "learner/objectives.h"
#include "learner/replay_buffer.h"
#include "learner/trainer.h"
#include "store/store.h"

namespace streamlm {

// True for the 1-in-`every` records held out from training, by a stable
// hash (FNV-1a) of the cleaned text, so a repeated text lands on the same side.
bool IsHeldOut(const std::string& text, int every);

// Identity of a preference pair (FNV-1a of prompt, chosen, rejected): the
// reverse pair's key marks a contradiction.
uint64_t PairKey(const std::string& prompt, const std::string& chosen,
                 const std::string& rejected);
// The text fields of a feedback record (not who gave it), for the held-out
// split: the same feedback lands on the same side whoever gives it.
std::string FeedbackIdentity(const Json& record);


class Learner {
 public:
  using CandidateCallback = std::function<void(const std::string& snapshot_id)>;

  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Learner>> Create(
      const Config& config, const std::string& brokers, Store* store,
      Counters* counters, CandidateCallback on_candidate);

  // Consumes, trains and snapshots until Stop(); then checkpoints.
  [[nodiscard]] absl::Status Run();
  void Stop() { stop_ = true; }
  // The evaluator decided (any thread). Under learner.on_rejection=reset a
  // rejected candidate of this learner's sends it back to the champion's
  // weights at its next loop; a champion moved other than forward (a
  // rollback, a hand-promoted snapshot from elsewhere) does the same.
  void OnDecision(const Json& decision);

  int64_t step() const { return step_.load(); }
  // Where the learner resumed: partition -> next offset.
  const std::map<int32_t, int64_t>& resumed_offsets() const { return start_offsets_; }

 private:
  Learner(const Config& config, Store* store, Counters* counters,
          CandidateCallback on_candidate);
  void Ingest(std::vector<SourceRecord> records);
  // Cleans `streamlm.feedback` records (clean.feedback profile) into the
  // store, split into held out / trained / over a user's share; unusable
  // ones go to the rejects topic. An error (the store cannot take them)
  // stops the learner before their offsets are checkpointed.
  [[nodiscard]] absl::Status IngestFeedback(std::vector<SourceRecord> records);
  // Trains while enough fresh tokens are pending; snapshots every N steps.
  [[nodiscard]] absl::Status MaybeTrain();
  // Feedback steps (DPO/KTO/SFT plus replayed LM blocks) on pending feedback.
  [[nodiscard]] absl::Status MaybeTrainFeedback();
  // Points the reference model at the champion when the champion moved.
  [[nodiscard]] absl::Status RebaseReference();
  [[nodiscard]] absl::Status AfterStep();
  // The learning rate of the next stream step (learner.lr_schedule).
  double CycleLr() const;
  // A new cycle: step 0, and its length (learner/README.md, "Learning-rate
  // cycles"): learner.snapshot_every_steps, or fewer when the last cycle's
  // pace says learner.snapshot_every_s would end it sooner. `pace` < 0:
  // the cycle under way's (CyclePace()).
  void StartCycle(double pace = -1);
  // The steps per second of the cycle under way (the last known pace when
  // it has no step yet) and the length a cycle at `steps_per_s` gets.
  double CyclePace() const;
  int64_t CycleLengthAt(double steps_per_s) const;
  // Applies a reset requested by OnDecision() or a champion that moved back
  // or sideways: champion's weights, fresh optimizer, a checkpoint.
  [[nodiscard]] absl::Status MaybeReset();

  [[nodiscard]] absl::Status Checkpoint(bool with_snapshot);
  // Waits until both sources' rejects are on the rejects topic (a checkpoint
  // must not move past a reject that a crash could lose), retrying while the
  // broker is away; once stopping, gives up after one more bounded try.
  [[nodiscard]] absl::Status DeliverRejects();
  std::map<int32_t, int64_t> NextOffsets() const;

  Config config_;
  Store* store_;
  Counters* counters_;
  CandidateCallback on_candidate_;
  std::unique_ptr<TextSource> source_;
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<SlicedReplay> replay_;
  std::unique_ptr<Deduplicator> dedup_;  // null when dedup.window_docs is 0
  std::unique_ptr<TextPipeline> pipeline_;
  std::unique_ptr<TextSource> feedback_source_;
  std::unique_ptr<Cleaner> feedback_cleaner_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> step_{0};

  // Resumable state (all of it goes into each checkpoint).
  std::map<int32_t, int64_t> start_offsets_;
  std::map<int32_t, int64_t> feedback_start_offsets_;
  std::vector<int32_t> pending_tokens_;  // consumed, not yet trained
  // The stream source of pending_tokens_, as runs (source, tokens) in order.
  std::deque<std::pair<std::string, int64_t>> pending_sources_;
  std::vector<std::string> pending_heldout_sources_;  // parallel to pending_heldout_
  int64_t cycle_step_ = 0;    // stream steps since the cycle began (learning rate)
  int64_t cycle_length_ = 0;  // its steps, chosen at its start (StartCycle)
  std::vector<std::string> pending_heldout_;
  std::map<int32_t, int64_t> range_begin_;  // since the last snapshot
  std::string last_snapshot_;
  Lineage since_snapshot_;  // counters since the last snapshot

  int64_t steps_since_snapshot_ = 0;
  int64_t rejected_counted_ = 0;  // source rejects already in since_snapshot_
  std::chrono::steady_clock::time_point last_snapshot_time_;
  std::chrono::steady_clock::time_point cycle_start_time_;
  double cycle_steps_per_s_ = 0;  // stream steps per wall second of the last cycle
  double last_lr_ = 0;            // the rate of the last stream step
  double loss_avg_ = 0;

  // Learning from feedback (learner/objectives.h).
  std::shared_ptr<LanguageModel> reference_;  // frozen; the cycle's champion
  std::string reference_id_;
  std::vector<Json> pending_feedback_;       // split "train", not yet trained
  std::deque<std::string> user_window_;      // users of the last trained records
  std::map<std::string, int64_t> user_counts_;  // over user_window_
  // Hashes of (prompt, chosen, rejected) of every stored pair: a new pair
  // whose reverse is here contradicts an established preference.
  std::set<uint64_t> pair_keys_;
  Json feedback_since_ = Json::object();     // counts since the last snapshot
  std::string last_champion_;                // the champion alias last seen
  std::string reset_from_;                   // discarded snapshot, for the next one's metrics
  std::mutex reset_mu_;
  std::string reset_reason_;                 // GUARDED_BY(reset_mu_) non-empty: reset requested
  std::string reset_candidate_;              // GUARDED_BY(reset_mu_) the rejected candidate
  std::vector<std::string> forgotten_slices_;  // GUARDED_BY(reset_mu_) replay slices to boost
  std::set<std::string> labelled_users_;     // users with their own /metrics label
  double feedback_loss_avg_ = 0;
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_LEARNER_H_

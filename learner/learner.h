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
#include "learner/checkpoint_state.h"
#include "learner/objectives.h"
#include "learner/replay_buffer.h"
#include "learner/trainer.h"
#include "store/store.h"

namespace streamlm {

class DataParallel;  // learner/data_parallel.h

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

  // `dp`: rank 0 of data-parallel learners, or null for a learner on its
  // own. Rank 0 owns the store, hands every other rank its model and state
  // here, and drives them from Run() (README.md "Data-parallel learners").
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Learner>> Create(
      const Config& config, const std::string& brokers, Store* store,
      Counters* counters, CandidateCallback on_candidate, DataParallel* dp = nullptr);
  // A data-parallel rank above 0: no store; it waits here for rank 0's
  // model, optimizer state and its own share of the checkpoint, then reads
  // its partitions of the text topic. Run() follows rank 0's commands.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Learner>> CreateWorker(
      const Config& config, const std::string& brokers, Counters* counters,
      DataParallel* dp);

  // Consumes, trains and snapshots until Stop(); then checkpoints. Of
  // data-parallel learners, a Stop() on any rank stops them all, each
  // through rank 0's last checkpoint.
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
  using LossFn = std::function<torch::Tensor(CausalLm&)>;
  // A stream batch: `n_fresh` blocks off the front of the pending tokens
  // (with the source of each) plus `n_replay` replayed ones.
  struct StreamBatch {
    std::vector<TokenBlock> blocks;  // fresh, then replayed
    std::vector<TokenBlock> fresh;
    std::vector<std::string> sources;  // of each fresh block
  };
  StreamBatch TakeStreamBatch(int n_fresh, int n_replay) const;
  // Fresh and replayed blocks of a stream step (learner.batch_size,
  // learner.replay_fraction).
  std::pair<int, int> StreamSplit() const;
  // Drops the batch's fresh tokens from the pending ones, adds its blocks
  // to replay and counts them.
  void ConsumeStreamBatch(const StreamBatch& batch);
  // Stream steps the pending tokens make now (data-parallel readiness).
  int64_t StreamStepsReady() const;
  // One optimizer step, alone or (data-parallel) averaged over the ranks
  // with `weight` (the blocks this rank trained on; 0 with no `loss`).
  // Rank 0 sends the matching command first.
  [[nodiscard]] absl::StatusOr<double> TrainStep(const LossFn* loss, double weight, double lr);

  // Data-parallel learners (learner_dp.cc). Rank 0's commands to the
  // others: [command, a, b, 0], broadcast.
  enum DpCommand : int64_t {
    kDpPoll = 1,      // a = poll ms; then every rank's readiness (DpGatherReady)
    kDpStep,          // a = learning rate bits, b = mask of ranks with a batch
    kDpFeedbackStep,  // a = learning rate bits; rank 0 alone has the loss
    kDpCheckpoint,    // the ranks' reports (DpGatherReports)
    kDpCommit,        // the checkpoint is stored: commit, take rank 0's weights
    kDpReset,         // fresh optimizer, rank 0's weights
    kDpStop,          // a = 1 when rank 0 stops on an error
  };
  static int64_t DoubleBits(double v);
  static double BitsDouble(int64_t bits);
  bool leader() const;  // rank 0 of more than one
  bool worker() const;  // a rank above 0
  [[nodiscard]] absl::Status RunLoop();
  [[nodiscard]] absl::Status RunWorker();
  // Rank 0: the command every other rank executes next.
  [[nodiscard]] absl::Status DpSend(int64_t command, int64_t a = 0, int64_t b = 0);
  // Rank 0, in Create(): every rank's model, optimizer and state.
  [[nodiscard]] absl::Status DpHandOut(const LearnerState& st);
  // Rank 0, after its poll: every rank's readiness, stop and error flags.
  [[nodiscard]] absl::Status DpGatherReady(bool own_error);
  // Rank 0, in Checkpoint(): the other ranks' reports, merged into the
  // checkpoint (offsets, held-out records, counts) and `ranks_state`.
  [[nodiscard]] absl::Status DpGatherReports(const absl::Status& own_rejects,
                                             std::map<int32_t, int64_t>* next_offsets,
                                             std::map<int32_t, int64_t>* first_seen,
                                             Json* ranks_state);
  // Rank 0, after a checkpoint: the other ranks commit and take rank 0's weights.
  [[nodiscard]] absl::Status DpCommitted();
  // This rank's partitions of the text topic (all of them when alone).
  PartitionShare Share() const;
  // A rank above 0: the next offset of each of its partitions.
  std::map<int32_t, int64_t> RankNextOffsets() const;
  // A rank above 0: its report for rank 0's checkpoint.
  std::string DpReport(const absl::Status& rejects);
  // The ingest pipeline and the text source, reading from start_offsets_
  // (this rank's share of the partitions when data-parallel).
  [[nodiscard]] absl::Status OpenTextSource(const std::string& brokers, Counters* counters);
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

  // Data-parallel learners (README.md "Data-parallel learners").
  DataParallel* dp_ = nullptr;
  std::vector<int64_t> dp_ready_;  // rank 0: stream steps each rank can take
  std::chrono::steady_clock::time_point dp_uneven_since_{};  // some ranks ready, not all
  bool dp_stop_sent_ = false;
  absl::Status worker_error_;  // a rank above 0: its consumer error, reported to rank 0
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_LEARNER_H_

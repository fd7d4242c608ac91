// StreamLM configuration: one flat set of dotted keys ("learner.batch_size"),
// each settable from a YAML file (nested maps), an environment variable
// (STREAMLM_LEARNER_BATCH_SIZE) or a flag (--learner.batch_size), in that
// order of increasing precedence. Unknown keys and bad values stop start-up
// with an error that names the key.
//
// Thread-safety: a Config is a plain value; share it read-only after loading.
#ifndef STREAMLM_COMMON_CONFIG_H_
#define STREAMLM_COMMON_CONFIG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ingest/clean_options.h"

namespace streamlm {

struct Config {
  // Where the RocksDB store lives.
  std::string data_dir = "./streamlm-data";
  // Bootstrap servers of an external Kafka cluster; empty = embedded broker.
  std::string kafka;
  // Serving endpoint address.
  std::string http = "127.0.0.1:8080";
  // libtorch threads of the learner, bootstrap and evaluator; 0 = all cores,
  // less serving.threads when serving runs in the same process.
  int threads = 0;

  // Embedded broker.
  int broker_port = 9092;
  int broker_partitions = 1;

  // Topics.
  std::string topic_text = "streamlm.text";
  std::string topic_feedback = "streamlm.feedback";
  std::string topic_rejects = "streamlm.rejects";
  std::string topic_decisions = "streamlm.decisions";
  // Between separate roles (docs/architecture.md "Roles as processes"):
  // `learn` announces each new candidate here; `evaluate` proposes its
  // verdicts here, and the store's owner commits them as decisions.
  std::string topic_candidates = "streamlm.candidates";
  std::string topic_verdicts = "streamlm.verdicts";

  // Model architecture used by bootstrap (a GPT-style decoder).
  int model_vocab_size = 2048;
  int model_context_tokens = 128;
  int model_d_model = 128;
  int model_layers = 4;
  int model_heads = 4;

  // Bootstrap pretraining.
  std::vector<std::string> bootstrap_corpus = {"data/corpus/brown.txt"};
  // When set, the corpus is this topic's whole history on `kafka` instead.
  std::string bootstrap_topic;
  int bootstrap_checkpoint_every_steps = 100;
  int bootstrap_steps = 600;
  int bootstrap_batch_size = 16;
  double bootstrap_lr = 3e-3;
  double bootstrap_heldout_fraction = 0.02;
  int bootstrap_eval_sequences = 64;
  int64_t bootstrap_max_corpus_bytes = 0;  // 0 = whole corpus
  int bootstrap_progress_every_steps = 20;
  int64_t seed = 1234;

  // Online learner.
  std::string learner_group = "streamlm-learner";
  int learner_batch_size = 8;
  double learner_lr = 1e-4;
  double learner_replay_fraction = 0.5;
  int learner_replay_capacity_blocks = 4096;
  int learner_snapshot_every_steps = 50;
  double learner_snapshot_every_s = 60;
  // Data-parallel learners (learn --world-size): how long a collective may
  // wait for a peer, and how long ranks with a batch wait for the others
  // before stepping without them.
  double learner_dp_timeout_s = 600;
  double learner_dp_max_wait_s = 10;
  int learner_heldout_every_records = 10;  // 1 in N records never trained on
  int64_t learner_max_record_bytes = 1 << 20;
  // After a rejected candidate or a rollback: "reset" goes back to the
  // champion's weights (fresh optimizer state); "continue" keeps training
  // the learner's own weights.
  std::string learner_on_rejection = "reset";
  // Learning rate per cycle, a cycle being the training between two
  // candidates (snapshot_every_steps, fewer when snapshot_every_s comes
  // first; a new one also after a reset). "cosine": linear re-warm from
  // min_lr_ratio*lr to lr over warmup_steps (at most half the cycle), cosine
  // re-decay to min_lr_ratio*lr at the cycle's last step. "wsd" re-warms the
  // same way, holds lr, and re-decays over only the cycle's last
  // decay_fraction (the default: bench/README.md, "Continual learning",
  // measured it ahead of cosine). "constant" keeps learner.lr.
  std::string learner_lr_schedule = "wsd";
  int learner_warmup_steps = 10;
  double learner_min_lr_ratio = 0.1;
  double learner_decay_fraction = 0.2;
  // Replay by slice (each stream source, and "base" for the base corpus).
  double learner_replay_base_share = 0.5;
  int learner_replay_max_slices = 8;
  double learner_replay_max_boost = 4;  // a forgotten slice's weight, at most

  // Learning from human feedback (learner/objectives.h): DPO for preference
  // pairs, KTO for ratings, SFT for corrections, each against a frozen
  // reference model (the champion when the cycle started).
  int feedback_batch_size = 8;         // feedback records per feedback step
  double feedback_lr = 1e-4;           // learning rate of feedback steps
  // LM blocks replayed in each feedback step, per feedback record, so
  // feedback steps do not forget the language-modelling objective.
  double feedback_replay_ratio = 0.5;
  double feedback_lm_weight = 1.0;     // weight of those replayed blocks' loss
  double feedback_beta = 0.1;          // DPO / KTO temperature
  double feedback_dpo_weight = 1.0;
  double feedback_kto_weight = 1.0;
  double feedback_sft_weight = 1.0;
  double feedback_kto_desirable_weight = 1.0;
  double feedback_kto_undesirable_weight = 1.0;
  int feedback_heldout_every = 5;      // 1 in N feedback records is held out
  // A user's feedback beyond this share of the last feedback.user_window
  // trained records (and beyond feedback.user_min_quota) is kept but not
  // trained on.
  double feedback_max_user_share = 0.25;
  int feedback_user_window = 1000;
  int feedback_user_min_quota = 50;
  // Trusted feedback (JSON lines of feedback records): never trained on,
  // always evaluated. `streamlm feedback trust FILE` stores one in the store.
  std::string feedback_trusted_file;

  // Deduplication of stream records (exact and MinHash near-duplicates).
  int64_t dedup_window_docs = 100000;  // 0 = off
  int64_t dedup_window_s = 0;          // also forget after this long; 0 = no time bound
  double dedup_threshold = 0.75;

  // Cleaning, per source: `clean.text.*` for streamlm.text, `clean.feedback.*`
  // for the text fields of streamlm.feedback.
  CleanOptions clean_text;
  CleanOptions clean_feedback = DefaultFeedbackCleanOptions();
  int ingest_threads = 0;  // threads of the ingest pipeline; 0 = all cores

  // Store retention: weights of the newest N snapshots are kept, plus the
  // aliased ones (champion, previous, candidate) and those the current
  // checkpoints need; older snapshots keep only their metadata (lineage).
  int store_keep_snapshots = 8;
  int store_min_free_mb = 64;

  // Evaluator and gate.
  int eval_stream_window_records = 512;
  int eval_min_stream_tokens = 256;
  double gate_max_forgetting = 0.05;   // nats/token the base loss may rise
  double gate_min_adaptation = 0.0;    // nats/token the stream loss must fall
  int eval_feedback_window = 512;      // newest held-out feedback records scored
  int gate_min_feedback_pairs = 16;    // held-out feedback needed to judge it
  // Preference accuracy a candidate may lose on established or trusted
  // feedback before the loss counts (the rule uses the 95% CI's upper end).
  double gate_max_preference_regression = 0.02;
  double gate_alpha = 0.05;            // sequential test's error rate over all looks
  int gate_max_looks = 4;              // looks at one candidate before it stays held
  int gate_min_slice_tokens = 512;     // tokens a slice needs for its own forgetting rule
  int eval_recheck_records = 64;       // new held-out records before a held candidate's next look

  // Rollback monitor (evaluator/rollback.h): rolls the champion back to the
  // previous one on a confident serving-side regression.
  bool rollback_enabled = true;
  double rollback_check_every_s = 30;      // seconds between checks
  int64_t rollback_min_requests = 200;     // per model, for the error rate
  int64_t rollback_min_feedback = 30;      // per model, for the negative-feedback rate
  double rollback_max_error_rate_increase = 0.02;         // tolerated, absolute
  double rollback_max_negative_feedback_increase = 0.10;  // tolerated, absolute
  double rollback_max_stream_loss_increase = 0.05;        // nats/token tolerated
  int64_t rollback_min_stream_tokens = 512;  // held-out tokens since the promotion
  int rollback_max_stream_records = 256;     // newest held-out records scored per check

  // Serving.
  std::string serving_admin_token;  // empty = admin API open
  int serving_max_tokens = 256;
  int serving_poll_ms = 1000;
  // Compute budget and limits of the serving scheduler (continuous batching).
  // Serving computes on this many cores (one worker thread each) while the
  // learner works; 0 = half the cores (>= 1). While the learner is idle it
  // may use serving.idle_threads; 0 = all cores.
  int serving_threads = 0;
  int serving_idle_threads = 0;
  int serving_max_batch = 16;   // sequences decoded together
  int serving_max_queue = 64;   // requests waiting beyond that; more get 429
  double serving_request_timeout_s = 300;  // per-request deadline; 0 = none
  int64_t serving_max_body_bytes = 1 << 20;  // larger request bodies get 413
  // Hostile clients (serving/README.md "Connections"): connections served at
  // once (a thread each; more get 503), and whole deadlines in seconds for a
  // request's headers (from accept or the previous response) and its body
  // (from the end of the headers); a late request gets 408 and is closed.
  int serving_max_connections = 1024;
  double serving_header_timeout_s = 10;
  double serving_body_timeout_s = 30;
  // Completions remembered for POST /v1/feedback (by id), and for how long.
  int serving_completion_log_size = 10000;
  double serving_completion_log_ttl_s = 3600;
};

// Describes one key: its name, a help line, and how to read/write it.
struct ConfigKey {
  std::string name;
  std::string help;
  std::function<absl::Status(Config&, const std::string&)> set;
  std::function<std::string(const Config&)> get;
};

// All keys, in a stable order.
const std::vector<ConfigKey>& ConfigKeys();

// Sets one key from its textual value; the error names the key.
[[nodiscard]] absl::Status SetConfigValue(Config& config,
                                          const std::string& key,
                                          const std::string& value);

// Applies a YAML file (nested maps flatten to dotted keys).
[[nodiscard]] absl::Status ApplyYamlFile(Config& config,
                                         const std::string& path);
// Applies a YAML document given as text.
[[nodiscard]] absl::Status ApplyYamlText(Config& config,
                                         const std::string& text,
                                         const std::string& origin);

// Applies STREAMLM_<KEY> environment variables (dots become underscores).
[[nodiscard]] absl::Status ApplyEnvironment(Config& config);

// Environment variable name for a key.
std::string EnvNameForKey(const std::string& key);

// Renders the effective configuration as "key: value" lines.
std::string DumpConfig(const Config& config);

}  // namespace streamlm

#endif  // STREAMLM_COMMON_CONFIG_H_

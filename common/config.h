// StreamLM configuration: one flat set of dotted keys ("learner.batch_size"),
// each settable from a YAML file (nested maps), an environment variable
// (STREAMLM_LEARNER_BATCH_SIZE) or a flag (--learner.batch_size), in that
// order of increasing precedence. Unknown keys and bad values stop start-up
// with an error that names the key.
//
// Each module owns the options struct of its keys (learner/learner_options.h,
// serving/serving_options.h, ...: plain values with their defaults, no
// dependencies); Config holds one of each, and config.cc only maps the keys
// onto their fields. What several modules share (addresses, topics, threads,
// the seed) stays at the top level.
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
#include "evaluator/evaluator_options.h"
#include "ingest/ingest_options.h"
#include "learner/bootstrap_options.h"
#include "learner/feedback_options.h"
#include "learner/learner_options.h"
#include "model/model_options.h"
#include "serving/serving_options.h"
#include "store/store_options.h"

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

  // The model.* keys: the architecture bootstrap trains; model/model_options.h.
  ModelOptions model;

  // The bootstrap.* keys: batch pretraining (learner/bootstrap.h); learner/bootstrap_options.h.
  BootstrapOptions bootstrap;
  int64_t seed = 1234;

  // The learner.* keys: the online learner (learner/learner.h); learner/learner_options.h.
  LearnerOptions learner;

  // The feedback.* keys: learning from human feedback (learner/objectives.h); learner/feedback_options.h.
  FeedbackOptions feedback;

  // The dedup.* keys: near-duplicate removal of stream records (ingest/dedup.h); ingest/ingest_options.h.
  DedupWindowOptions dedup;

  // Cleaning, per source: `clean.text.*` for streamlm.text, `clean.feedback.*`
  // for the text fields of streamlm.feedback.
  CleanOptions clean_text;
  CleanOptions clean_feedback = DefaultFeedbackCleanOptions();
  // The ingest.* keys: the ingest pipeline (ingest/pipeline.h); ingest/ingest_options.h.
  IngestOptions ingest;

  // The store.* keys: retention and free-space guard (store/store.h); store/store_options.h.
  StoreOptions store;

  // The eval.* keys: what the evaluator scores (evaluator/evaluator.h); evaluator/evaluator_options.h.
  EvalOptions eval;
  // The gate.* keys: the promotion rules (evaluator/gate.h); evaluator/evaluator_options.h.
  GateOptions gate;

  // The rollback.* keys: the rollback monitor (evaluator/rollback.h); evaluator/evaluator_options.h.
  RollbackOptions rollback;

  // The serving.* keys: the serving endpoint (serving/server.h); serving/serving_options.h.
  ServingOptions serving;
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

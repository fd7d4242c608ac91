// Options structs of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::eval, Config::gate, Config::rollback).
#ifndef STREAMLM_EVALUATOR_EVALUATOR_OPTIONS_H_
#define STREAMLM_EVALUATOR_EVALUATOR_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The eval.* keys: what the evaluator scores (evaluator/evaluator.h).
struct EvalOptions {
  int stream_window_records = 512;
  int min_stream_tokens = 256;
  int feedback_window = 512;      // newest held-out feedback records scored
  int recheck_records = 64;       // new held-out records before a held candidate's next look
};

// The gate.* keys: the promotion rules (evaluator/gate.h).
struct GateOptions {
  double max_forgetting = 0.05;   // nats/token the base loss may rise
  double min_adaptation = 0.0;    // nats/token the stream loss must fall
  int min_feedback_pairs = 16;    // held-out feedback needed to judge it
  // Preference accuracy a candidate may lose on established or trusted
  // feedback before the loss counts (the rule uses the 95% CI's upper end).
  double max_preference_regression = 0.02;
  double alpha = 0.05;            // sequential test's error rate over all looks
  int max_looks = 4;              // looks at one candidate before it stays held
  int min_slice_tokens = 512;     // tokens a slice needs for its own forgetting rule
};

// The rollback.* keys: the rollback monitor (evaluator/rollback.h).
struct RollbackOptions {
  // Rolls the champion back to the previous one on a confident serving-side
  // regression.
  bool enabled = true;
  double check_every_s = 30;      // seconds between checks
  int64_t min_requests = 200;     // per model, for the error rate
  int64_t min_feedback = 30;      // per model, for the negative-feedback rate
  double max_error_rate_increase = 0.02;         // tolerated, absolute
  double max_negative_feedback_increase = 0.10;  // tolerated, absolute
  double max_stream_loss_increase = 0.05;        // nats/token tolerated
  int64_t min_stream_tokens = 512;  // held-out tokens since the promotion
  int max_stream_records = 256;     // newest held-out records scored per check
};

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_EVALUATOR_OPTIONS_H_

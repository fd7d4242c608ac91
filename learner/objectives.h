// Objectives for learning from human feedback, and the token layout they
// share with the evaluator.
//
// Every feedback record becomes one or two (prompt, response) sequences:
// [eos] prompt response [eos], scored only on the response and the final eos
// (the model learns to stop). The losses follow the published formulas, as
// TRL implements them:
//   DPO (Rafailov et al. 2023), sigmoid form, per pair:
//     -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))
//   KTO (Ethayarajh et al. 2024, eq. 7), per rated response, with the
//   reference point z0 = max(0, mean(pi_kl - ref_kl)) estimated on
//   mismatched (prompt, response) pairs of the batch and not differentiated:
//     desirable:   w_d * (1 - sigmoid(beta * ((pi - ref) - z0)))
//     undesirable: w_u * (1 - sigmoid(beta * (z0 - (pi - ref))))
//   SFT on corrections: mean next-token cross-entropy over response tokens.
// pi_* and ref_* are summed log-probabilities of the response under the
// policy and the frozen reference model.
//
// Pure functions of their inputs; thread-safe.
#ifndef STREAMLM_LEARNER_OBJECTIVES_H_
#define STREAMLM_LEARNER_OBJECTIVES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "model/language_model.h"

namespace streamlm {

// Label value of positions that are not scored.
inline constexpr int64_t kIgnoreLabel = -100;

// One (prompt, response) sequence: `ids` is the model input followed by the
// last target, `response_begin` the index in `ids` of the first response
// token (every id from there on is a scored target).
struct ResponseSequence {
  std::vector<int32_t> ids;
  size_t response_begin = 0;
};

// Builds [eos] prompt response [eos] within `context_tokens` + 1 ids. The
// response is cut to fit; a prompt that leaves no room for one response
// token is an error (reason `prompt_too_long`).
absl::StatusOr<ResponseSequence> MakeResponseSequence(const Tokenizer& tok,
                                                      const std::string& prompt,
                                                      const std::string& response,
                                                      int context_tokens);

// A cleaned feedback record (ingest/pipeline.h) as sequences.
struct FeedbackExample {
  enum class Kind { kPreference, kRating, kCorrection };
  Kind kind = Kind::kRating;
  // kPreference: {chosen, rejected}; kRating: {response};
  // kCorrection: {correction, response}.
  std::vector<ResponseSequence> seqs;
  int rating = 0;    // kRating: 1 or -1
  std::string user;  // "" when not given
  std::string prompt;
};
const char* FeedbackKindName(FeedbackExample::Kind kind);

// Fails with the reason in the message's first word: `prompt_too_long`, or
// `identical_responses` when the two sides tokenize the same after cutting.
absl::StatusOr<FeedbackExample> MakeFeedbackExample(const Tokenizer& tok, const Json& record,
                                                    int context_tokens);

// Pads sequences into inputs [N, L] and labels [N, L] (kIgnoreLabel off the
// response), L = longest sequence - 1.
void PackResponseBatch(const std::vector<const ResponseSequence*>& seqs, torch::Tensor* inputs,
                       torch::Tensor* labels);

// Summed log-probability of each row's labelled tokens: logits [N, L, V],
// labels [N, L]. Differentiable; [N].
torch::Tensor SequenceLogprobs(const torch::Tensor& logits, const torch::Tensor& labels);

// Mean DPO loss over pairs; inputs [P].
torch::Tensor DpoLoss(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                      const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected,
                      double beta);

// KTO reference point from mismatched pairs: max(0, mean(policy - ref)),
// detached. Zero for empty inputs.
torch::Tensor KtoReferencePoint(const torch::Tensor& policy_kl, const torch::Tensor& ref_kl);

// Mean KTO loss over rated responses; `desirable` [R] bool.
torch::Tensor KtoLoss(const torch::Tensor& policy, const torch::Tensor& ref,
                      const torch::Tensor& desirable, const torch::Tensor& z0, double beta,
                      double desirable_weight, double undesirable_weight);

// Mean cross-entropy over labelled tokens.
torch::Tensor SftLoss(const torch::Tensor& logits, const torch::Tensor& labels);

// Summed response log-probabilities and response token counts of `seqs`
// under `model`, without gradients (evaluation and reference scoring).
struct ResponseScore {
  double logprob = 0;
  int64_t tokens = 0;
};
std::vector<ResponseScore> ScoreResponses(LanguageModel& model,
                                          const std::vector<const ResponseSequence*>& seqs,
                                          int batch_size = 16);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_OBJECTIVES_H_

// Trainer: AdamW steps on a LanguageModel it shares with nobody while
// training. Not thread-safe.
#ifndef STREAMLM_LEARNER_TRAINER_H_
#define STREAMLM_LEARNER_TRAINER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/language_model.h"
#include "model/token_blocks.h"

namespace streamlm {

// Token blocks of equal length as an int64 tensor [blocks, length].
torch::Tensor BlocksTensor(const std::vector<TokenBlock>& blocks);

// The mean next-token loss of `blocks` (each context+1 tokens).
std::function<torch::Tensor(CausalLm&)> BlocksLoss(const std::vector<TokenBlock>& blocks);

class Trainer {
 public:
  Trainer(std::shared_ptr<LanguageModel> model, double lr,
          double weight_decay = 0.01);

  // One optimizer step on `blocks` (each context+1 tokens: input and shifted
  // target). Returns the mean loss before the step (nats/token).
  double Step(const std::vector<TokenBlock>& blocks, double lr);
  // One optimizer step on the loss `loss_fn` computes from the model (in
  // train mode). Returns that loss before the step.
  double StepWith(const std::function<torch::Tensor(CausalLm&)>& loss_fn, double lr);
  // One data-parallel step: `reduce` turns this rank's gradients (of
  // `loss_fn`'s loss, or none when `loss_fn` is null: this rank trained on
  // nothing this step) into the ranks' mean before clipping and the AdamW
  // step, so every rank takes the same step. Returns this rank's loss (0
  // without `loss_fn`), or `reduce`'s error (no step is taken).
  using GradientReducer =
      std::function<absl::Status(const std::vector<torch::Tensor>& params)>;
  [[nodiscard]] absl::StatusOr<double> StepReduced(
      const std::function<torch::Tensor(CausalLm&)>* loss_fn, double lr,
      const GradientReducer& reduce);

  std::string SerializeOptimizer();
  [[nodiscard]] absl::Status RestoreOptimizer(const std::string& bytes);

  LanguageModel& model() { return *model_; }
  const std::shared_ptr<LanguageModel>& shared_model() { return model_; }

 private:
  std::shared_ptr<LanguageModel> model_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_TRAINER_H_

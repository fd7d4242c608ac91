#include "learner/trainer.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "model/cpu_tensor_cache.h"

namespace streamlm {

Trainer::Trainer(std::shared_ptr<LanguageModel> model, double lr,
                 double weight_decay)
    : model_(std::move(model)) {
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      model_->net().parameters(),
      torch::optim::AdamWOptions(lr).betas({0.9, 0.95}).weight_decay(weight_decay));
}

torch::Tensor BlocksTensor(const std::vector<TokenBlock>& blocks) {
  const int64_t B = static_cast<int64_t>(blocks.size());
  const int64_t L = static_cast<int64_t>(blocks[0].size());
  auto data = torch::empty({B, L}, torch::kLong);
  auto acc = data.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < L; ++t) acc[b][t] = blocks[b][t];
  }
  return data;
}

std::function<torch::Tensor(CausalLm&)> BlocksLoss(const std::vector<TokenBlock>& blocks) {
  const torch::Tensor data = BlocksTensor(blocks);
  return [data](CausalLm& net) {
    const int64_t L = data.size(1);
    return net.Loss(data.slice(1, 0, L - 1), data.slice(1, 1, L));
  };
}

double Trainer::Step(const std::vector<TokenBlock>& blocks, double lr) {
  return StepWith(BlocksLoss(blocks), lr);
}

double Trainer::StepWith(const std::function<torch::Tensor(CausalLm&)>& loss_fn, double lr) {
  return *StepReduced(&loss_fn, lr, nullptr);  // no reducer: cannot fail
}

absl::StatusOr<double> Trainer::StepReduced(
    const std::function<torch::Tensor(CausalLm&)>* loss_fn, double lr,
    const GradientReducer& reduce) {
  // Each step frees and allocates the same activations and gradients:
  // reuse their buffers instead of page-faulting fresh ones.
  ScopedCpuTensorCache tensor_cache;
  CausalLm& net = model_->net();
  net.train();
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
  // Gradients start undefined rather than zero-filled: backward then hands
  // its result over instead of adding it to zeros (a parameter the loss
  // does not reach keeps no gradient, and AdamW leaves it alone this step).
  for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
  double loss_value = 0;
  if (loss_fn != nullptr) {
    auto loss = (*loss_fn)(net);
    loss.backward();
    loss_value = loss.item<double>();
  }
  if (reduce) {
    absl::Status s = reduce(net.parameters());
    if (!s.ok()) {
      net.eval();
      return s;
    }
  }
  torch::nn::utils::clip_grad_norm_(net.parameters(), 1.0);
  optimizer_->step();
  net.eval();
  return loss_value;
}

std::string Trainer::SerializeOptimizer() {
  std::ostringstream out;
  torch::serialize::OutputArchive archive;
  optimizer_->save(archive);
  archive.save_to(out);
  return out.str();
}

absl::Status Trainer::RestoreOptimizer(const std::string& bytes) {
  try {
    std::istringstream in(bytes);
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    optimizer_->load(archive);
  } catch (const c10::Error& e) {
    return absl::DataLossError(
        absl::StrCat("optimizer state cannot be restored: ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

}  // namespace streamlm

#include "learner/objectives.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace streamlm {
namespace F = torch::nn::functional;
namespace {
// Half-precision logits are scored in float; double stays double.
torch::Tensor AtLeastFloat(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat);
}
}  // namespace

absl::StatusOr<ResponseSequence> MakeResponseSequence(const Tokenizer& tok,
                                                      const std::string& prompt,
                                                      const std::string& response,
                                                      int context_tokens) {
  ResponseSequence s;
  s.ids.push_back(tok.eos_id());  // documents start after EOS, as in training
  std::vector<int32_t> p = tok.Encode(prompt);
  s.ids.insert(s.ids.end(), p.begin(), p.end());
  s.response_begin = s.ids.size();
  const size_t limit = static_cast<size_t>(context_tokens) + 1;
  if (s.response_begin + 1 > limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_too_long: the prompt is ", p.size(), " tokens; the context holds ",
        context_tokens, " with at least one response token"));
  }
  std::vector<int32_t> r = tok.Encode(response);
  s.ids.insert(s.ids.end(), r.begin(), r.end());
  s.ids.push_back(tok.eos_id());
  if (s.ids.size() > limit) s.ids.resize(limit);
  return s;
}

const char* FeedbackKindName(FeedbackExample::Kind kind) {
  switch (kind) {
    case FeedbackExample::Kind::kPreference: return "preference";
    case FeedbackExample::Kind::kRating: return "rating";
    case FeedbackExample::Kind::kCorrection: return "correction";
  }
  return "unknown";
}

absl::StatusOr<FeedbackExample> MakeFeedbackExample(const Tokenizer& tok, const Json& record,
                                                    int context_tokens) {
  FeedbackExample e;
  e.prompt = record.value("prompt", "");
  e.user = record.value("user", "");
  std::vector<std::string> responses;
  if (record.contains("chosen")) {
    e.kind = FeedbackExample::Kind::kPreference;
    responses = {record.value("chosen", ""), record.value("rejected", "")};
  } else if (record.contains("correction")) {
    e.kind = FeedbackExample::Kind::kCorrection;
    responses = {record.value("correction", ""), record.value("response", "")};
  } else {
    e.kind = FeedbackExample::Kind::kRating;
    e.rating = record.value("rating", 0);
    responses = {record.value("response", "")};
  }
  for (const std::string& r : responses) {
    auto s = MakeResponseSequence(tok, e.prompt, r, context_tokens);
    if (!s.ok()) return s.status();
    e.seqs.push_back(std::move(*s));
  }
  if (e.seqs.size() == 2 && e.seqs[0].ids == e.seqs[1].ids) {
    return absl::InvalidArgumentError(absl::StrCat(
        "identical_responses: the two responses are the same",
        responses[0] == responses[1] ? "" : " within the context"));
  }
  return e;
}

void PackResponseBatch(const std::vector<const ResponseSequence*>& seqs, torch::Tensor* inputs,
                       torch::Tensor* labels) {
  const int64_t n = static_cast<int64_t>(seqs.size());
  int64_t len = 1;
  for (const ResponseSequence* s : seqs) len = std::max<int64_t>(len, s->ids.size() - 1);
  *inputs = torch::zeros({n, len}, torch::kLong);
  *labels = torch::full({n, len}, kIgnoreLabel, torch::kLong);
  auto in = inputs->accessor<int64_t, 2>();
  auto lab = labels->accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<int32_t>& ids = seqs[i]->ids;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      in[i][t] = ids[t];
      // Position t predicts ids[t + 1]; scored from the response on.
      if (t + 1 >= seqs[i]->response_begin) lab[i][t] = ids[t + 1];
    }
  }
}

torch::Tensor SequenceLogprobs(const torch::Tensor& logits, const torch::Tensor& labels) {
  auto logp = torch::log_softmax(AtLeastFloat(logits), -1);
  auto mask = labels.ne(kIgnoreLabel);
  auto safe = labels.masked_fill(~mask, 0);
  auto picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1);
  return (picked * mask.to(picked.dtype())).sum(-1);
}

torch::Tensor DpoLoss(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                      const torch::Tensor& ref_chosen, const torch::Tensor& ref_rejected,
                      double beta) {
  auto logits = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected);
  return -F::logsigmoid(beta * logits).mean();
}

torch::Tensor KtoReferencePoint(const torch::Tensor& policy_kl, const torch::Tensor& ref_kl) {
  if (policy_kl.numel() == 0) return torch::zeros({}, torch::kFloat);
  return (policy_kl - ref_kl).mean().clamp_min(0).detach();
}

torch::Tensor KtoLoss(const torch::Tensor& policy, const torch::Tensor& ref,
                      const torch::Tensor& desirable, const torch::Tensor& z0, double beta,
                      double desirable_weight, double undesirable_weight) {
  auto logratios = policy - ref;
  auto chosen = desirable_weight * (1 - torch::sigmoid(beta * (logratios - z0)));
  auto rejected = undesirable_weight * (1 - torch::sigmoid(beta * (z0 - logratios)));
  return torch::where(desirable, chosen, rejected).mean();
}

torch::Tensor SftLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  return F::cross_entropy(AtLeastFloat(logits.reshape({-1, logits.size(-1)})),
                          labels.reshape({-1}),
                          F::CrossEntropyFuncOptions().ignore_index(kIgnoreLabel));
}

std::vector<ResponseScore> ScoreResponses(LanguageModel& model,
                                          const std::vector<const ResponseSequence*>& seqs,
                                          int batch_size) {
  torch::NoGradGuard no_grad;
  std::vector<ResponseScore> out(seqs.size());
  for (size_t b = 0; b < seqs.size(); b += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(seqs.size() - b, static_cast<size_t>(batch_size));
    std::vector<const ResponseSequence*> part(seqs.begin() + b, seqs.begin() + b + n);
    torch::Tensor inputs, labels;
    PackResponseBatch(part, &inputs, &labels);
    auto logp = SequenceLogprobs(model.net().forward(inputs), labels);
    auto counts = labels.ne(kIgnoreLabel).sum(-1);
    for (size_t i = 0; i < n; ++i) {
      out[b + i].logprob = logp[i].item<double>();
      out[b + i].tokens = counts[i].item<int64_t>();
    }
  }
  return out;
}

}  // namespace streamlm

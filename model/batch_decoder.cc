#include "model/batch_decoder.h"

#include <algorithm>

namespace streamlm {

BatchDecoder::BatchDecoder(std::shared_ptr<const LanguageModel> model, int max_sequences)
    : model_(std::move(model)),
      net_(&const_cast<LanguageModel&>(*model_).net()),
      max_sequences_(std::max(1, max_sequences)) {}

void BatchDecoder::EnsureCapacity(int64_t tokens) {
  const int64_t context = model_->config().context_tokens;
  if (tokens <= capacity_tokens_) return;
  int64_t cap = std::max<int64_t>(capacity_tokens_, 64);
  while (cap < tokens) cap *= 2;
  cap = std::min(cap, context);
  const ModelConfig& c = model_->config();
  const int64_t kv_heads = c.family == "llama" ? c.kv_heads_or_heads() : c.heads;
  const int64_t hd = c.d_model / c.heads;
  for (int layer = 0; layer < c.layers; ++layer) {
    auto k = torch::zeros({max_sequences_, kv_heads, cap, hd});
    auto v = torch::zeros({max_sequences_, kv_heads, cap, hd});
    if (capacity_tokens_ > 0) {
      k.slice(2, 0, capacity_tokens_).copy_(cache_.keys[layer]);
      v.slice(2, 0, capacity_tokens_).copy_(cache_.values[layer]);
      cache_.keys[layer] = k;
      cache_.values[layer] = v;
    } else {
      cache_.keys.push_back(k);
      cache_.values.push_back(v);
    }
  }
  capacity_tokens_ = cap;
}

BatchDecoder::SeqId BatchDecoder::Add(const std::vector<int32_t>& ids, torch::Tensor* logits) {
  torch::NoGradGuard no_grad;
  const int64_t T = static_cast<int64_t>(ids.size());
  TORCH_CHECK(T >= 1 && T <= model_->config().context_tokens, "prefill of ", T,
              " tokens: needs 1..context");
  TORCH_CHECK(active() < max_sequences_, "BatchDecoder is full");
  std::vector<int64_t> wide(ids.begin(), ids.end());
  KvCache one;
  auto out = net_->ForwardCached(torch::tensor(wide, torch::kLong).unsqueeze(0), &one,
                                 /*last_only=*/true);
  *logits = out[0][-1];
  EnsureCapacity(T);
  const int slot = active();
  for (size_t layer = 0; layer < one.keys.size(); ++layer) {
    cache_.keys[layer][slot].slice(1, 0, T).copy_(one.keys[layer][0]);
    cache_.values[layer][slot].slice(1, 0, T).copy_(one.values[layer][0]);
  }
  SeqId seq = next_id_++;
  slot_seq_.push_back(seq);
  slot_len_.push_back(T);
  seq_slot_[seq] = slot;
  return seq;
}

torch::Tensor BatchDecoder::Step(const std::vector<std::pair<SeqId, int64_t>>& feed) {
  torch::NoGradGuard no_grad;
  const int64_t B = active();
  TORCH_CHECK(static_cast<int64_t>(feed.size()) == B, "Step must feed every active sequence");
  std::vector<int64_t> tokens(B), positions(B);
  std::vector<int64_t> row_of_entry(feed.size());
  int64_t max_len = 0;
  for (size_t i = 0; i < feed.size(); ++i) {
    int slot = seq_slot_.at(feed[i].first);
    row_of_entry[i] = slot;
    tokens[slot] = feed[i].second;
    positions[slot] = slot_len_[slot];
    max_len = std::max(max_len, slot_len_[slot] + 1);
  }
  EnsureCapacity(max_len);
  SlotStep step;
  step.cache = &cache_;
  step.positions = torch::tensor(positions, torch::kLong);
  step.max_len = max_len;
  step.mask = (torch::arange(max_len, torch::kLong).unsqueeze(0) > step.positions.unsqueeze(1))
                  .view({B, 1, 1, max_len});
  auto logits = net_->ForwardSlots(torch::tensor(tokens, torch::kLong), step);
  for (int64_t s = 0; s < B; ++s) ++slot_len_[s];
  bool in_order = true;
  for (size_t i = 0; i < row_of_entry.size(); ++i) in_order &= row_of_entry[i] == static_cast<int64_t>(i);
  return in_order ? logits : logits.index_select(0, torch::tensor(row_of_entry, torch::kLong));
}

void BatchDecoder::Remove(SeqId seq) {
  auto it = seq_slot_.find(seq);
  if (it == seq_slot_.end()) return;
  const int slot = it->second;
  const int last = active() - 1;
  seq_slot_.erase(it);
  if (slot != last) {
    // Keep the active slots contiguous: the last one moves into the hole.
    torch::NoGradGuard no_grad;
    const int64_t len = slot_len_[last];
    for (size_t layer = 0; layer < cache_.keys.size(); ++layer) {
      cache_.keys[layer][slot].slice(1, 0, len).copy_(cache_.keys[layer][last].slice(1, 0, len));
      cache_.values[layer][slot].slice(1, 0, len).copy_(
          cache_.values[layer][last].slice(1, 0, len));
    }
    slot_seq_[slot] = slot_seq_[last];
    slot_len_[slot] = len;
    seq_slot_[slot_seq_[slot]] = slot;
  }
  slot_seq_.pop_back();
  slot_len_.pop_back();
}

int64_t BatchDecoder::Length(SeqId seq) const { return slot_len_[seq_slot_.at(seq)]; }

}  // namespace streamlm

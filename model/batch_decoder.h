// BatchDecoder: decodes many sequences of one model together, one token per
// sequence per Step(): the decode half of continuous batching. Each sequence
// owns a slot (a row) of a preallocated KV cache; active sequences occupy
// slots [0, active()) so a step reads the cache through views, and Remove()
// moves the last slot into the freed one. Prefill runs per sequence (Add).
//
// Batched and one-at-a-time decoding give the same logits up to float
// rounding (model_test checks greedy tokens and logprobs against Generate()).
//
// Not thread-safe: one scheduler thread owns a BatchDecoder. The model must
// outlive it and is only read (no-grad).
#ifndef STREAMLM_MODEL_BATCH_DECODER_H_
#define STREAMLM_MODEL_BATCH_DECODER_H_

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/gpt.h"
#include "model/language_model.h"

namespace streamlm {

class BatchDecoder {
 public:
  using SeqId = int64_t;

  BatchDecoder(std::shared_ptr<const LanguageModel> model, int max_sequences);

  // Prefills `ids` (1 <= size <= context) into a free slot. Returns the new
  // sequence and sets `logits` to the last position's logits [V].
  // REQUIRES: active() < capacity().
  SeqId Add(const std::vector<int32_t>& ids, torch::Tensor* logits);
  // Feeds one token to each listed sequence; `feed` must name every active
  // sequence once. Returns logits [n, V], row i for feed[i].
  // REQUIRES: Length(seq) < context for each.
  torch::Tensor Step(const std::vector<std::pair<SeqId, int64_t>>& feed);
  void Remove(SeqId seq);
  // Tokens cached for `seq`.
  int64_t Length(SeqId seq) const;
  int active() const { return static_cast<int>(slot_seq_.size()); }
  int capacity() const { return max_sequences_; }
  const LanguageModel& model() const { return *model_; }

 private:
  void EnsureCapacity(int64_t tokens);

  std::shared_ptr<const LanguageModel> model_;
  CausalLm* net_;  // model_'s network, used for no-grad inference only
  int max_sequences_;
  int64_t capacity_tokens_ = 0;
  SlotKvCache cache_;
  std::vector<SeqId> slot_seq_;      // slot -> sequence, for slots [0, active)
  std::vector<int64_t> slot_len_;    // slot -> cached tokens
  std::unordered_map<SeqId, int> seq_slot_;
  SeqId next_id_ = 1;
};

}  // namespace streamlm

#endif  // STREAMLM_MODEL_BATCH_DECODER_H_

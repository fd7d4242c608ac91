// ReplayBuffer: a bounded uniform sample (reservoir) of every block offered
// to it, from which each online batch draws replayed data. Not thread-safe.
#ifndef STREAMLM_LEARNER_REPLAY_BUFFER_H_
#define STREAMLM_LEARNER_REPLAY_BUFFER_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/token_blocks.h"

namespace streamlm {

class ReplayBuffer {
 public:
  ReplayBuffer(size_t capacity_blocks, uint64_t seed);

  // Offers a block; kept with probability capacity / offered-so-far.
  void Add(const TokenBlock& block);
  // `n` blocks drawn uniformly with replacement (fewer if empty).
  std::vector<TokenBlock> Sample(size_t n);

  size_t size() const { return blocks_.size(); }
  size_t capacity() const { return capacity_; }
  int64_t offered() const { return offered_; }

  std::string Serialize() const;
  [[nodiscard]] absl::Status Restore(const std::string& bytes);

 private:
  size_t capacity_;
  int64_t offered_ = 0;
  std::vector<TokenBlock> blocks_;
  std::mt19937_64 rng_;
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_REPLAY_BUFFER_H_

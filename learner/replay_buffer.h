// ReplayBuffer: a bounded uniform sample (reservoir) of every block offered
// to it, from which each online batch draws replayed data. Not thread-safe.
#ifndef STREAMLM_LEARNER_REPLAY_BUFFER_H_
#define STREAMLM_LEARNER_REPLAY_BUFFER_H_

#include <cstdint>
#include <map>
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
  // The sampling generator's state (text), for checkpoints.
  std::string RngState() const;
  [[nodiscard]] absl::Status SetRngState(const std::string& state);

 private:
  size_t capacity_;
  int64_t offered_ = 0;
  std::vector<TokenBlock> blocks_;
  std::mt19937_64 rng_;
};

// SlicedReplay: one reservoir per slice of the data (each stream `source`,
// and "base" for the bootstrap or base corpus), sampled by configured
// shares, so that no slice is crowded out by a louder one. The base slice
// gets `base_share` of the replayed blocks, the stream slices share the rest
// equally; a slice that was forgotten gets its weight multiplied (Boost)
// until the next promotion (ClearBoosts). At most `max_slices` stream
// slices: later sources share one "(other)" slice. Not thread-safe.
class SlicedReplay {
 public:
  static constexpr char kBase[] = "base";
  static constexpr char kOther[] = "(other)";

  SlicedReplay(size_t capacity_blocks_per_slice, double base_share, int max_slices,
               uint64_t seed);

  void Add(const std::string& slice, const TokenBlock& block);
  // `n` blocks: each from a slice drawn by its share (among non-empty
  // slices), uniformly within it.
  std::vector<TokenBlock> Sample(size_t n);
  // Multiplies `slice`'s weight by `factor`, capped at `max_boost`.
  void Boost(const std::string& slice, double factor, double max_boost);
  void ClearBoosts();
  // Each non-empty slice's share of sampled blocks (sums to 1).
  std::map<std::string, double> Shares() const;
  std::map<std::string, double> boosts() const { return boosts_; }

  size_t size() const;  // blocks in all slices
  size_t slice_size(const std::string& slice) const;

  // Contents, counts, boosts and every generator's state; Restore() also
  // reads a single ReplayBuffer's Serialize() (older checkpoints) as one
  // stream slice of unknown source.
  std::string Serialize() const;
  [[nodiscard]] absl::Status Restore(const std::string& bytes);

 private:
  ReplayBuffer& SliceFor(const std::string& slice);
  double Weight(const std::string& slice) const;

  size_t capacity_;
  double base_share_;
  int max_slices_;
  uint64_t seed_;
  std::map<std::string, ReplayBuffer> slices_;
  std::map<std::string, double> boosts_;
  std::mt19937_64 rng_;  // picks the slice of each sampled block
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_REPLAY_BUFFER_H_

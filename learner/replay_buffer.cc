#include "learner/replay_buffer.h"

#include <cstring>

namespace streamlm {

ReplayBuffer::ReplayBuffer(size_t capacity_blocks, uint64_t seed)
    : capacity_(capacity_blocks), rng_(seed) {}

void ReplayBuffer::Add(const TokenBlock& block) {
  ++offered_;
  if (blocks_.size() < capacity_) {
    blocks_.push_back(block);
    return;
  }
  uint64_t slot = rng_() % static_cast<uint64_t>(offered_);
  if (slot < capacity_) blocks_[slot] = block;
}

std::vector<TokenBlock> ReplayBuffer::Sample(size_t n) {
  std::vector<TokenBlock> out;
  if (blocks_.empty()) return out;
  for (size_t i = 0; i < n; ++i) out.push_back(blocks_[rng_() % blocks_.size()]);
  return out;
}

std::string ReplayBuffer::Serialize() const {
  std::string out(sizeof(int64_t), '\0');
  std::memcpy(out.data(), &offered_, sizeof(int64_t));
  return out + SerializeBlocks(blocks_);
}

absl::Status ReplayBuffer::Restore(const std::string& bytes) {
  if (bytes.size() < sizeof(int64_t)) return absl::DataLossError("replay buffer: truncated");
  int64_t offered;
  std::memcpy(&offered, bytes.data(), sizeof(int64_t));
  auto blocks = DeserializeBlocks(bytes.substr(sizeof(int64_t)));
  if (!blocks.ok()) return blocks.status();
  if (blocks->size() > capacity_) blocks->resize(capacity_);
  blocks_ = std::move(*blocks);
  offered_ = std::max<int64_t>(offered, static_cast<int64_t>(blocks_.size()));
  return absl::OkStatus();
}

}  // namespace streamlm

// Token blocks: the unit of training and evaluation data (a run of token ids,
// usually context + 1 long). Compact binary form for the store. No tensors.
#ifndef STREAMLM_MODEL_TOKEN_BLOCKS_H_
#define STREAMLM_MODEL_TOKEN_BLOCKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace streamlm {

using TokenBlock = std::vector<int32_t>;

// Layout: "SLMB", u32 count, then per block u32 length and int32 ids (LE).
std::string SerializeBlocks(const std::vector<TokenBlock>& blocks);
[[nodiscard]] absl::StatusOr<std::vector<TokenBlock>> DeserializeBlocks(
    const std::string& bytes);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_TOKEN_BLOCKS_H_

// Token blocks: the unit of training and evaluation data (a run of token ids,
// usually context + 1 long). Compact binary form for the store. No tensors.
#ifndef STREAMLM_MODEL_TOKEN_BLOCKS_H_
#define STREAMLM_MODEL_TOKEN_BLOCKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace streamlm {

using TokenBlock = std::vector<int32_t>;

// Tokenizes `docs` into one stream (EOS after each document) and cuts it into
// windows of `block_len` tokens that overlap by one (each token after the
// first is a target exactly once); at most `max_blocks` (0 = all).
std::vector<TokenBlock> PackBlocks(const Tokenizer& tokenizer, const std::vector<std::string>& docs,
                                   size_t block_len, size_t max_blocks);

// Layout: "SLMB", u32 count, then per block u32 length and int32 ids (LE).
std::string SerializeBlocks(const std::vector<TokenBlock>& blocks);
[[nodiscard]] absl::StatusOr<std::vector<TokenBlock>> DeserializeBlocks(
    const std::string& bytes);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_TOKEN_BLOCKS_H_

#include "model/token_blocks.h"

#include <cstring>

namespace streamlm {

std::vector<TokenBlock> PackBlocks(const Tokenizer& tokenizer, const std::vector<std::string>& docs,
                                   size_t block_len, size_t max_blocks) {
  std::vector<TokenBlock> blocks;
  std::vector<int32_t> stream;
  size_t start = 0;
  for (const std::string& d : docs) {
    std::vector<int32_t> ids = tokenizer.Encode(d);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(tokenizer.eos_id());
    while (stream.size() - start >= block_len) {
      if (max_blocks != 0 && blocks.size() >= max_blocks) return blocks;
      blocks.emplace_back(stream.begin() + start, stream.begin() + start + block_len);
      start += block_len - 1;
    }
  }
  return blocks;
}

std::string SerializeBlocks(const std::vector<TokenBlock>& blocks) {
  std::string out = "SLMB";
  auto put32 = [&out](uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  put32(static_cast<uint32_t>(blocks.size()));
  for (const TokenBlock& b : blocks) {
    put32(static_cast<uint32_t>(b.size()));
    out.append(reinterpret_cast<const char*>(b.data()), b.size() * sizeof(int32_t));
  }
  return out;
}

absl::StatusOr<std::vector<TokenBlock>> DeserializeBlocks(const std::string& bytes) {
  size_t pos = 0;
  auto get32 = [&](uint32_t* v) {
    if (bytes.size() - pos < 4) return false;
    std::memcpy(v, bytes.data() + pos, 4);
    pos += 4;
    return true;
  };
  if (bytes.size() < 8 || bytes.compare(0, 4, "SLMB") != 0) {
    return absl::DataLossError("token blocks: bad magic");
  }
  pos = 4;
  uint32_t count;
  get32(&count);
  std::vector<TokenBlock> blocks;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len;
    if (!get32(&len) || (bytes.size() - pos) / sizeof(int32_t) < len) {
      return absl::DataLossError("token blocks: truncated");
    }
    TokenBlock b(len);
    std::memcpy(b.data(), bytes.data() + pos, len * sizeof(int32_t));
    pos += len * sizeof(int32_t);
    blocks.push_back(std::move(b));
  }
  return blocks;
}

}  // namespace streamlm

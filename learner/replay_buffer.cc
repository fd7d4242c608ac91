#include "learner/replay_buffer.h"

#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"

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

std::string ReplayBuffer::RngState() const {
  std::ostringstream out;
  out << rng_;
  return out.str();
}

absl::Status ReplayBuffer::SetRngState(const std::string& state) {
  std::istringstream in(state);
  std::mt19937_64 rng;
  in >> rng;
  if (in.fail()) return absl::DataLossError("replay buffer: bad generator state");
  rng_ = rng;
  return absl::OkStatus();
}

namespace {
constexpr char kSlicedMagic[] = "streamlm-sliced-replay-1\n";

uint64_t SliceSeed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

SlicedReplay::SlicedReplay(size_t capacity, double base_share, int max_slices, uint64_t seed)
    : capacity_(capacity), base_share_(base_share), max_slices_(max_slices), seed_(seed),
      rng_(seed) {}

ReplayBuffer& SlicedReplay::SliceFor(const std::string& slice) {
  std::string name = slice;
  if (name != kBase && !slices_.count(name)) {
    int stream_slices = 0;
    for (const auto& [n, b] : slices_) stream_slices += n != kBase && n != kOther;
    if (stream_slices >= max_slices_) name = kOther;
  }
  auto it = slices_.find(name);
  if (it == slices_.end()) {
    it = slices_.emplace(name, ReplayBuffer(capacity_, SliceSeed(seed_, name))).first;
  }
  return it->second;
}

void SlicedReplay::Add(const std::string& slice, const TokenBlock& block) {
  SliceFor(slice).Add(block);
}

double SlicedReplay::Weight(const std::string& slice) const {
  auto b = boosts_.find(slice);
  return b == boosts_.end() ? 1.0 : b->second;
}

std::map<std::string, double> SlicedReplay::Shares() const {
  std::map<std::string, double> w;
  int stream = 0;
  bool base = false;
  for (const auto& [name, buf] : slices_) {
    if (buf.size() == 0) continue;
    if (name == kBase) base = true; else ++stream;
  }
  double total = 0;
  for (const auto& [name, buf] : slices_) {
    if (buf.size() == 0) continue;
    double share = name == kBase ? (stream > 0 ? base_share_ : 1.0)
                                 : (base ? 1.0 - base_share_ : 1.0) / stream;
    w[name] = share * Weight(name);
    total += w[name];
  }
  for (auto& [name, x] : w) x = total > 0 ? x / total : 0;
  return w;
}

std::vector<TokenBlock> SlicedReplay::Sample(size_t n) {
  std::vector<TokenBlock> out;
  const auto shares = Shares();
  if (shares.empty()) return out;
  std::vector<std::string> names;
  std::vector<double> cumulative;
  double c = 0;
  for (const auto& [name, share] : shares) {
    names.push_back(name);
    cumulative.push_back(c += share);
  }
  std::uniform_real_distribution<double> u(0, c);
  for (size_t i = 0; i < n; ++i) {
    const double x = u(rng_);
    size_t k = 0;
    while (k + 1 < cumulative.size() && x >= cumulative[k]) ++k;
    for (TokenBlock& b : slices_.at(names[k]).Sample(1)) out.push_back(std::move(b));
  }
  return out;
}

void SlicedReplay::Boost(const std::string& slice, double factor, double max_boost) {
  boosts_[slice] = std::min(max_boost, Weight(slice) * factor);
}

void SlicedReplay::ClearBoosts() { boosts_.clear(); }

size_t SlicedReplay::size() const {
  size_t n = 0;
  for (const auto& [name, buf] : slices_) n += buf.size();
  return n;
}

size_t SlicedReplay::slice_size(const std::string& slice) const {
  auto it = slices_.find(slice);
  return it == slices_.end() ? 0 : it->second.size();
}

std::string SlicedReplay::Serialize() const {
  std::ostringstream rng;
  rng << rng_;
  Json header = {{"rng", rng.str()}, {"boosts", boosts_}, {"slices", Json::array()}};
  std::string body;
  for (const auto& [name, buf] : slices_) {
    std::string bytes = buf.Serialize();
    header["slices"].push_back(
        {{"name", name}, {"bytes", bytes.size()}, {"rng", buf.RngState()}});
    body += bytes;
  }
  return absl::StrCat(kSlicedMagic, header.dump(), "\n", body);
}

absl::Status SlicedReplay::Restore(const std::string& bytes) {
  const std::string magic = kSlicedMagic;
  slices_.clear();
  boosts_.clear();
  if (bytes.compare(0, magic.size(), magic) != 0) {
    // An older checkpoint: one reservoir of unknown sources.
    ReplayBuffer legacy(capacity_, SliceSeed(seed_, ""));
    absl::Status s = legacy.Restore(bytes);
    if (!s.ok()) return s;
    slices_.emplace("", std::move(legacy));
    return absl::OkStatus();
  }
  const size_t eol = bytes.find('\n', magic.size());
  if (eol == std::string::npos) return absl::DataLossError("replay: truncated header");
  auto header = ParseJson(bytes.substr(magic.size(), eol - magic.size()));
  if (!header.ok() || !header->is_object() || !(*header)["slices"].is_array() ||
      !(*header)["rng"].is_string() || !(*header)["boosts"].is_object()) {
    return absl::DataLossError("replay: bad header");
  }
  std::istringstream rng_in((*header)["rng"].get<std::string>());
  rng_in >> rng_;
  if (rng_in.fail()) return absl::DataLossError("replay: bad generator state");
  size_t pos = eol + 1;
  for (const Json& s : (*header)["slices"]) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string() ||
        !s.contains("bytes") || !s["bytes"].is_number_unsigned() || !s.contains("rng") ||
        !s["rng"].is_string()) {
      return absl::DataLossError("replay: bad slice entry");
    }
    const size_t n = s["bytes"].get<size_t>();
    if (n > bytes.size() - pos) return absl::DataLossError("replay: truncated slice");
    const std::string name = s["name"].get<std::string>();
    ReplayBuffer buf(capacity_, SliceSeed(seed_, name));
    absl::Status st = buf.Restore(bytes.substr(pos, n));
    if (st.ok()) st = buf.SetRngState(s["rng"].get<std::string>());
    if (!st.ok()) return st;
    slices_.emplace(name, std::move(buf));
    pos += n;
  }
  if (pos != bytes.size()) return absl::DataLossError("replay: trailing bytes");
  for (const auto& [name, w] : (*header)["boosts"].items()) {
    if (!w.is_number() || !(w.get<double>() > 0)) return absl::DataLossError("replay: bad boost");
    boosts_[name] = w.get<double>();
  }
  return absl::OkStatus();
}

}  // namespace streamlm

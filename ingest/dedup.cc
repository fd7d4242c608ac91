#include "ingest/dedup.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/json_util.h"

namespace streamlm {
namespace {

// 64-bit mixing (SplitMix64's finalizer).
inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t HashBytes(std::string_view s) { return Mix(Fnv1a64(s)); }

// out[f] = min(out[f], h_f(x)) over the shingles, h_f(x) = (a[f] * x + b[f])
// >> 32 with x the 32-bit fold of the shingle hash. Most of dedup's time;
// built for AVX-512 and AVX2 too (64-bit multiplies vectorize there), the
// loader picks what the CPU has. Not in a sanitized build: the clones'
// resolver runs while the loader relocates the executable, before the
// sanitizer's runtime is up, and ThreadSanitizer's instrumentation of it
// crashes there.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(STREAMLM_SANITIZED)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void MinHashUpdate(const uint64_t* a, const uint64_t* b, size_t n, const uint64_t* shingles,
                   size_t count, uint32_t* out) {
  for (size_t i = 0; i < count; ++i) {
    const uint64_t s = shingles[i];
    const uint64_t x = static_cast<uint32_t>(s ^ (s >> 32));
    for (size_t f = 0; f < n; ++f) {
      const auto h = static_cast<uint32_t>((a[f] * x + b[f]) >> 32);
      out[f] = h < out[f] ? h : out[f];
    }
  }
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
bool Get(const std::string& in, size_t* pos, T* v) {
  if (in.size() - *pos < sizeof(T)) return false;
  std::memcpy(v, in.data() + *pos, sizeof(T));
  *pos += sizeof(T);
  return true;
}

}  // namespace

std::string NormalizeForDedup(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool space = false;
  for (unsigned char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
  }
  return out;
}

DedupOptions DedupOptionsFromConfig(const Config& config) {
  DedupOptions o;
  o.window_docs = static_cast<size_t>(config.dedup.window_docs);
  o.window_ms = config.dedup.window_s * 1000;
  o.threshold = config.dedup.threshold;
  return o;
}

Deduplicator::Deduplicator(DedupOptions options)
    : options_(options), buckets_(static_cast<size_t>(options.bands)) {
  // Per MinHash function, multiply-add-shift hashing (Dietzfelbinger) of
  // the 32-bit folded shingle hash x: h(x) = (a * x + b) >> 32 with random
  // 64-bit a and b, a 2-independent family. (A 32-bit a would vectorize
  // better but measurably hurts near-duplicate recall: dedup_test.)
  for (int i = 0; i < options_.bands * options_.rows; ++i) {
    seeds_.push_back(Mix(0xD1B54A32D192ED03ULL * (i + 1)) | 1);
    offsets_.push_back(Mix(0x8CB92BA72F3D8DD7ULL * (i + 1)));
  }
}

std::vector<uint32_t> Deduplicator::Signature(std::string_view norm) const {
  std::vector<std::string_view> words;
  for (size_t i = 0; i < norm.size();) {
    size_t j = norm.find(' ', i);
    if (j == std::string::npos) j = norm.size();
    words.emplace_back(norm.data() + i, j - i);
    i = j + 1;
  }
  // A shingle's hash chains the hashes of its words (each word hashed once).
  std::vector<uint64_t> word_hashes(words.size());
  for (size_t i = 0; i < words.size(); ++i) word_hashes[i] = HashBytes(words[i]);
  std::vector<uint64_t> shingles;
  const size_t k = static_cast<size_t>(options_.shingle_words);
  if (words.size() <= k) {
    shingles.push_back(HashBytes(norm));
  } else {
    shingles.reserve(words.size() - k + 1);
    for (size_t i = 0; i + k <= words.size(); ++i) {
      uint64_t h = word_hashes[i];
      for (size_t j = 1; j < k; ++j) h = Mix(h ^ word_hashes[i + j]);
      shingles.push_back(h);
    }
  }
  const size_t n = seeds_.size();
  std::vector<uint32_t> sig(n, std::numeric_limits<uint32_t>::max());
  MinHashUpdate(seeds_.data(), offsets_.data(), n, shingles.data(), shingles.size(), sig.data());
  return sig;
}

uint64_t Deduplicator::BandKey(const std::vector<uint32_t>& sig, int band) const {
  uint64_t h = Mix(static_cast<uint64_t>(band) + 1);
  for (int r = 0; r < options_.rows; ++r) h = Mix(h ^ sig[band * options_.rows + r]);
  return h;
}

Deduplicator::Fingerprint Deduplicator::MakeFingerprint(std::string_view text) const {
  Fingerprint f;
  std::string norm = NormalizeForDedup(text);
  f.exact = HashBytes(norm);
  f.signature = Signature(norm);
  return f;
}

Deduplicator::Verdict Deduplicator::Check(std::string_view text) {
  return Check(MakeFingerprint(text), NowMs());
}

Deduplicator::Verdict Deduplicator::Check(Fingerprint fp, int64_t now_ms) {
  if (options_.window_ms > 0) {
    while (!docs_.empty() && docs_.front().time_ms < now_ms - options_.window_ms) ForgetOldest();
  }
  Doc doc{fp.exact, std::move(fp.signature), now_ms};
  if (exact_.count(doc.exact)) return Verdict::kExact;
  const size_t n = doc.signature.size();
  for (int b = 0; b < options_.bands; ++b) {
    auto it = buckets_[b].find(BandKey(doc.signature, b));
    if (it == buckets_[b].end()) continue;
    for (uint64_t id : it->second) {
      const Doc& other = docs_[id - first_id_];
      size_t same = 0;
      for (size_t i = 0; i < n; ++i) same += doc.signature[i] == other.signature[i];
      if (static_cast<double>(same) / n >= options_.threshold) return Verdict::kNear;
    }
  }
  Remember(std::move(doc));
  return Verdict::kUnique;
}

void Deduplicator::Remember(Doc doc) {
  if (options_.window_docs == 0) return;
  while (docs_.size() >= options_.window_docs) ForgetOldest();
  const uint64_t id = first_id_ + docs_.size();
  ++exact_[doc.exact];
  for (int b = 0; b < options_.bands; ++b) buckets_[b][BandKey(doc.signature, b)].push_back(id);
  docs_.push_back(std::move(doc));
}

void Deduplicator::ForgetOldest() {
  const Doc& doc = docs_.front();
  auto e = exact_.find(doc.exact);
  if (e != exact_.end() && --e->second == 0) exact_.erase(e);
  for (int b = 0; b < options_.bands; ++b) {
    auto it = buckets_[b].find(BandKey(doc.signature, b));
    if (it == buckets_[b].end()) continue;
    auto& ids = it->second;
    ids.erase(std::remove(ids.begin(), ids.end(), first_id_), ids.end());
    if (ids.empty()) buckets_[b].erase(it);
  }
  docs_.pop_front();
  ++first_id_;
}

std::string Deduplicator::Serialize() const {
  // "SLD2": signatures by multiply-add-shift hashing, with the time each
  // document was remembered (a window saved by an older build, "SLMD", is
  // not comparable and is not restored).
  std::string out = "SLD2";
  Put<uint64_t>(&out, docs_.size());
  Put<uint32_t>(&out, static_cast<uint32_t>(seeds_.size()));
  for (const Doc& d : docs_) {
    Put<uint64_t>(&out, d.exact);
    Put<int64_t>(&out, d.time_ms);
    out.append(reinterpret_cast<const char*>(d.signature.data()), d.signature.size() * 4);
  }
  return out;
}

absl::Status Deduplicator::Restore(const std::string& bytes) {
  if (bytes.compare(0, 4, "SLMD") == 0) return absl::OkStatus();  // older hashing: start afresh
  if (bytes.compare(0, 4, "SLD2") != 0) return absl::DataLossError("dedup state: bad magic");
  size_t pos = 4;
  uint64_t count;
  uint32_t width;
  if (!Get(bytes, &pos, &count) || !Get(bytes, &pos, &width) || width != seeds_.size()) {
    return absl::DataLossError("dedup state: header does not match the configured signature");
  }
  Deduplicator fresh(options_);
  for (uint64_t i = 0; i < count; ++i) {
    Doc d;
    if (!Get(bytes, &pos, &d.exact) || !Get(bytes, &pos, &d.time_ms) ||
        bytes.size() - pos < size_t{width} * 4) {
      return absl::DataLossError("dedup state: truncated");
    }
    d.signature.resize(width);
    std::memcpy(d.signature.data(), bytes.data() + pos, size_t{width} * 4);
    pos += size_t{width} * 4;
    fresh.Remember(std::move(d));
  }
  *this = std::move(fresh);
  return absl::OkStatus();
}

}  // namespace streamlm

#include "model/language_model.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <omp.h>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "model/safetensors_header.h"

namespace streamlm {

namespace {

// The text the generated ids add after the prompt. Decoding them together
// with the prompt keeps word boundaries (SentencePiece drops the leading
// space of a sequence's first piece).
std::string DecodeContinuation(const Tokenizer& tok,
                               const std::vector<int32_t>& prompt,
                               const std::vector<int32_t>& generated) {
  if (prompt.empty()) return tok.Decode(generated);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  std::string full = tok.Decode(all);
  std::string head = tok.Decode(prompt);
  if (full.compare(0, head.size(), head) == 0) return full.substr(head.size());
  return tok.Decode(generated);
}

}  // namespace

void ConfigureTorchThreads(int threads) {
  static std::once_flag once;
  std::call_once(once, [threads] {
    int n = threads > 0 ? threads
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    torch::set_num_threads(n);
    SLM_LOG(kDebug) << "libtorch threads: " << n;
  });
}

double MeasureGemmGflops() {
  torch::NoGradGuard no_grad;
  const int64_t n = 2048;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm up
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    c = torch::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

LanguageModel::LanguageModel(ModelConfig config,
                             std::unique_ptr<Tokenizer> tokenizer)
    : config_(config), tokenizer_(std::move(tokenizer)), net_(MakeCausalLm(config)) {}

absl::StatusOr<std::shared_ptr<LanguageModel>> LanguageModel::Create(
    const ModelConfig& config, std::unique_ptr<Tokenizer> tokenizer,
    uint64_t seed) {
  absl::Status s = ValidateModelConfig(config);
  if (!s.ok()) return s;
  if (tokenizer->vocab_size() > config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer has ", tokenizer->vocab_size(),
        " pieces but model.vocab_size is ", config.vocab_size));
  }
  std::shared_ptr<LanguageModel> m(new LanguageModel(config, std::move(tokenizer)));
  m->net_->InitWeights(seed);
  m->net_->eval();
  return m;
}

absl::StatusOr<std::shared_ptr<LanguageModel>> LanguageModel::Load(
    const Json& model_config, const std::string& weights,
    const std::string& tokenizer) {
  auto config = ModelConfigFromJson(model_config);
  if (!config.ok()) return config.status();
  auto tok = LoadTokenizer(tokenizer);
  if (!tok.ok()) return tok.status();
  std::shared_ptr<LanguageModel> m(new LanguageModel(*config, std::move(*tok)));
  absl::Status s = m->LoadWeights(weights);
  if (!s.ok()) return s;
  m->net_->eval();
  return m;
}

std::string LanguageModel::SerializeWeights() const {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : net_->named_parameters()) {
    tensors.emplace_back(p.key(), p.value());
  }
  return EncodeSafetensors(tensors);
}

absl::Status LanguageModel::LoadWeights(const std::string& safetensors) {
  auto tensors = DecodeSafetensors(safetensors);
  if (!tensors.ok()) return tensors.status();
  return LoadTensors(std::map<std::string, torch::Tensor>(tensors->begin(), tensors->end()));
}

absl::Status LanguageModel::LoadTensors(const std::map<std::string, torch::Tensor>& by_name) {
  torch::NoGradGuard no_grad;
  for (auto& p : net_->named_parameters()) {
    auto it = by_name.find(p.key());
    if (it == by_name.end()) {
      return absl::InvalidArgumentError("weights lack tensor '" + p.key() + "'");
    }
    if (!it->second.sizes().equals(p.value().sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", p.key(), "' has shape ", c10::str(it->second.sizes()),
          ", model expects ", c10::str(p.value().sizes())));
    }
    p.value().copy_(it->second);
  }
  return absl::OkStatus();
}

std::vector<SequenceLoss> LanguageModel::SequenceLosses(
    const std::vector<std::vector<int32_t>>& sequences, int batch_size) const {
  torch::NoGradGuard no_grad;
  const int64_t window = config_.context_tokens + 1;
  struct Piece { size_t seq; std::vector<int64_t> ids; };
  std::vector<Piece> pieces;
  for (size_t s = 0; s < sequences.size(); ++s) {
    const auto& seq = sequences[s];
    // Windows overlap by one token so every token after the first is scored.
    for (size_t start = 0; start + 1 < seq.size(); start += window - 1) {
      size_t end = std::min(seq.size(), start + window);
      pieces.push_back({s, std::vector<int64_t>(seq.begin() + start, seq.begin() + end)});
    }
  }
  std::vector<SequenceLoss> out(sequences.size());
  for (size_t b = 0; b < pieces.size(); b += batch_size) {
    size_t n = std::min(pieces.size() - b, static_cast<size_t>(batch_size));
    int64_t len = 0;
    for (size_t i = 0; i < n; ++i) len = std::max<int64_t>(len, pieces[b + i].ids.size());
    auto inputs = torch::zeros({static_cast<int64_t>(n), len - 1}, torch::kLong);
    auto targets = torch::full({static_cast<int64_t>(n), len - 1}, -100, torch::kLong);
    for (size_t i = 0; i < n; ++i) {
      const auto& ids = pieces[b + i].ids;
      int64_t m = static_cast<int64_t>(ids.size()) - 1;
      auto t = torch::tensor(ids, torch::kLong);
      inputs[i].slice(0, 0, m).copy_(t.slice(0, 0, m));
      targets[i].slice(0, 0, m).copy_(t.slice(0, 1, m + 1));
    }
    auto logits = net_->forward(inputs);
    auto nll = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions()
            .ignore_index(-100)
            .reduction(torch::kNone))
                   .view({static_cast<int64_t>(n), len - 1});
    auto sums = nll.sum(1);
    for (size_t i = 0; i < n; ++i) {
      SequenceLoss& l = out[pieces[b + i].seq];
      l.sum_nats += sums[i].item<double>();
      l.tokens += static_cast<int64_t>(pieces[b + i].ids.size()) - 1;
    }
  }
  return out;
}

torch::Tensor VocabLogits(const torch::Tensor& logits, int vocab_size) {
  return logits.to(torch::kFloat).slice(0, 0, vocab_size);
}

int64_t SampleToken(torch::Tensor logits, const SamplingParams& params,
                    const std::vector<int32_t>& context, at::Generator& gen) {
  if (params.repetition_penalty != 1.0) {
    std::set<int64_t> unique(context.begin(), context.end());
    std::vector<int64_t> seen;
    for (int64_t id : unique) {
      if (id >= 0 && id < logits.size(0)) seen.push_back(id);
    }
    auto idx = torch::tensor(seen, torch::kLong);
    auto v = logits.index_select(0, idx);
    v = torch::where(v > 0, v / params.repetition_penalty, v * params.repetition_penalty);
    logits = logits.index_copy(0, idx, v);
  }
  if (params.temperature <= 0) return logits.argmax().item<int64_t>();
  logits = logits / params.temperature;
  if (params.top_k > 0 && params.top_k < logits.size(0)) {
    auto kth = std::get<0>(logits.topk(params.top_k))[-1];
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  auto probs = torch::softmax(logits, -1);
  if (params.top_p < 1.0) {
    auto sorted = probs.sort(-1, /*descending=*/true);
    auto sp = std::get<0>(sorted), si = std::get<1>(sorted);
    auto cum = sp.cumsum(-1);
    // Drop tokens once the mass before them already reaches top_p.
    auto drop = (cum - sp) >= params.top_p;
    sp = sp.masked_fill(drop, 0.0);
    probs = torch::zeros_like(probs).scatter(0, si, sp);
    probs = probs / probs.sum();
  }
  return torch::multinomial(probs, 1, false, gen).item<int64_t>();
}

TokenLogprob LogprobOf(const torch::Tensor& logits, int64_t id, int top) {
  auto lp = torch::log_softmax(logits.to(torch::kDouble), -1);
  TokenLogprob out;
  out.logprob = lp[id].item<double>();
  if (top > 0) {
    auto best = lp.topk(std::min<int64_t>(top, lp.size(0)));
    auto values = std::get<0>(best), ids = std::get<1>(best);
    for (int64_t i = 0; i < values.size(0); ++i) {
      out.top.emplace_back(static_cast<int32_t>(ids[i].item<int64_t>()), values[i].item<double>());
    }
  }
  return out;
}

void SetThreadComputeBudget(int threads) {
  // libtorch sets a thread's OpenMP team size from the process-wide value the
  // first time the thread runs a parallel op; do that first so it does not
  // override this thread's budget later.
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(std::max(1, threads));
}

int ServingThreads(const Config& config) {
  if (config.serving.threads > 0) return config.serving.threads;
  return std::max(1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())) / 2);
}

int LearnerThreads(const Config& config, bool serving_in_process) {
  if (config.threads > 0) return config.threads;
  int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!serving_in_process) return cores;
  return std::max(1, cores - ServingThreads(config));
}

Completion LanguageModel::Generate(const std::string& prompt,
                                   const SamplingParams& params) const {
  Completion c = GenerateIds(tokenizer_->Encode(prompt), params);
  return c;
}

std::vector<TokenLogprob> LanguageModel::PromptLogprobs(const std::vector<int32_t>& ids,
                                                        int top) const {
  torch::NoGradGuard no_grad;
  std::vector<TokenLogprob> out(ids.size());
  if (ids.size() < 2) return out;
  std::vector<int64_t> wide(ids.begin(), ids.end());
  auto logits = net_->forward(torch::tensor(wide, torch::kLong).unsqueeze(0))[0];
  for (size_t i = 1; i < ids.size(); ++i) {
    out[i] = LogprobOf(VocabLogits(logits[i - 1], tokenizer_->vocab_size()), ids[i], top);
  }
  return out;
}

Completion LanguageModel::GenerateIds(const std::vector<int32_t>& prompt_ids,
                                      const SamplingParams& params) const {
  torch::NoGradGuard no_grad;
  Completion c;
  std::vector<int32_t> context = prompt_ids;
  c.prompt_tokens = static_cast<int>(context.size());
  if (context.empty()) context.push_back(tokenizer_->eos_id());
  auto gen = at::detail::createCPUGenerator(
      params.has_seed ? params.seed : static_cast<uint64_t>(std::random_device{}()));
  c.finish_reason = "length";
  // KV cache: prefill with the last context's worth of tokens, then feed one
  // token per step. When the context is full, prefill again with its newest
  // half (positions are learned, so they cannot run past the context).
  const int64_t T = config_.context_tokens;
  KvCache cache;
  torch::Tensor logits;
  auto prefill = [&](size_t keep) {
    cache = KvCache();
    std::vector<int64_t> window(context.end() - std::min(keep, context.size()), context.end());
    logits = net_->ForwardCached(torch::tensor(window, torch::kLong).unsqueeze(0), &cache,
                                 /*last_only=*/true)[0][-1];
  };
  prefill(static_cast<size_t>(T));
  for (int step = 0; step < params.max_tokens; ++step) {
    logits = VocabLogits(logits, tokenizer_->vocab_size());
    int64_t next = SampleToken(logits, params, context, gen);
    if (next == tokenizer_->eos_id() && !params.ignore_eos) {
      c.finish_reason = "stop";
      break;
    }
    c.ids.push_back(static_cast<int32_t>(next));
    c.logprobs.push_back(LogprobOf(logits, next, 0).logprob);
    context.push_back(static_cast<int32_t>(next));
    if (step + 1 < params.max_tokens) {
      if (cache.length >= T) {
        prefill(static_cast<size_t>(T / 2));
      } else {
        logits = net_->ForwardCached(torch::tensor({next}, torch::kLong).unsqueeze(0), &cache)[0][-1];
      }
    }
    c.text = DecodeContinuation(*tokenizer_, prompt_ids, c.ids);
    bool stopped = false;
    for (const std::string& s : params.stop) {
      size_t pos = s.empty() ? std::string::npos : c.text.find(s);
      if (pos != std::string::npos) {
        c.text.resize(pos);
        stopped = true;
      }
    }
    if (stopped) {
      c.finish_reason = "stop";
      break;
    }
  }
  return c;
}

// ---------------------------------------------------------------- safetensors

torch::ScalarType ScalarTypeForDtype(const std::string& dtype) {
  if (dtype == "F16") return torch::kHalf;
  if (dtype == "BF16") return torch::kBFloat16;
  return torch::kFloat;
}

std::string EncodeSafetensors(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::string& dtype) {
  Json header = Json::object();
  std::string data;
  const torch::ScalarType type = ScalarTypeForDtype(dtype);
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU, type).contiguous();
    size_t begin = data.size();
    data.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
    header[name] = {{"dtype", type == torch::kFloat ? "F32" : dtype},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + h + data;
}

absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>>
DecodeSafetensors(const std::string& bytes, std::map<std::string, std::string>* dtypes) {
  auto entries = ParseSafetensorsHeader(bytes);
  if (!entries.ok()) return entries.status();
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const SafetensorsEntry& e : *entries) {
    auto t = torch::empty(e.shape, ScalarTypeForDtype(e.dtype));
    std::memcpy(t.data_ptr(), bytes.data() + e.begin, e.end - e.begin);
    out.emplace_back(e.name, t.to(torch::kFloat));
    if (dtypes != nullptr) (*dtypes)[e.name] = e.dtype;
  }
  return out;
}

}  // namespace streamlm

#include "evaluator/evaluator.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "model/language_model.h"
#include "model/token_blocks.h"

namespace streamlm {
namespace {

absl::StatusOr<std::shared_ptr<LanguageModel>> LoadModel(Store* store,
                                                         const std::string& id) {
  auto snap = store->GetSnapshot(id);
  if (!snap.ok()) return snap.status();
  return LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
}

PairedLosses Score(const LanguageModel& candidate, const LanguageModel& champion,
                   const std::vector<std::vector<int32_t>>& seqs) {
  auto a = candidate.SequenceLosses(seqs);
  auto b = champion.SequenceLosses(seqs);
  PairedLosses p;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (a[i].tokens == 0) continue;
    p.candidate_nats.push_back(a[i].sum_nats);
    p.champion_nats.push_back(b[i].sum_nats);
    p.tokens.push_back(a[i].tokens);
  }
  return p;
}

}  // namespace

Evaluator::Evaluator(const Config& config, Store* store, KafkaProducer* decisions,
                     DecisionCallback on_decision)
    : config_(config), store_(store), decisions_(decisions),
      on_decision_(std::move(on_decision)) {
  gate_.max_forgetting = config.gate_max_forgetting;
  gate_.min_adaptation = config.gate_min_adaptation;
  gate_.min_stream_tokens = config.eval_min_stream_tokens;
}

Evaluator::~Evaluator() { Stop(); }

void Evaluator::Start() {
  worker_ = std::thread([this] {
    SetThreadComputeBudget(LearnerThreads(config_, /*serving_in_process=*/true));
    Loop();
  });
}

void Evaluator::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Evaluator::Submit(const std::string& candidate_id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Only the newest candidate matters: it contains the older ones' training.
    queue_.clear();
    queue_.push_back(candidate_id);
  }
  cv_.notify_all();
}

void Evaluator::Loop() {
  while (true) {
    std::string id;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      id = queue_.front();
      queue_.pop_front();
    }
    auto decision = Evaluate(id);
    if (!decision.ok()) SLM_LOG(kError) << "evaluating " << id << ": " << decision.status();
  }
}

absl::StatusOr<Json> Evaluator::Evaluate(const std::string& candidate_id) {
  auto start = std::chrono::steady_clock::now();
  auto champion_id = store_->GetAlias(kChampion);
  if (!champion_id.ok()) return champion_id.status();
  if (*champion_id == candidate_id) {
    return absl::FailedPreconditionError(candidate_id + " is already the champion");
  }
  auto candidate = LoadModel(store_, candidate_id);
  if (!candidate.ok()) return candidate.status();
  auto champion = LoadModel(store_, *champion_id);
  if (!champion.ok()) return champion.status();

  // Losses per token compare only under one tokenizer.
  const bool same_tokenizer =
      (*candidate)->tokenizer().serialized() == (*champion)->tokenizer().serialized();
  // Forgetting: the bootstrap corpus's held-out documents.
  std::vector<std::vector<int32_t>> base;
  auto base_text = store_->GetEvalSet(kBaseEvalSet);
  if (base_text.ok() && same_tokenizer) {
    auto docs = ParseJson(*base_text);
    if (!docs.ok() || !docs->is_array()) return absl::DataLossError("base eval set is corrupt");
    base = PackBlocks((*candidate)->tokenizer(), docs->get<std::vector<std::string>>(),
                      (*candidate)->config().context_tokens + 1,
                      static_cast<size_t>(config_.bootstrap_eval_sequences));
  }
  // Adaptation: held-out stream records, never trained on.
  auto texts = store_->GetHeldout(static_cast<size_t>(config_.eval_stream_window_records));
  if (!texts.ok()) return texts.status();
  std::vector<std::vector<int32_t>> stream;
  const Tokenizer& tok = (*candidate)->tokenizer();
  for (const std::string& t : same_tokenizer ? *texts : std::vector<std::string>()) {
    std::vector<int32_t> ids = {tok.eos_id()};  // documents start after EOS
    std::vector<int32_t> body = tok.Encode(t);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.push_back(tok.eos_id());
    stream.push_back(std::move(ids));
  }
  Comparison base_cmp = Compare(Score(**candidate, **champion, base));
  Comparison stream_cmp = Compare(Score(**candidate, **champion, stream));
  GateResult gate = ApplyGate(base_cmp, stream_cmp, gate_);
  if (!same_tokenizer) {
    gate.verdict = "held";
    gate.reason = "held: candidate and champion use different tokenizers, so their "
                  "per-token losses cannot be compared; promote by hand if intended";
  }

  Json rules = Json::array();
  for (const RuleResult& r : gate.rules) rules.push_back(RuleToJson(r));
  int64_t now = NowMs();
  Json decision = {
      {"time", FormatTimeMs(now)},
      {"time_ms", now},
      {"candidate", candidate_id},
      {"champion", *champion_id},
      {"verdict", gate.verdict},
      {"rules", rules},
      {"metrics", {{"base_loss", ComparisonToJson(base_cmp)},
                   {"stream_loss", ComparisonToJson(stream_cmp)}}},
      {"reason", gate.reason},
      {"duration_s",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()}};
  auto stored = store_->AppendDecision(decision, gate.verdict == "promoted");
  if (!stored.ok()) return stored.status();
  SLM_LOG(kInfo) << "decision " << (*stored)["id"].get<std::string>() << ": "
                 << candidate_id << " vs " << *champion_id << ": " << gate.reason;
  if (decisions_ != nullptr) {
    // Decisions are rare: wait for delivery so the topic agrees with the store.
    absl::Status s = decisions_->Produce(config_.topic_decisions, candidate_id, stored->dump());
    if (s.ok()) s = decisions_->Flush(10000);
    if (!s.ok()) SLM_LOG(kWarning) << "cannot publish decision: " << s;
  }
  if (on_decision_) on_decision_(*stored);
  return *stored;
}

}  // namespace streamlm

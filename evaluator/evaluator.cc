#include "evaluator/evaluator.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "model/language_model.h"
#include "model/token_blocks.h"
#include "ingest/pipeline.h"
#include "learner/objectives.h"
#include "common/file_util.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"

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

// Held-out and trusted feedback, as examples under the candidate's tokenizer.
struct FeedbackSet {
  std::vector<FeedbackExample> examples;
  int64_t records = 0;
};

FeedbackSet MakeFeedbackSet(const Tokenizer& tok, int context, const std::vector<Json>& records) {
  FeedbackSet set;
  set.records = static_cast<int64_t>(records.size());
  for (const Json& r : records) {
    auto e = MakeFeedbackExample(tok, r, context);
    if (e.ok()) set.examples.push_back(std::move(*e));
  }
  return set;
}

// Scores every response of `set` under candidate, champion and reference.
FeedbackScores ScoreFeedback(LanguageModel& candidate, LanguageModel& champion,
                             LanguageModel& reference, const FeedbackSet& set) {
  std::vector<const ResponseSequence*> seqs;
  for (const FeedbackExample& e : set.examples) {
    for (const ResponseSequence& s : e.seqs) seqs.push_back(&s);
  }
  auto cand = ScoreResponses(candidate, seqs);
  auto champ = ScoreResponses(champion, seqs);
  auto ref = &reference == &champion ? champ : ScoreResponses(reference, seqs);
  FeedbackScores f;
  f.records = set.records;
  size_t i = 0;
  for (const FeedbackExample& e : set.examples) {
    switch (e.kind) {
      case FeedbackExample::Kind::kPreference:
        f.pair_cand.push_back(cand[i].logprob - cand[i + 1].logprob);
        f.pair_champ.push_back(champ[i].logprob - champ[i + 1].logprob);
        f.pair_ref.push_back(ref[i].logprob - ref[i + 1].logprob);
        break;
      case FeedbackExample::Kind::kCorrection: {
        const double t = static_cast<double>(std::max<int64_t>(1, cand[i].tokens));
        f.corr_cand.push_back(cand[i].logprob / t);
        f.corr_champ.push_back(champ[i].logprob / t);
        f.corr_ref.push_back(ref[i].logprob / t);
        break;
      }
      case FeedbackExample::Kind::kRating:
        f.rating_cand.push_back(e.rating * (cand[i].logprob - ref[i].logprob));
        f.rating_champ.push_back(e.rating * (champ[i].logprob - ref[i].logprob));
        break;
    }
    i += e.seqs.size();
  }
  return f;
}

void AddCounts(const Json& from, std::map<std::string, int64_t>* to) {
  if (!from.is_object()) return;
  for (const auto& [k, v] : from.items()) {
    if (v.is_number_integer()) (*to)[k] += v.get<int64_t>();
  }
}

}  // namespace

absl::StatusOr<std::vector<Json>> LoadTrustedFeedback(const Config& config, Store* store) {
  std::vector<Json> out;
  auto stored = store->GetEvalSet(kTrustedFeedbackSet);
  if (stored.ok()) {
    auto parsed = ParseJson(*stored);
    if (!parsed.ok() || !parsed->is_array()) {
      return absl::DataLossError("the stored trusted feedback set is corrupt");
    }
    for (const Json& r : *parsed) out.push_back(r);
  } else if (!absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  if (!config.feedback_trusted_file.empty()) {
    auto text = ReadFileToString(config.feedback_trusted_file);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("feedback.trusted_file: ", text.status().message()));
    }
    Cleaner cleaner(config.clean_feedback);
    int line_no = 0;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      ++line_no;
      if (absl::StripAsciiWhitespace(line).empty()) continue;
      FeedbackResult f = CleanFeedbackRecord(
          std::string_view(line.data(), line.size()), static_cast<size_t>(config.learner_max_record_bytes), cleaner);
      if (!f.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "feedback.trusted_file: ", config.feedback_trusted_file, " line ", line_no, ": ",
            f.reason, ": ", f.detail));
      }
      out.push_back(std::move(f.record));
    }
  }
  return out;
}

Evaluator::Evaluator(const Config& config, Store* store, KafkaProducer* decisions,
                     DecisionCallback on_decision)
    : config_(config), store_(store), decisions_(decisions),
      on_decision_(std::move(on_decision)) {
  gate_.max_forgetting = config.gate_max_forgetting;
  gate_.min_adaptation = config.gate_min_adaptation;
  gate_.min_stream_tokens = config.eval_min_stream_tokens;
  gate_.min_feedback_pairs = config.gate_min_feedback_pairs;
  gate_.max_preference_regression = config.gate_max_preference_regression;
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

  // Human feedback: what was trained since the champion (the lineage back
  // to it), and held-out and trusted feedback scored under candidate,
  // champion and the learner's reference model.
  FeedbackEvidence fb;
  std::string reference_id = *champion_id;
  {
    std::string id = candidate_id;
    int64_t text = 0;
    bool reached = false;
    for (int hops = 0; !id.empty() && hops < 1000000; ++hops) {
      if (id == *champion_id) {
        reached = true;
        break;
      }
      auto meta = store_->GetSnapshotMeta(id);
      if (!meta.ok()) break;
      text += meta->lineage.records_trained;
      const Json f = meta->metrics.value("feedback", Json::object());
      if (id == candidate_id && f.contains("reference")) reference_id = f["reference"];
      fb.trained += f.value("trained", int64_t{0});
      fb.contradictions += f.value("contradictions", int64_t{0});
      AddCounts(f.value("users", Json::object()), &fb.users);
      AddCounts(f.value("contradiction_users", Json::object()), &fb.contradiction_users);
      id = meta->lineage.parent;
    }
    fb.text_trained = reached ? text : -1;
  }
  std::shared_ptr<LanguageModel> reference = *champion;
  if (reference_id != *champion_id) {
    auto loaded = LoadModel(store_, reference_id);
    if (loaded.ok() && (*loaded)->tokenizer().serialized() == tok.serialized()) {
      reference = *loaded;
    } else {
      reference_id = *champion_id;
    }
  }
  // Read once: the trusted set changes only while no process holds the store.
  std::call_once(trusted_once_, [this] { trusted_ = LoadTrustedFeedback(config_, store_); });
  if (!trusted_.ok()) return trusted_.status();
  const std::vector<Json>* trusted_records = &*trusted_;
  auto feedback_entries = store_->ListFeedback();
  if (!feedback_entries.ok()) return feedback_entries.status();
  std::vector<Json> heldout;
  for (const Store::FeedbackEntry& e : *feedback_entries) {
    if (e.record.value("split", "") == "heldout") heldout.push_back(e.record);
  }
  std::stable_sort(heldout.begin(), heldout.end(), [](const Json& a, const Json& b) {
    return a.value("ts_ms", int64_t{0}) < b.value("ts_ms", int64_t{0});
  });
  const size_t window = static_cast<size_t>(config_.eval_feedback_window);
  if (heldout.size() > window) heldout.erase(heldout.begin(), heldout.end() - window);
  auto champion_meta = store_->GetSnapshotMeta(*champion_id);
  if (!champion_meta.ok()) return champion_meta.status();
  std::vector<Json> established, fresh;
  for (const Json& r : heldout) {
    (r.value("ts_ms", int64_t{0}) < champion_meta->created_ms ? established : fresh).push_back(r);
  }
  Json feedback_sets = Json::object();
  if (same_tokenizer) {
    const int context = (*candidate)->config().context_tokens;
    auto summarize = [&](const std::vector<Json>& records, FeedbackSetStats* out,
                         const char* name) {
      if (records.empty()) return;
      FeedbackSet set = MakeFeedbackSet(tok, context, records);
      *out = SummarizeFeedback(ScoreFeedback(**candidate, **champion, *reference, set),
                               config_.feedback_beta);
      feedback_sets[name] = FeedbackSetToJson(*out);
    };
    summarize(heldout, &fb.heldout, "heldout");
    summarize(established, &fb.established, "established");
    summarize(fresh, &fb.fresh, "new");
    summarize(*trusted_records, &fb.trusted, "trusted");
  }
  GateResult gate = ApplyGate(base_cmp, stream_cmp, fb, gate_);
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
      {"reference", reference_id},
      {"metrics", {{"base_loss", ComparisonToJson(base_cmp)},
                   {"stream_loss", ComparisonToJson(stream_cmp)},
                   {"feedback", {{"reference", reference_id},
                                 {"trained", {{"records", fb.trained},
                                              {"text_records", fb.text_trained},
                                              {"contradictions", fb.contradictions},
                                              {"users", fb.users}}},
                                 {"sets", feedback_sets}}}}},
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

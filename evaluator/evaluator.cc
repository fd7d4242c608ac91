#include "evaluator/evaluator.h"

#include <algorithm>
#include <chrono>
#include <set>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "evaluator/heldout_scoring.h"
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

// A store without a base set (an imported champion) sets aside the oldest
// half of the held-out stream window, at most this many records, once the
// window holds at least kAutoBaseMinRecords.
constexpr size_t kAutoBaseMaxRecords = 256;
constexpr size_t kAutoBaseMinRecords = 64;

// A stable (FNV-1a) hash, for fingerprints kept in the store.
uint64_t Fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Where the evaluator keeps its evaluation sets (the base set it set aside,
// the anchor's losses): the store, or, in a process that only follows the
// store, the proposals it sends with its next verdict (Evaluator::GetEvalSet).
struct EvalSetIo {
  std::function<absl::StatusOr<std::string>(const std::string&)> get;
  std::function<absl::Status(const std::string&, const std::string&)> put;
};

struct TextItem {
  std::string text, source;
};
struct BaseSet {
  std::string fingerprint;      // of the stored set's bytes
  std::vector<TextItem> items;  // empty: no base set (yet)
  std::set<std::string> texts;  // for keeping them out of the stream window
  std::string origin;
};

absl::StatusOr<BaseSet> LoadBaseSet(const Config& config, Store* store, const EvalSetIo& io) {
  BaseSet out;
  auto bytes = io.get(kBaseEvalSet);
  if (absl::IsNotFound(bytes.status())) {
    auto records = store->GetHeldoutAfter(-1, static_cast<size_t>(config.eval.stream_window_records));
    if (!records.ok()) return records.status();
    if (records->size() < kAutoBaseMinRecords) return out;
    const size_t n = std::min(kAutoBaseMaxRecords, records->size() / 2);
    Json docs = Json::array();
    for (size_t i = 0; i < n; ++i) {
      docs.push_back({{"text", (*records)[i].second.text}, {"source", "first stream records"}});
    }
    const std::string origin = absl::StrCat(
        "the first ", n, " held-out stream records (seq ", (*records)[0].first, "..",
        (*records)[n - 1].first, "), set aside because the champion came without a base corpus");
    absl::Status s = io.put(kBaseOriginSet, origin);
    if (s.ok()) s = io.put(kBaseEvalSet, docs.dump());
    if (!s.ok()) return s;
    SLM_LOG(kInfo) << "evaluator: base evaluation set: " << origin;
    bytes = docs.dump();
  }
  if (!bytes.ok()) return bytes.status();
  out.fingerprint = absl::StrCat(Fnv1a(*bytes), ":", bytes->size());
  auto docs = ParseJson(*bytes);
  if (!docs.ok() || !docs->is_array()) return absl::DataLossError("base eval set is corrupt");
  for (const Json& d : *docs) {
    // Documents are texts (bootstrap) or {"text", "source"} (one slice per source).
    if (d.is_string()) {
      out.items.push_back({d.get<std::string>(), "bootstrap"});
    } else if (d.is_object() && d.contains("text") && d["text"].is_string()) {
      out.items.push_back({d["text"].get<std::string>(), d.value("source", std::string())});
    } else {
      return absl::DataLossError("base eval set is corrupt: a document is neither text nor "
                                 "{\"text\", \"source\"}");
    }
    out.texts.insert(out.items.back().text);
  }
  auto origin = store->GetEvalSet(kBaseOriginSet);
  out.origin = origin.ok() ? *origin : "held-out documents of the bootstrap corpus";
  return out;
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

// Per-sequence base losses of the anchor model (the first champion judged
// on this base set under this tokenizer), stored as eval set
// "base_anchor"; recorded from the current champion when none matches.
struct Anchor {
  std::string snapshot;
  std::vector<double> nats;
};
constexpr char kBaseAnchorSet[] = "base_anchor";

absl::StatusOr<Anchor> LoadOrRecordAnchor(const EvalSetIo& io, const std::string& champion,
                                          const Tokenizer& tok, const std::string& base_fp,
                                          const PairedLosses& base) {
  Anchor a;
  if (base.tokens.empty()) return a;
  const std::string key = absl::StrCat(base_fp, "/", Fnv1a(tok.serialized()));
  auto bytes = io.get(kBaseAnchorSet);
  if (bytes.ok()) {
    auto j = ParseJson(*bytes);
    if (j.ok() && j->is_object() && j->value("key", "") == key && (*j)["nats"].is_array() &&
        (*j)["nats"].size() == base.tokens.size()) {
      a.snapshot = j->value("snapshot", "");
      for (const Json& x : (*j)["nats"]) {
        if (!x.is_number()) return absl::DataLossError("base anchor losses are corrupt");
        a.nats.push_back(x.get<double>());
      }
      return a;
    }
  } else if (!absl::IsNotFound(bytes.status())) {
    return bytes.status();
  }
  a.snapshot = champion;
  a.nats = base.champion_nats;
  Json j = {{"key", key}, {"snapshot", champion}, {"nats", a.nats}};
  absl::Status s = io.put(kBaseAnchorSet, j.dump());
  if (!s.ok()) return s;
  SLM_LOG(kInfo) << "evaluator: forgetting is also measured against " << champion
                 << " (the anchor of this base set)";
  return a;
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
  if (!config.feedback.trusted_file.empty()) {
    auto text = ReadFileToString(config.feedback.trusted_file);
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
          std::string_view(line.data(), line.size()), static_cast<size_t>(config.learner.max_record_bytes), cleaner);
      if (!f.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "feedback.trusted_file: ", config.feedback.trusted_file, " line ", line_no, ": ",
            f.reason, ": ", f.detail));
      }
      out.push_back(std::move(f.record));
    }
  }
  return out;
}

bool CandidateDecided(const Store& store, const std::string& candidate) {
  auto decisions = store.ListDecisions(200);
  if (!decisions.ok()) return false;
  return std::any_of(decisions->begin(), decisions->end(), [&](const Json& d) {
    const std::string verdict = d.value("verdict", "");
    return d.value("candidate", "") == candidate &&
           (verdict == "promoted" || verdict == "rejected");
  });
}

Evaluator::Evaluator(const Config& config, Store* store, KafkaProducer* decisions,
                     DecisionCallback on_decision)
    : config_(config), store_(store), decisions_(decisions),
      on_decision_(std::move(on_decision)) {
  gate_.max_forgetting = config.gate.max_forgetting;
  gate_.min_adaptation = config.gate.min_adaptation;
  gate_.min_stream_tokens = config.eval.min_stream_tokens;
  gate_.min_feedback_pairs = config.gate.min_feedback_pairs;
  gate_.max_preference_regression = config.gate.max_preference_regression;
  gate_.alpha = config.gate.alpha;
  gate_.max_looks = config.gate.max_looks;
  gate_.min_slice_tokens = config.gate.min_slice_tokens;
}

Evaluator::~Evaluator() { Stop(); }

void Evaluator::Start() {
  auto candidate = store_->GetAlias(kCandidate);
  auto champion = store_->GetAlias(kChampion);
  if (candidate.ok() && champion.ok() && *candidate != *champion) {
    if (!CandidateDecided(*store_, *candidate)) {
      SLM_LOG(kInfo) << "evaluator: candidate " << *candidate
                     << " was left undecided by the last run; evaluating it";
      Submit(*candidate);
    }
  }
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
      cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      if (!queue_.empty()) {
        id = queue_.front();
        queue_.pop_front();
      }
    }
    if (id.empty()) {
      // A held candidate is judged again once eval.recheck_records more
      // held-out records arrived (and no newer candidate replaced it).
      if (held_.candidate.empty()) continue;
      if (store_->is_follower()) {
        if (absl::Status c = store_->CatchUp(); !c.ok()) {
          SLM_LOG(kWarning) << "evaluator: " << c;
          continue;
        }
      }
      auto fresh = store_->GetHeldoutAfter(held_.last_seq,
                                           static_cast<size_t>(config_.eval.recheck_records));
      if (!fresh.ok() || fresh->size() < static_cast<size_t>(config_.eval.recheck_records)) {
        continue;
      }
      id = held_.candidate;
    } else if (id != held_.candidate) {
      held_ = HeldCandidate();  // a newer candidate contains the held one's training
    }
    auto decision = Evaluate(id);
    if (absl::IsFailedPrecondition(decision.status())) {
      SLM_LOG(kInfo) << "not evaluating " << id << ": " << decision.status().message();
    } else if (!decision.ok()) {
      SLM_LOG(kError) << "evaluating " << id << ": " << decision.status();
    }
  }
}

absl::StatusOr<Json> Evaluator::Evaluate(const std::string& candidate_id) {
  auto start = std::chrono::steady_clock::now();
  if (store_->is_follower()) {
    // What the owner committed up to now: the candidate, the champion, the
    // held-out window.
    if (absl::Status c = store_->CatchUp(); !c.ok()) return c;
    // Proposed evaluation sets the owner has committed are read from the
    // store again.
    for (auto it = proposed_eval_sets_.begin(); it != proposed_eval_sets_.end();) {
      auto stored = store_->GetEvalSet(it->first);
      it = stored.ok() && *stored == it->second ? proposed_eval_sets_.erase(it) : std::next(it);
    }
  }
  auto champion_id = store_->GetAlias(kChampion);
  if (!champion_id.ok()) return champion_id.status();
  if (*champion_id == candidate_id) {
    return absl::FailedPreconditionError(candidate_id + " is already the champion");
  }
  // Under learner.on_rejection=reset the learner discards a rejected
  // candidate's line; a candidate descending from one (taken before the
  // learner saw the rejection) is not judged: it is not what the learner
  // continues from.
  if (config_.learner.on_rejection == "reset") {
    // A rejection judged against another champion than today's is gone: a
    // promotion since ends every older line, and a proposed verdict judged
    // against a champion that moved before it was committed is stale (never
    // committed), so the learner never reset and its line goes on.
    for (auto it = rejected_.begin(); it != rejected_.end();) {
      it = it->second != *champion_id ? rejected_.erase(it) : std::next(it);
    }
    for (const auto& entry : rejected_) {
      const std::string& rejected = entry.first;
      if (rejected != candidate_id && InLineage(*store_, candidate_id, rejected)) {
        if (held_.candidate == candidate_id) held_ = HeldCandidate();
        return absl::FailedPreconditionError(absl::StrCat(
            candidate_id, " descends from rejected ", rejected,
            ", whose line the learner discarded (learner.on_rejection=reset)"));
      }
    }
  }
  SLM_LOG(kInfo) << "evaluator: evaluating candidate " << candidate_id << " against champion "
                 << *champion_id;
  auto candidate = LoadModel(store_, candidate_id);
  if (!candidate.ok()) return candidate.status();
  auto champion = LoadModel(store_, *champion_id);
  if (!champion.ok()) return champion.status();

  // Losses per token compare only under one tokenizer.
  const bool same_tokenizer =
      (*candidate)->tokenizer().serialized() == (*champion)->tokenizer().serialized();
  const Tokenizer& tok = (*candidate)->tokenizer();
  // Forgetting: the base evaluation set(s) (bootstrap's held-out documents,
  // `import-hf --base-corpus`, or the first held-out stream records).
  const EvalSetIo io{[this](const std::string& name) { return GetEvalSet(name); },
                     [this](const std::string& name, const std::string& value) {
                       return PutEvalSet(name, value);
                     }};
  auto base_set = LoadBaseSet(config_, store_, io);
  if (!base_set.ok()) return base_set.status();
  std::vector<std::vector<int32_t>> base;
  std::vector<std::string> base_labels;
  if (same_tokenizer && !base_set->items.empty()) {
    std::map<std::string, std::vector<std::string>> by_source;
    for (const TextItem& t : base_set->items) by_source[t.source].push_back(t.text);
    const size_t per_source = std::max<size_t>(
        4, static_cast<size_t>(config_.bootstrap.eval_sequences) / by_source.size());
    for (const auto& [source, texts] : by_source) {
      for (auto& b : PackBlocks(tok, texts, (*candidate)->config().context_tokens + 1,
                                per_source)) {
        base.push_back(std::move(b));
        base_labels.push_back(source);
      }
    }
  }
  // Adaptation: held-out stream records, never trained on (nor set aside
  // as the base set).
  auto records = store_->GetHeldoutAfter(-1, static_cast<size_t>(config_.eval.stream_window_records));
  if (!records.ok()) return records.status();
  const int64_t newest_seq = records->empty() ? -1 : records->back().first;
  std::vector<std::vector<int32_t>> stream;
  std::vector<std::string> stream_labels;
  for (const auto& [seq, r] : *records) {
    if (!same_tokenizer) break;
    if (base_set->texts.count(r.text)) continue;
    stream.push_back(HeldoutSequence(tok, r.text));
    stream_labels.push_back(r.source);
  }
  std::vector<SliceComparison> slices;
  const PairedLosses base_losses =
      ScoreSlices(**candidate, **champion, base, base_labels, "base", &slices);
  Comparison base_cmp = Compare(base_losses);
  // The anchor: the base losses of the first champion judged on this base
  // set (under this tokenizer), kept so forgetting is also bounded in total.
  auto anchor = LoadOrRecordAnchor(io, *champion_id, tok, base_set->fingerprint, base_losses);
  if (!anchor.ok()) return anchor.status();
  Comparison stream_cmp = Compare(ScoreSlices(**candidate, **champion, stream, stream_labels,
                                              "stream", &slices));

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
  const size_t window = static_cast<size_t>(config_.eval.feedback_window);
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
                               config_.feedback.beta);
      feedback_sets[name] = FeedbackSetToJson(*out);
    };
    summarize(heldout, &fb.heldout, "heldout");
    summarize(established, &fb.established, "established");
    summarize(fresh, &fb.fresh, "new");
    summarize(*trusted_records, &fb.trusted, "trusted");
  }
  GateInput input;
  input.base = base_cmp;
  input.has_base = !base_set->items.empty();
  input.stream = stream_cmp;
  input.slices = slices;
  Comparison since_anchor;
  if (!anchor->snapshot.empty() && anchor->nats.size() == base_losses.tokens.size()) {
    PairedLosses p;
    p.candidate_nats = base_losses.candidate_nats;
    p.champion_nats = anchor->nats;
    p.tokens = base_losses.tokens;
    since_anchor = Compare(p);
    input.has_anchor = true;
    input.since_anchor = since_anchor;
  }
  input.feedback = fb;
  // The sequential test: a held candidate is looked at again (same champion)
  // with more held-out evidence, each look at a smaller share of gate.alpha.
  const bool again = held_.candidate == candidate_id && held_.champion == *champion_id;
  input.look = again ? held_.looks + 1 : 1;
  GateResult gate = Decide(input, gate_);
  if (!same_tokenizer) {
    gate.awaiting_evidence = false;
    gate.verdict = "held";
    gate.reason = "held: candidate and champion use different tokenizers, so their "
                  "per-token losses cannot be compared; promote by hand if intended";
  }

  Json rules = Json::array();
  for (const RuleResult& r : gate.rules) rules.push_back(RuleToJson(r));
  Json slice_json = Json::object();
  for (const SliceComparison& sl : slices) {
    Json c = ComparisonToJson(sl.cmp);
    c["source"] = sl.name;
    slice_json[sl.kind].push_back(c);
  }
  Json base_json = ComparisonToJson(base_cmp);
  base_json["origin"] = base_set->items.empty() ? std::string("none: no base evaluation set")
                                                : base_set->origin;
  int64_t now = NowMs();
  Json decision = {
      {"time", FormatTimeMs(now)},
      {"time_ms", now},
      {"candidate", candidate_id},
      {"champion", *champion_id},
      {"verdict", gate.verdict},
      {"rules", rules},
      {"look", gate.look},
      {"alpha", gate.alpha},
      {"max_looks", gate_.max_looks},
      {"reference", reference_id},
      {"metrics", {{"base_loss", base_json},
                   {"base_loss_since_anchor",
                    input.has_anchor ? [&] {
                      Json j = ComparisonToJson(since_anchor);
                      j["anchor"] = anchor->snapshot;
                      return j;
                    }() : Json()},
                   {"slices", slice_json},
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
  absl::StatusOr<Json> stored;
  if (verdicts_ != nullptr) {
    // Proposed, not stored: the store's owner commits it and publishes it.
    // Evaluation sets set aside meanwhile go with it: the owner stores them.
    if (!unsent_eval_sets_.empty()) decision["eval_sets"] = unsent_eval_sets_;
    decision["verdict_id"] =
        absl::StrFormat("%s@%s/%d/%d/%d", candidate_id, *champion_id, gate.look, getpid(),
                        absl::ToUnixMicros(absl::Now()));
    absl::Status s =
        verdicts_->Produce(config_.topic_verdicts, candidate_id, decision.dump());
    if (s.ok()) s = verdicts_->Flush(10000);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("cannot propose the verdict on ",
                                                 candidate_id, " on ", config_.topic_verdicts,
                                                 ": ", s.message()));
    }
    unsent_eval_sets_.clear();
    SLM_LOG(kInfo) << "verdict proposed on " << config_.topic_verdicts << ": " << candidate_id
                   << " vs " << *champion_id << ": " << gate.reason;
    stored = decision;
  } else {
    stored = store_->AppendDecision(decision, gate.verdict == "promoted");
    if (!stored.ok()) return stored.status();
    SLM_LOG(kInfo) << "decision " << (*stored)["id"].get<std::string>() << ": "
                   << candidate_id << " vs " << *champion_id << ": " << gate.reason;
  }
  if (decisions_ != nullptr && verdicts_ == nullptr) {
    // Decisions are rare: wait for delivery so the topic agrees with the store.
    absl::Status s = decisions_->Produce(config_.topic_decisions, candidate_id, stored->dump());
    if (s.ok()) s = decisions_->Flush(10000);
    if (!s.ok()) SLM_LOG(kWarning) << "cannot publish decision: " << s;
  }
  if (gate.verdict == "rejected") rejected_[candidate_id] = *champion_id;
  if (gate.verdict == "promoted") rejected_.clear();  // a new champion: older lines are gone
  if (gate.awaiting_evidence) {
    held_ = {candidate_id, *champion_id, gate.look, newest_seq};
  } else if (held_.candidate == candidate_id) {
    held_ = HeldCandidate();
  }
  if (on_decision_ && verdicts_ == nullptr) on_decision_(*stored);
  return *stored;
}

absl::StatusOr<std::string> Evaluator::GetEvalSet(const std::string& name) const {
  if (auto it = proposed_eval_sets_.find(name); it != proposed_eval_sets_.end()) {
    return it->second;
  }
  return store_->GetEvalSet(name);
}

absl::Status Evaluator::PutEvalSet(const std::string& name, const std::string& value) {
  if (verdicts_ == nullptr) return store_->PutEvalSet(name, value);
  proposed_eval_sets_[name] = value;
  unsent_eval_sets_[name] = value;
  return absl::OkStatus();
}

}  // namespace streamlm

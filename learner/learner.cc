#include "learner/learner.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log.h"
#include "learner/bootstrap.h"
#include "learner/checkpoint_state.h"
#include "learner/data_parallel.h"
#include "learner/forgotten_slices.h"
#include "learner/schedule.h"

namespace streamlm {

bool IsHeldOut(const std::string& text, int every) {
  return Fnv1a64(text) % static_cast<uint64_t>(every) == 0;
}

uint64_t PairKey(const std::string& prompt, const std::string& chosen,
                 const std::string& rejected) {
  return Fnv1a64(absl::StrCat(prompt, "\x1f", chosen, "\x1f", rejected));
}

std::string FeedbackIdentity(const Json& record) {
  std::string id;
  for (const char* f : {"prompt", "chosen", "rejected", "response", "correction"}) {
    if (record.contains(f)) absl::StrAppend(&id, f, "\x1f", record[f].get<std::string>(), "\x1f");
  }
  if (record.contains("rating")) absl::StrAppend(&id, "rating\x1f", record["rating"].dump());
  return id;
}

namespace {
// Adds `n` to the integer at `key` of a JSON object of counts.
void Bump(Json& counts, const std::string& key, int64_t n = 1) {
  if (!counts.is_object()) counts = Json::object();
  counts[key] = counts.value(key, int64_t{0}) + n;
}
// At most this many distinct user labels in /metrics; the rest are "other".
constexpr size_t kMaxUserLabels = 100;

// The newest rejected candidate that `snapshot` descends from since
// `champion` (empty when none): the snapshots between them are the line
// since the last promotion, usually a few, so the decisions are read once.
absl::StatusOr<std::string> RejectedAncestor(const Store& store, const std::string& snapshot,
                                             const std::string& champion) {
  std::set<std::string> line;
  for (std::string at = snapshot; !at.empty() && at != champion; ) {
    if (!line.insert(at).second) break;  // a cycle: corrupt metadata
    auto meta = store.GetSnapshotMeta(at);
    if (!meta.ok()) break;  // no metadata (retention keeps it): walked as far as it goes
    at = meta->lineage.parent;
  }
  if (line.empty()) return std::string();
  auto decisions = store.ListDecisions();
  if (!decisions.ok()) return decisions.status();
  for (const Json& d : *decisions) {  // newest first
    if (d.value("verdict", "") != "rejected") continue;
    const std::string candidate = d.value("candidate", "");
    if (line.count(candidate) > 0) return candidate;
  }
  return std::string();
}
}  // namespace

Learner::Learner(const Config& config, Store* store, Counters* counters,
                 CandidateCallback on_candidate)
    : config_(config),
      store_(store),
      counters_(counters),
      on_candidate_(std::move(on_candidate)),
      replay_(std::make_unique<SlicedReplay>(config.learner.replay_capacity_blocks,
                                             config.learner.replay_base_share,
                                             config.learner.replay_max_slices,
                                             static_cast<uint64_t>(config.seed))) {}

absl::StatusOr<std::unique_ptr<Learner>> Learner::Create(
    const Config& config, const std::string& brokers, Store* store,
    Counters* counters, CandidateCallback on_candidate, DataParallel* dp) {
  std::unique_ptr<Learner> l(new Learner(config, store, counters, std::move(on_candidate)));
  l->dp_ = dp;
  auto checkpoint = store->GetCheckpoint();
  if (!checkpoint.ok() && !absl::IsNotFound(checkpoint.status())) return checkpoint.status();
  auto champion = store->GetAlias(kChampion);
  if (!checkpoint.ok() && !champion.ok()) {
    return absl::FailedPreconditionError(
        "the store has no champion to learn from: run `streamlm bootstrap` first");
  }
  // The checkpoint's model is resumed while the champion is in its lineage
  // (the usual case: the champion is one of the learner's own snapshots).
  // A champion from outside it (imported, or promoted by hand) replaces the
  // learner's model; the stream position and accounting carry over.
  // The learner's state, every field type-checked: a corrupt checkpoint is a
  // DataLossError naming the field (checkpoint_state.h), never an exception.
  LearnerState st;
  if (checkpoint.ok()) {
    auto decoded = DecodeLearnerState(checkpoint->state);
    if (!decoded.ok()) return decoded.status();
    st = std::move(*decoded);
  }
  bool resume_model = checkpoint.ok();
  if (checkpoint.ok() && champion.ok()) {
    resume_model = InLineage(*store, st.snapshot, *champion);
  }
  if (resume_model && champion.ok() && config.learner.on_rejection == "reset") {
    // A rejection is handed to the running learner (OnDecision) and applied
    // at its next step; a process that died in between resumes a line that
    // was rejected, whose every later candidate the evaluator refuses. The
    // stored decisions say so: such a line starts again at the champion.
    auto rejected = RejectedAncestor(*store, st.snapshot, *champion);
    if (!rejected.ok()) return rejected.status();
    if (!rejected->empty()) {
      SLM_LOG(kWarning) << "learner: the checkpoint's snapshot " << st.snapshot
                        << " descends from rejected " << *rejected
                        << " (learner.on_rejection=reset): starting again from champion "
                        << *champion;
      resume_model = false;
    }
  }
  const std::string base_id = resume_model ? st.snapshot : *champion;
  auto snap = store->GetSnapshot(base_id);
  if (!snap.ok()) return snap.status();
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) return model.status();
  l->trainer_ = std::make_unique<Trainer>(*model, config.learner.lr);
  l->last_snapshot_ = base_id;

  if (config.dedup.window_docs > 0) {
    l->dedup_ = std::make_unique<Deduplicator>(DedupOptionsFromConfig(config));
    if (checkpoint.ok() && !checkpoint->dedup.empty()) {
      absl::Status s = l->dedup_->Restore(checkpoint->dedup);
      if (!s.ok()) return s;
    }
  }
  if (checkpoint.ok()) {
    // Stream position and accounting always carry over.
    l->start_offsets_ = checkpoint->next_offsets;
    l->pending_tokens_ = std::move(st.pending_tokens);
    for (const auto& [p, off] : st.range_begin) l->range_begin_[p] = off;
    l->since_snapshot_ = LineageFromJson(st.since_snapshot);  // types checked
    l->steps_since_snapshot_ = st.steps_since_snapshot;
    for (const auto& [p, off] : st.feedback_offsets) l->feedback_start_offsets_[p] = off;
    l->step_ = checkpoint->step;
    for (Json& r : st.pending_feedback) l->pending_feedback_.push_back(std::move(r));
    for (const std::string& u : st.user_window) {
      l->user_window_.push_back(u);
      ++l->user_counts_[u];
    }
    l->feedback_since_ = std::move(st.feedback_since);
    for (auto& run : st.pending_sources) l->pending_sources_.push_back(std::move(run));
    // Written by another number of data-parallel learners: the ranks'
    // consumed but untrained tokens are trained here, on rank 0.
    const int64_t world = dp != nullptr ? dp->world_size() : 1;
    if (st.world_size != world) {
      for (auto& [rank, rs] : st.ranks) {
        l->pending_tokens_.insert(l->pending_tokens_.end(), rs.pending_tokens.begin(),
                                  rs.pending_tokens.end());
        for (auto& run : rs.pending_sources) l->pending_sources_.push_back(std::move(run));
      }
      if (!st.ranks.empty()) {
        SLM_LOG(kInfo) << "learner: the checkpoint was written by " << st.world_size
                       << " data-parallel learners, now " << world << ": rank 0 takes "
                       << "their pending tokens (" << l->pending_tokens_.size() << " in all)";
      }
      st.ranks.clear();
    }
    if (resume_model) {
      l->cycle_step_ = st.cycle_step.value_or(0);
      l->cycle_length_ = st.cycle_length.value_or(config.learner.snapshot_every_steps);
    }
    // The reference model stays the cycle's champion while the model resumes.
    if (resume_model) l->reference_id_ = st.reference;
  }
  if (l->reference_id_.empty()) l->reference_id_ = champion.ok() ? *champion : base_id;
  l->last_champion_ = champion.ok() ? *champion : "";
  {
    // Every stored preference pair, for contradiction detection.
    auto stored = store->ListFeedback();
    if (!stored.ok()) return stored.status();
    for (const Store::FeedbackEntry& e : *stored) {
      const Json& r = e.record;
      if (r.contains("chosen")) {
        l->pair_keys_.insert(PairKey(r.value("prompt", ""), r.value("chosen", ""),
                                     r.value("rejected", "")));
      }
    }
  }
  if (resume_model) {
    absl::Status s = (*model)->LoadWeights(checkpoint->weights);
    if (s.ok()) s = l->trainer_->RestoreOptimizer(checkpoint->optimizer);
    if (s.ok()) s = l->replay_->Restore(checkpoint->replay);
    if (!s.ok()) return s;
    SLM_LOG(kInfo) << "learner resumes at step " << l->step_ << " from its checkpoint ("
                   << l->pending_tokens_.size() << " pending tokens)";
  } else {
    if (checkpoint.ok() && !l->pending_tokens_.empty()) {
      // Pending tokens were cut by the old model's tokenizer: re-cut them.
      auto old = store->GetSnapshot(checkpoint->state.value("snapshot", ""));
      if (old.ok() && old->tokenizer != snap->tokenizer) {
        auto old_tok = LoadTokenizer(old->tokenizer);
        if (!old_tok.ok()) return old_tok.status();
        l->pending_tokens_ = (*model)->tokenizer().Encode((*old_tok)->Decode(l->pending_tokens_));
        l->pending_sources_.clear();  // sources by token count no longer line up
        l->pending_sources_.emplace_back("", static_cast<int64_t>(l->pending_tokens_.size()));
      }
    }
    auto seed = store->GetEvalSet(kReplaySeedSet);
    // Records trained since an earlier champion stay in replay when the
    // tokenizer did not change.
    bool kept_replay = false;
    if (checkpoint.ok() && !checkpoint->replay.empty()) {
      auto old = store->GetSnapshot(checkpoint->state.value("snapshot", ""));
      if (old.ok() && old->tokenizer == snap->tokenizer) {
        kept_replay = l->replay_->Restore(checkpoint->replay).ok();
      }
    }
    if (seed.ok() && !kept_replay) {
      auto docs = ParseJson(*seed);
      if (!docs.ok() || !docs->is_array()) return absl::DataLossError("replay seed is corrupt");
      for (const TokenBlock& b :
           PackBlocks((*model)->tokenizer(), docs->get<std::vector<std::string>>(),
                      (*model)->config().context_tokens + 1,
                      static_cast<size_t>(config.learner.replay_capacity_blocks))) {
        l->replay_->Add(SlicedReplay::kBase, b);
      }
    }
    SLM_LOG(kInfo) << "learner starts from champion " << base_id << " with "
                   << l->replay_->size() << " replay blocks"
                   << (checkpoint.ok() ? " (champion is not in its checkpoint's lineage)" : "");
  }

  if (absl::Status s = l->OpenTextSource(brokers, counters); !s.ok()) return s;
  l->feedback_cleaner_ = std::make_unique<Cleaner>(config.clean_feedback);
  TextSourceOptions fo;
  fo.brokers = brokers;
  fo.group = config.learner.group;
  fo.topic = config.topic_feedback;
  fo.rejects_topic = config.topic_rejects;
  fo.start_offsets = l->feedback_start_offsets_;  // all partitions: feedback is rank 0's
  auto feedback = TextSource::Create(fo, counters);
  if (!feedback.ok()) return feedback.status();
  l->feedback_source_ = std::move(*feedback);
  l->last_snapshot_time_ = std::chrono::steady_clock::now();
  l->cycle_start_time_ = l->last_snapshot_time_;
  if (l->cycle_length_ <= 0) l->cycle_length_ = config.learner.snapshot_every_steps;
  if (l->leader()) {
    absl::Status s = l->DpHandOut(st);
    if (!s.ok()) return s;
  }
  return l;
}

namespace {
// Rejects show 256 bytes of the record; redacting a longer prefix first
// keeps an address that straddles the cut from surviving half-matched.
constexpr size_t kAuditPrefixBytes = 1024;
}  // namespace

void Learner::Ingest(std::vector<SourceRecord> records) {
  if (records.empty()) return;
  std::vector<IngestItem> items(records.size());
  for (size_t i = 0; i < records.size(); ++i) items[i].payload = std::move(records[i].payload);
  // Stages 1-7; duplicates are dropped before the held-out split, so a text
  // seen in training can never count as held-out evidence.
  const Tokenizer& tok = trainer_->model().tokenizer();
  pipeline_->Run(items, dedup_.get(), &tok);
  for (size_t i = 0; i < items.size(); ++i) {
    IngestItem& item = items[i];
    if (!item.ok()) {
      // The rejects topic shows a prefix of the record: redacted too.
      records[i].payload =
          pipeline_->cleaner().RedactForAudit(Utf8Prefix(item.payload, kAuditPrefixBytes));
      source_->Reject(records[i], item.reason, item.detail);
      continue;
    }
    CountCleaning(item.clean, counters_);
    if (IsHeldOut(item.record.text, config_.learner.heldout_every_records)) {
      pending_heldout_.push_back(std::move(item.record.text));
      pending_heldout_sources_.push_back(item.record.source);
      ++since_snapshot_.records_heldout;
      counters_->Add("streamlm_records_heldout_total", 1);
      continue;
    }
    pending_tokens_.insert(pending_tokens_.end(), item.tokens.begin(), item.tokens.end());
    pending_tokens_.push_back(tok.eos_id());
    const int64_t n = static_cast<int64_t>(item.tokens.size()) + 1;
    if (!pending_sources_.empty() && pending_sources_.back().first == item.record.source) {
      pending_sources_.back().second += n;
    } else {
      pending_sources_.emplace_back(item.record.source, n);
    }
    ++since_snapshot_.records_trained;
    counters_->Add("streamlm_records_trained_total", 1);
    const int64_t ts = records[i].timestamp_ms;
    if (ts > 0) {
      Lineage& l = since_snapshot_;
      l.oldest_record_ms = l.oldest_record_ms == 0 ? ts : std::min(l.oldest_record_ms, ts);
      l.newest_record_ms = std::max(l.newest_record_ms, ts);
    }
  }
}

absl::Status Learner::IngestFeedback(std::vector<SourceRecord> records) {
  if (records.empty()) return absl::OkStatus();
  const Tokenizer& tok = trainer_->model().tokenizer();
  const int context = trainer_->model().config().context_tokens;
  const int64_t user_limit = std::max<int64_t>(
      config_.feedback.user_min_quota,
      static_cast<int64_t>(config_.feedback.max_user_share * config_.feedback.user_window));
  std::vector<Store::FeedbackEntry> kept;
  std::vector<Json> to_train;
  for (SourceRecord& r : records) {
    counters_->Add("streamlm_feedback_consumed_total", 1);
    FeedbackResult f = CleanFeedbackRecord(
        r.payload, static_cast<size_t>(config_.learner.max_record_bytes), *feedback_cleaner_);
    std::string reason = f.ok() ? "" : f.reason;
    std::string detail = f.detail;
    if (f.ok()) {
      // Needs the model's tokenizer: fits the context, two different sides.
      auto example = MakeFeedbackExample(tok, f.record, context);
      if (!example.ok()) {
        const std::string msg(example.status().message());
        const size_t colon = msg.find(':');
        reason = msg.substr(0, colon);
        detail = colon == std::string::npos ? "" : msg.substr(colon + 2);
      }
    }
    if (!reason.empty()) {
      r.payload = feedback_cleaner_->RedactForAudit(Utf8Prefix(r.payload, kAuditPrefixBytes));
      feedback_source_->Reject(r, reason, detail);
      counters_->Add("streamlm_feedback_rejected_total", 1, reason);
      Bump(feedback_since_, "rejected");
      continue;
    }
    CountPii(f.pii, counters_);
    Json& rec = f.record;
    // Kafka's timestamp: stable when the record is read again after a crash.
    rec["ts_ms"] = r.timestamp_ms > 0 ? r.timestamp_ms : NowMs();
    const std::string user = rec.value("user", "");
    if (!user.empty()) {
      if (labelled_users_.size() < kMaxUserLabels) labelled_users_.insert(user);
      counters_->Add("streamlm_feedback_user_total", 1,
                     labelled_users_.count(user) ? "user=" + user : "user=other");
    }
    std::string split = "train";
    if (IsHeldOut(FeedbackIdentity(rec), config_.feedback.heldout_every)) {
      split = "heldout";
      counters_->Add("streamlm_feedback_heldout_total", 1);
      Bump(feedback_since_, "heldout");
    } else if (!user.empty() && user_counts_[user] >= user_limit) {
      // Kept for the record, not trained on: one user's influence is bounded.
      split = "limited";
      counters_->Add("streamlm_feedback_limited_total", 1);
      Bump(feedback_since_, "limited");
    }
    if (rec.contains("chosen")) {
      const std::string p = rec["prompt"], c = rec["chosen"], j = rec["rejected"];
      if (pair_keys_.count(PairKey(p, j, c))) {
        rec["contradicts"] = true;
        counters_->Add("streamlm_feedback_contradictions_total", 1);
        if (split == "train") {  // what the candidate will have learned
          Bump(feedback_since_, "contradictions");
          if (!user.empty()) Bump(feedback_since_["contradiction_users"], user);
        }
      }
      pair_keys_.insert(PairKey(p, c, j));
    }
    rec["split"] = split;
    if (split == "train") {
      to_train.push_back(rec);
      user_window_.push_back(user);
      ++user_counts_[user];
      while (user_window_.size() > static_cast<size_t>(config_.feedback.user_window)) {
        if (--user_counts_[user_window_.front()] == 0) user_counts_.erase(user_window_.front());
        user_window_.pop_front();
      }
    }
    kept.push_back({r.partition, r.offset, std::move(rec)});
  }
  // Written now, keyed by position: a replay after a crash rewrites the same
  // keys, and the offsets advance only with the next checkpoint. A record
  // that cannot be stored stops the learner (after retries) so its offset is
  // never checkpointed.
  absl::Status s;
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(attempt));
    s = store_->PutFeedback(kept);
    if (s.ok()) break;
    SLM_LOG(kWarning) << "cannot store " << kept.size() << " feedback records (attempt "
                      << attempt + 1 << " of 3): " << s;
  }
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("feedback records cannot be stored: ", s.message()));
  }
  counters_->Add("streamlm_feedback_stored_total", static_cast<int64_t>(kept.size()));
  for (Json& r : to_train) pending_feedback_.push_back(std::move(r));
  return absl::OkStatus();
}

absl::Status Learner::RebaseReference() {
  auto champion = store_->GetAlias(kChampion);
  if (!champion.ok()) return champion.status();
  if (reference_ != nullptr && *champion == reference_id_) return absl::OkStatus();
  auto snap = store_->GetSnapshot(*champion);
  if (!snap.ok()) return snap.status();
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) return model.status();
  if (*champion != reference_id_) {
    SLM_LOG(kInfo) << "learner: feedback reference model is now champion " << *champion
                   << " (was " << reference_id_ << ")";
  }
  reference_ = std::move(*model);
  reference_id_ = *champion;
  return absl::OkStatus();
}

void Learner::OnDecision(const Json& decision) {
  const std::string verdict = decision.value("verdict", "");
  if (verdict != "rejected") return;
  // The slices a rejected candidate forgot get a larger replay share.
  std::vector<std::string> forgotten = ForgottenReplaySlices(decision);
  std::lock_guard<std::mutex> lock(reset_mu_);
  for (std::string& f : forgotten) forgotten_slices_.push_back(std::move(f));
  if (config_.learner.on_rejection != "reset") return;
  reset_candidate_ = decision.value("candidate", "");
  reset_reason_ = absl::StrCat("candidate ", reset_candidate_, " was rejected (",
                               decision.value("id", "?"), ")");
}

absl::Status Learner::MaybeReset() {
  std::string reason, rejected;
  std::vector<std::string> forgotten;
  {
    std::lock_guard<std::mutex> lock(reset_mu_);
    reason.swap(reset_reason_);
    rejected.swap(reset_candidate_);
    forgotten.swap(forgotten_slices_);
  }
  for (const std::string& slice : forgotten) {
    replay_->Boost(slice, 2.0, config_.learner.replay_max_boost);
    SLM_LOG(kInfo) << "learner: replay slice '" << slice << "' was forgotten; its replay share "
                   << "is now " << replay_->Shares()[slice];
  }
  // Only a candidate this learner's weights descend from is worth undoing.
  if (!reason.empty() && !InLineage(*store_, last_snapshot_, rejected)) reason.clear();
  auto champion = store_->GetAlias(kChampion);
  if (!champion.ok()) return absl::OkStatus();
  if (*champion != last_champion_) {
    // Forward (the new champion descends from the old one): keep going.
    // Back or sideways (a rollback; a snapshot from elsewhere): reset.
    const bool forward = last_champion_.empty() || InLineage(*store_, *champion, last_champion_);
    if (config_.learner.on_rejection == "reset" && !forward) {
      reason = absl::StrCat("the champion moved from ", last_champion_, " to ", *champion,
                            ", not a descendant of it");
    }
    if (forward && !last_champion_.empty()) {
      // A promotion: replay back to its shares.
      replay_->ClearBoosts();
    }
    last_champion_ = *champion;
  }
  if (reason.empty() || last_snapshot_ == *champion) return absl::OkStatus();
  auto snap = store_->GetSnapshot(*champion);
  if (!snap.ok()) return snap.status();
  if (snap->tokenizer != trainer_->model().tokenizer().serialized()) {
    SLM_LOG(kWarning) << "learner: " << reason << ", but champion " << *champion
                      << " has another tokenizer: continuing with the learner's own weights";
    return absl::OkStatus();
  }
  absl::Status s = trainer_->model().LoadWeights(snap->weights);
  if (!s.ok()) return s;
  trainer_ = std::make_unique<Trainer>(trainer_->shared_model(), config_.learner.lr);
  if (leader()) {
    // Every rank takes the champion's weights and a fresh optimizer.
    s = DpSend(kDpReset);
    if (s.ok()) s = dp_->BroadcastParameters(trainer_->model().net().parameters());
    if (!s.ok()) return s;
  }
  SLM_LOG(kInfo) << "learner: " << reason << "; back to champion " << *champion
                 << "'s weights with fresh optimizer state (learner.on_rejection=reset; "
                 << "discarding training since " << *champion << ", last snapshot "
                 << last_snapshot_ << ")";
  counters_->Add("streamlm_learner_resets_total", 1);
  StartCycle();  // a new cycle from the champion
  reset_from_ = last_snapshot_;
  last_snapshot_ = *champion;
  steps_since_snapshot_ = 0;  // the next candidate needs new training
  // Written now: a restart must not resume the discarded weights.
  return Checkpoint(/*with_snapshot=*/false);
}

absl::Status Learner::AfterStep() {
  ++step_;
  ++steps_since_snapshot_;
  counters_->Add("streamlm_learner_steps_total", 1);
  // Under a cyclic schedule (cosine, wsd) a candidate ends each cycle of stream steps, at
  // the floor rate; feedback steps alone count toward
  // learner.snapshot_every_steps only while no stream step is in the cycle.
  bool due = steps_since_snapshot_ >= config_.learner.snapshot_every_steps;
  if (IsCyclicSchedule(config_.learner.lr_schedule) && cycle_step_ > 0) {
    due = cycle_step_ >= cycle_length_;
  }
  if (due) {
    return Checkpoint(/*with_snapshot=*/true);
  }
  return absl::OkStatus();
}

absl::Status Learner::MaybeTrainFeedback() {
  const int context = trainer_->model().config().context_tokens;
  const Tokenizer& tok = trainer_->model().tokenizer();
  while (!pending_feedback_.empty() && !stop_) {
    absl::Status s = RebaseReference();
    if (!s.ok()) return s;
    const size_t n = std::min(pending_feedback_.size(),
                              static_cast<size_t>(config_.feedback.batch_size));
    std::vector<FeedbackExample> ex;
    for (size_t i = 0; i < n; ++i) {
      auto e = MakeFeedbackExample(tok, pending_feedback_[i], context);
      if (e.ok()) ex.push_back(std::move(*e));  // checked at ingest; a new tokenizer may differ
    }
    std::vector<const ResponseSequence*> chosen, rejected, rated, corrections;
    std::vector<ResponseSequence> kl_seqs;
    std::vector<const FeedbackExample*> rated_ex;
    for (const FeedbackExample& e : ex) {
      switch (e.kind) {
        case FeedbackExample::Kind::kPreference:
          chosen.push_back(&e.seqs[0]);
          rejected.push_back(&e.seqs[1]);
          break;
        case FeedbackExample::Kind::kRating:
          rated.push_back(&e.seqs[0]);
          rated_ex.push_back(&e);
          break;
        case FeedbackExample::Kind::kCorrection:
          corrections.push_back(&e.seqs[0]);
          break;
      }
    }
    // KTO's reference point: each rated prompt with the next one's response.
    const size_t R = rated.size();
    for (size_t i = 0; R >= 2 && i < R; ++i) {
      const ResponseSequence& other = rated_ex[(i + 1) % R]->seqs[0];
      std::vector<int32_t> response(other.ids.begin() + other.response_begin, other.ids.end());
      ResponseSequence kl;
      kl.ids.assign(rated[i]->ids.begin(), rated[i]->ids.begin() + rated[i]->response_begin);
      kl.response_begin = kl.ids.size();
      kl.ids.insert(kl.ids.end(), response.begin(), response.end());
      if (kl.ids.size() > static_cast<size_t>(context) + 1) kl.ids.resize(context + 1);
      kl_seqs.push_back(std::move(kl));
    }
    auto to_tensor = [](const std::vector<ResponseScore>& scores) {
      std::vector<double> v;
      for (const ResponseScore& r : scores) v.push_back(r.logprob);
      return torch::tensor(v, torch::kFloat);
    };
    torch::Tensor ref_c, ref_r, ref_y, z0;
    if (!chosen.empty()) {
      ref_c = to_tensor(ScoreResponses(*reference_, chosen));
      ref_r = to_tensor(ScoreResponses(*reference_, rejected));
    }
    if (R > 0) {
      ref_y = to_tensor(ScoreResponses(*reference_, rated));
      std::vector<const ResponseSequence*> kl_ptrs;
      for (const ResponseSequence& k : kl_seqs) kl_ptrs.push_back(&k);
      z0 = kl_ptrs.empty()
               ? torch::zeros({}, torch::kFloat)
               : KtoReferencePoint(to_tensor(ScoreResponses(trainer_->model(), kl_ptrs)),
                                   to_tensor(ScoreResponses(*reference_, kl_ptrs)));
    }
    std::vector<TokenBlock> lm = replay_->Sample(static_cast<size_t>(
        std::lround(static_cast<double>(n) * config_.feedback.replay_ratio)));
    const double beta = config_.feedback.beta;
    const LossFn feedback_loss = [&](CausalLm& net) {
      torch::Tensor total = torch::zeros({}, torch::kFloat);
      torch::Tensor inputs, labels;
      if (!chosen.empty()) {
        std::vector<const ResponseSequence*> both = chosen;
        both.insert(both.end(), rejected.begin(), rejected.end());
        PackResponseBatch(both, &inputs, &labels);
        auto lp = SequenceLogprobs(net.forward(inputs), labels);
        const int64_t P = static_cast<int64_t>(chosen.size());
        total = total + config_.feedback.dpo_weight *
                            DpoLoss(lp.slice(0, 0, P), lp.slice(0, P, 2 * P), ref_c, ref_r, beta);
      }
      if (R > 0) {
        PackResponseBatch(rated, &inputs, &labels);
        auto desirable = torch::zeros({static_cast<int64_t>(R)}, torch::kBool);
        for (size_t i = 0; i < R; ++i) desirable[i] = rated_ex[i]->rating > 0;
        total = total + config_.feedback.kto_weight *
                            KtoLoss(SequenceLogprobs(net.forward(inputs), labels), ref_y,
                                    desirable, z0, beta, config_.feedback.kto_desirable_weight,
                                    config_.feedback.kto_undesirable_weight);
      }
      if (!corrections.empty()) {
        PackResponseBatch(corrections, &inputs, &labels);
        total = total + config_.feedback.sft_weight * SftLoss(net.forward(inputs), labels);
      }
      if (!lm.empty()) {
        const torch::Tensor data = BlocksTensor(lm);
        const int64_t L = data.size(1);
        total = total + config_.feedback.lm_weight *
                            net.Loss(data.slice(1, 0, L - 1), data.slice(1, 1, L));
      }
      return total;
    };
    // Data-parallel: rank 0 alone trains on feedback; the others take the
    // same step with nothing of their own.
    if (leader()) {
      s = DpSend(kDpFeedbackStep, DoubleBits(config_.feedback.lr));
      if (!s.ok()) return s;
    }
    auto stepped = TrainStep(&feedback_loss, 1.0, config_.feedback.lr);
    if (!stepped.ok()) return stepped.status();
    const double loss = *stepped;
    for (const FeedbackExample& e : ex) {
      Bump(feedback_since_, "trained");
      Bump(feedback_since_, FeedbackKindName(e.kind));
      if (!e.user.empty()) Bump(feedback_since_["users"], e.user);
    }
    counters_->Add("streamlm_feedback_trained_total", static_cast<int64_t>(ex.size()));
    pending_feedback_.erase(pending_feedback_.begin(), pending_feedback_.begin() + n);
    feedback_loss_avg_ = loss;
    counters_->Set("streamlm_learner_feedback_loss", loss);
    SLM_LOG(kDebug) << "learner feedback step " << step_ + 1 << " loss " << loss;
    s = AfterStep();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

double Learner::CycleLr() const {
  LrCycle c;
  c.schedule = config_.learner.lr_schedule;
  c.peak = config_.learner.lr;
  c.min_ratio = config_.learner.min_lr_ratio;
  c.warmup_steps = config_.learner.warmup_steps;
  c.decay_fraction = config_.learner.decay_fraction;
  c.length = cycle_length_;
  return CycleLearningRate(c, cycle_step_);
}

double Learner::CyclePace() const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - cycle_start_time_).count();
  return cycle_step_ > 0 && seconds > 0 ? cycle_step_ / seconds : cycle_steps_per_s_;
}

int64_t Learner::CycleLengthAt(double steps_per_s) const {
  int64_t length = config_.learner.snapshot_every_steps;
  if (steps_per_s > 0) {
    const double by_time = std::floor(config_.learner.snapshot_every_s * steps_per_s);
    if (by_time < static_cast<double>(length)) {
      length = std::max<int64_t>(1, static_cast<int64_t>(by_time));
    }
  }
  return length;
}

void Learner::StartCycle(double pace) {
  cycle_steps_per_s_ = pace < 0 ? CyclePace() : pace;
  cycle_step_ = 0;
  cycle_start_time_ = std::chrono::steady_clock::now();
  cycle_length_ = CycleLengthAt(cycle_steps_per_s_);
}

Learner::StreamBatch Learner::TakeStreamBatch(int n_fresh, int n_replay) const {
  const size_t T = static_cast<size_t>(trainer_->model().config().context_tokens);
  StreamBatch out;
  // Fresh blocks overlap by one token, so every consumed token is a training
  // target exactly once.
  for (int i = 0; i < n_fresh; ++i) {
    out.fresh.emplace_back(pending_tokens_.begin() + i * T,
                           pending_tokens_.begin() + (i + 1) * T + 1);
    // A block replays as part of the source of its first token.
    int64_t skip = static_cast<int64_t>(i * T);
    std::string source;
    for (const auto& [src, n] : pending_sources_) {
      source = src;
      if (skip < n) break;
      skip -= n;
    }
    out.sources.push_back(source);
  }
  out.blocks = out.fresh;
  for (TokenBlock& b : replay_->Sample(static_cast<size_t>(n_replay))) {
    out.blocks.push_back(std::move(b));
  }
  return out;
}

void Learner::ConsumeStreamBatch(const StreamBatch& batch) {
  const size_t T = static_cast<size_t>(trainer_->model().config().context_tokens);
  const int64_t tokens = static_cast<int64_t>(batch.fresh.size() * T);
  pending_tokens_.erase(pending_tokens_.begin(), pending_tokens_.begin() + tokens);
  for (int64_t left = tokens; left > 0 && !pending_sources_.empty();) {
    const int64_t take = std::min(left, pending_sources_.front().second);
    pending_sources_.front().second -= take;
    left -= take;
    if (pending_sources_.front().second == 0) pending_sources_.pop_front();
  }
  for (size_t i = 0; i < batch.fresh.size(); ++i) replay_->Add(batch.sources[i], batch.fresh[i]);
  since_snapshot_.tokens_trained += tokens;
  counters_->Add("streamlm_tokens_trained_total", tokens);
}

std::pair<int, int> Learner::StreamSplit() const {
  const int B = config_.learner.batch_size;
  const int n_replay = static_cast<int>(std::lround(B * config_.learner.replay_fraction));
  const int n_fresh = std::max(1, B - n_replay);
  return {n_fresh, B - n_fresh};
}

int64_t Learner::StreamStepsReady() const {
  const size_t T = static_cast<size_t>(trainer_->model().config().context_tokens);
  const size_t per_step = static_cast<size_t>(StreamSplit().first) * T;
  return pending_tokens_.empty() ? 0 : static_cast<int64_t>((pending_tokens_.size() - 1) / per_step);
}

absl::StatusOr<double> Learner::TrainStep(const LossFn* loss, double weight, double lr) {
  if (dp_ == nullptr || dp_->world_size() == 1) return trainer_->StepWith(*loss, lr);
  return trainer_->StepReduced(loss, lr, [&](const std::vector<torch::Tensor>& params) {
    return dp_->AllReduceGradients(params, weight);
  });
}

absl::Status Learner::MaybeTrain() {
  const auto [n_fresh, n_replay] = StreamSplit();
  while (!stop_) {
    const bool own = StreamStepsReady() > 0;
    // Data-parallel: step when every rank has a batch, or, once some have
    // waited learner.dp_max_wait_s for the rest, with those that have one.
    int64_t mask = own ? 1 : 0;
    if (leader()) {
      bool all = own;
      for (int r = 1; r < dp_->world_size(); ++r) {
        if (dp_ready_[r] > 0) {
          mask |= int64_t{1} << r;
        } else {
          all = false;
        }
      }
      if (mask == 0) {
        dp_uneven_since_ = {};
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (!all) {
        if (dp_uneven_since_ == std::chrono::steady_clock::time_point{}) dp_uneven_since_ = now;
        if (std::chrono::duration<double>(now - dp_uneven_since_).count() <
            config_.learner.dp_max_wait_s) {
          break;
        }
      } else {
        dp_uneven_since_ = {};
      }
    } else if (!own) {
      break;
    }
    StreamBatch batch;
    if (own) batch = TakeStreamBatch(n_fresh, n_replay);
    const double lr = CycleLr();
    last_lr_ = lr;
    if (leader()) {
      absl::Status s = DpSend(kDpStep, DoubleBits(lr), mask);
      if (!s.ok()) return s;
      for (int r = 1; r < dp_->world_size(); ++r) {
        if ((mask >> r) & 1) --dp_ready_[r];
      }
    }
    const LossFn loss_fn = own ? BlocksLoss(batch.blocks) : LossFn();
    auto stepped = TrainStep(own ? &loss_fn : nullptr, static_cast<double>(batch.blocks.size()), lr);
    if (!stepped.ok()) return stepped.status();
    ++cycle_step_;
    if (own) {
      ConsumeStreamBatch(batch);
      const double loss = *stepped;
      loss_avg_ = steps_since_snapshot_ == 0 ? loss : 0.9 * loss_avg_ + 0.1 * loss;
      counters_->Set("streamlm_learner_loss", loss_avg_);
      SLM_LOG(kDebug) << "learner step " << step_ + 1 << " loss " << loss << " lr " << lr;
    }
    counters_->Set("streamlm_learner_lr", lr);
    absl::Status s = AfterStep();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::map<int32_t, int64_t> Learner::NextOffsets() const {
  std::map<int32_t, int64_t> next = start_offsets_;
  for (const auto& [p, off] : source_->positions()) next[p] = off;
  return next;
}

absl::Status Learner::DeliverRejects() {
  bool warned = false;
  while (true) {
    const int timeout_ms = stop_ ? 10000 : 1000;
    absl::Status s = source_->FlushRejects(timeout_ms);
    if (s.ok() && feedback_source_ != nullptr) s = feedback_source_->FlushRejects(timeout_ms);
    if (s.ok()) {
      if (warned) SLM_LOG(kWarning) << "learner: rejects delivered; checkpointing";
      return s;
    }
    // A reject that cannot be written at all, or a stop while the broker is
    // away: no checkpoint, so the records are read and rejected again.
    if (!absl::IsUnavailable(s) || stop_) {
      return absl::Status(s.code(), absl::StrCat(s.message(), "; no checkpoint written, the "
                                                 "records are read again on restart"));
    }
    if (!warned) {
      SLM_LOG(kWarning) << "learner: checkpoint waits until the rejects are delivered: " << s;
      warned = true;
    }
  }
}

absl::Status Learner::Checkpoint(bool with_snapshot) {
  if (leader()) {
    absl::Status s = DpSend(kDpCheckpoint);
    if (!s.ok()) return s;
  }
  absl::Status delivered = DeliverRejects();
  std::map<int32_t, int64_t> next_offsets = NextOffsets();
  std::map<int32_t, int64_t> first_seen = source_->first_seen();
  Json ranks_state = Json::object();
  if (leader()) {
    // Every rank's offsets, held-out records and counts join rank 0's.
    absl::Status s = DpGatherReports(delivered, &next_offsets, &first_seen, &ranks_state);
    if (!s.ok()) return s;
  }
  if (!delivered.ok()) return delivered;
  LearnerCheckpoint c;
  c.step = step_;
  c.topic = config_.topic_text;
  c.next_offsets = std::move(next_offsets);
  c.weights = trainer_->model().SerializeWeights();
  c.optimizer = trainer_->SerializeOptimizer();
  c.replay = replay_->Serialize();
  if (dedup_ != nullptr) c.dedup = dedup_->Serialize();
  c.new_heldout = pending_heldout_;
  c.new_heldout_sources = pending_heldout_sources_;
  // The snapshot the weights continue from and the feedback reference must
  // survive retention (store.keep_snapshots).
  for (const std::string& id : {last_snapshot_, reference_id_}) {
    if (!id.empty()) c.retain_snapshots.push_back(id);
  }
  since_snapshot_.records_rejected += source_->rejected() - rejected_counted_;
  rejected_counted_ = source_->rejected();

  Snapshot snap;
  std::map<int32_t, int64_t> range_begin = range_begin_;
  if (with_snapshot) {
    auto id = store_->NewSnapshotId();
    if (!id.ok()) return id.status();
    snap.meta.id = *id;
    snap.meta.created_ms = NowMs();
    snap.meta.origin = "learner";
    snap.meta.model_config = ModelConfigToJson(trainer_->model().config());
    snap.meta.lineage = since_snapshot_;
    snap.meta.lineage.parent = last_snapshot_;
    snap.meta.lineage.step = step_;
    for (const auto& [p, end] : c.next_offsets) {
      int64_t begin;
      if (range_begin.count(p)) {
        begin = range_begin[p];
      } else if (first_seen.count(p)) {
        begin = first_seen.at(p);
      } else {
        begin = end;
      }
      if (end > begin) snap.meta.lineage.ranges.push_back({config_.topic_text, p, begin, end});
    }
    snap.meta.metrics = {{"train_loss", loss_avg_},
                         {"lr", last_lr_},
                         {"cycle_step", cycle_step_},
                         {"cycle_length", cycle_length_},
                         {"replay_shares", replay_->Shares()}};
    // Feedback trained since the parent, and the reference it was trained
    // against; the evaluator sums these back to the champion.
    Json feedback = feedback_since_;
    feedback["reference"] = reference_id_;
    if (feedback.value("trained", 0) > 0) feedback["loss"] = feedback_loss_avg_;
    snap.meta.metrics["feedback"] = feedback;
    // After a reset the parent is the champion; the discarded line is named.
    if (!reset_from_.empty()) snap.meta.metrics["reset_from"] = reset_from_;
    snap.weights = c.weights;
    snap.tokenizer = trainer_->model().tokenizer().serialized();
    range_begin = c.next_offsets;
  }
  Lineage carried = with_snapshot ? Lineage() : since_snapshot_;
  std::map<int32_t, int64_t> feedback_next = feedback_start_offsets_;
  for (const auto& [p, off] : feedback_source_->positions()) feedback_next[p] = off;
  const double next_pace = CyclePace();  // of the cycle a snapshot ends
  c.state = {{"pending_tokens", pending_tokens_},
             {"feedback_offsets", OffsetsToJson(feedback_next)},
             {"range_begin", OffsetsToJson(range_begin)},
             {"snapshot", with_snapshot ? snap.meta.id : last_snapshot_},
             {"since_snapshot", LineageToJson(carried)},
             {"steps_since_snapshot", with_snapshot ? 0 : steps_since_snapshot_},
             {"pending_feedback", pending_feedback_},
             {"user_window", user_window_},
             {"reference", reference_id_},
             {"feedback_since", with_snapshot ? Json::object() : feedback_since_},
             {"pending_sources", SourceRunsToJson(pending_sources_)},
             {"cycle_step", with_snapshot ? 0 : cycle_step_},
             // With a snapshot the next cycle starts (StartCycle below): its
             // length, so a restart right after resumes the same cycle.
             {"cycle_length", with_snapshot ? CycleLengthAt(next_pace) : cycle_length_}};
  if (leader()) {
    c.state["world_size"] = dp_->world_size();
    c.state["ranks"] = std::move(ranks_state);
  }
  absl::Status s = with_snapshot ? store_->PutCheckpoint(c, &snap, {kCandidate})
                                 : store_->PutCheckpoint(c);
  if (!s.ok()) return s;
  pending_heldout_.clear();
  pending_heldout_sources_.clear();
  if (with_snapshot) {
    range_begin_ = std::move(range_begin);
    last_snapshot_ = snap.meta.id;
    since_snapshot_ = Lineage();
    feedback_since_ = Json::object();
    reset_from_.clear();
    steps_since_snapshot_ = 0;
    last_snapshot_time_ = std::chrono::steady_clock::now();
    StartCycle(next_pace);
    SLM_LOG(kInfo) << absl::StrFormat(
        "learner: step %d, candidate %s (%d records trained, %d held out, %d rejected, "
        "train loss %.3f; %d feedback records trained)",
        step_.load(), snap.meta.id, snap.meta.lineage.records_trained,
        snap.meta.lineage.records_heldout, snap.meta.lineage.records_rejected, loss_avg_,
        snap.meta.metrics["feedback"].value("trained", int64_t{0}));
    if (on_candidate_) on_candidate_(snap.meta.id);
  }
  // Offsets go to Kafka only after the checkpoint holds them (lag monitoring).
  // A failed commit is not fatal: the checkpoint holds the offsets, Kafka's
  // committed offsets only feed lag monitoring (counted by TextSource in
  // streamlm_kafka_commit_errors_total{topic=...}).
  auto commit = [](TextSource* source, const std::map<int32_t, int64_t>& next) {
    absl::Status s = source->Commit(next);
    if (!s.ok()) {
      SLM_LOG(kWarning) << "committing " << source->topic()
                        << " offsets to Kafka failed (not fatal: the checkpoint holds the "
                           "offsets; consumer-group lag for the topic is stale until a "
                           "commit succeeds): "
                        << s;
    }
  };
  commit(source_.get(), c.next_offsets);
  commit(feedback_source_.get(), feedback_next);
  return leader() ? DpCommitted() : absl::OkStatus();
}

absl::Status Learner::OpenTextSource(const std::string& brokers, Counters* counters) {
  PipelineOptions po;
  po.clean = config_.clean_text;
  po.max_record_bytes = static_cast<size_t>(config_.learner.max_record_bytes);
  po.threads = ResolveThreads(config_.ingest.threads);
  pipeline_ = std::make_unique<TextPipeline>(po);
  TextSourceOptions so;
  so.brokers = brokers;
  so.group = config_.learner.group;
  so.topic = config_.topic_text;
  so.rejects_topic = config_.topic_rejects;
  so.start_offsets = start_offsets_;
  so.share = Share();
  auto source = TextSource::Create(so, counters);
  if (!source.ok()) return source.status();
  source_ = std::move(*source);
  return absl::OkStatus();
}

absl::Status Learner::RunLoop() {
  SLM_LOG(kInfo) << "learner consuming " << config_.topic_text << " as group "
                 << config_.learner.group;
  while (!stop_) {
    // Data-parallel: the other ranks poll their partitions meanwhile.
    constexpr int kPollMs = 200;
    if (leader()) {
      absl::Status s = DpSend(kDpPoll, kPollMs);
      if (!s.ok()) return s;
    }
    // A consumer error TextSource cannot retry stops the learner without a
    // checkpoint: the records are read again on restart.
    absl::Status s;
    auto text = source_->Poll(256, kPollMs);
    if (text.ok()) {
      Ingest(std::move(*text));
      auto feedback = feedback_source_->Poll(256, 0);
      // An error storing feedback: no checkpoint, the records are read again on restart.
      s = feedback.ok() ? IngestFeedback(std::move(*feedback)) : feedback.status();
    } else {
      s = text.status();
    }
    if (leader()) {
      absl::Status gathered = DpGatherReady(!s.ok());
      if (s.ok()) s = gathered;
    }
    if (!s.ok()) return s;
    s = MaybeReset();
    if (!s.ok()) return s;
    s = MaybeTrain();
    if (!s.ok()) return s;
    s = MaybeTrainFeedback();
    if (!s.ok()) return s;
    double since_s = std::chrono::duration<double>(
                         std::chrono::steady_clock::now() - last_snapshot_time_).count();
    if (steps_since_snapshot_ > 0 && since_s >= config_.learner.snapshot_every_s) {
      s = Checkpoint(/*with_snapshot=*/true);
      if (!s.ok()) return s;
    }
  }
  return Checkpoint(/*with_snapshot=*/false);
}

}  // namespace streamlm

// Data-parallel learners: rank 0 (a Learner with the store) drives the
// other ranks (Learners without one) with broadcast commands; see
// README.md "Data-parallel learners" for the protocol and its guarantees.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "learner/data_parallel.h"
#include "learner/learner.h"

namespace streamlm {
int64_t Learner::DoubleBits(double v) {
  int64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

double Learner::BitsDouble(int64_t bits) {
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

bool Learner::leader() const {
  return dp_ != nullptr && dp_->rank() == 0 && dp_->world_size() > 1;
}

bool Learner::worker() const { return dp_ != nullptr && dp_->rank() > 0; }

PartitionShare Learner::Share() const {
  return dp_ != nullptr ? PartitionShare{dp_->rank(), dp_->world_size()} : PartitionShare{};
}

absl::Status Learner::Run() {
  if (worker()) return RunWorker();
  absl::Status s = RunLoop();
  if (leader() && !dp_stop_sent_) {
    // The other ranks stop with rank 0 (after its last checkpoint, or
    // without one on an error).
    absl::Status told = DpSend(kDpStop, s.ok() ? 0 : 1);
    if (!told.ok()) SLM_LOG(kWarning) << "learner: telling the other ranks to stop: " << told;
  }
  return s;
}

absl::Status Learner::DpSend(int64_t command, int64_t a, int64_t b) {
  std::vector<int64_t> words{command, a, b, 0};
  if (command == kDpStop) dp_stop_sent_ = true;
  return dp_->BroadcastWords(&words);
}

absl::Status Learner::DpHandOut(const LearnerState& st) {
  const int world = dp_->world_size();
  dp_ready_.assign(static_cast<size_t>(world), 0);
  Json hello = {{"world_size", world},
                {"model_config", ModelConfigToJson(trainer_->model().config())},
                {"next_offsets", OffsetsToJson(start_offsets_)},
                {"ranks", Json::object()}};
  // The ranks' own state, when the checkpoint was written by as many ranks.
  for (const auto& [rank, rs] : st.ranks) {
    if (rank >= world) continue;
    hello["ranks"][std::to_string(rank)] = RankStateToJson(rs);
  }
  std::string bytes[] = {hello.dump(), trainer_->model().tokenizer().serialized(),
                         trainer_->model().SerializeWeights(), trainer_->SerializeOptimizer(),
                         replay_->Serialize()};
  for (std::string& b : bytes) {
    absl::Status s = dp_->BroadcastBytes(&b);
    if (!s.ok()) return s;
  }
  SLM_LOG(kInfo) << "learner rank 0 of " << world << ": handed the model and state to "
                 << world - 1 << " other ranks";
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Learner>> Learner::CreateWorker(const Config& config,
                                                               const std::string& brokers,
                                                               Counters* counters,
                                                               DataParallel* dp) {
  std::unique_ptr<Learner> l(new Learner(config, nullptr, counters, nullptr));
  l->dp_ = dp;
  std::string hello_bytes, tokenizer, weights, optimizer, replay;
  for (std::string* b : {&hello_bytes, &tokenizer, &weights, &optimizer, &replay}) {
    absl::Status s = dp->BroadcastBytes(b);
    if (!s.ok()) return s;
  }
  auto hello = ParseJson(hello_bytes);
  if (!hello.ok()) return hello.status();
  if (hello->value("world_size", 0) != dp->world_size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank 0 runs with --world-size ", hello->value("world_size", 0), ", this rank with ",
        dp->world_size()));
  }
  auto model = LanguageModel::Load((*hello)["model_config"], weights, tokenizer);
  if (!model.ok()) return model.status();
  l->trainer_ = std::make_unique<Trainer>(*model, config.learner.lr);
  absl::Status s = l->trainer_->RestoreOptimizer(optimizer);
  if (!s.ok()) return s;
  // This rank's share of the checkpoint, decoded as the checkpoint is.
  const std::string me = std::to_string(dp->rank());
  Json ranks = Json::object();
  if ((*hello)["ranks"].contains(me)) ranks[me] = (*hello)["ranks"][me];
  auto st = DecodeLearnerState(Json{{"ranks", ranks}});
  if (!st.ok()) return st.status();
  const RankState* mine = st->ranks.count(dp->rank()) ? &st->ranks[dp->rank()] : nullptr;
  // Without a state of its own a rank starts with rank 0's replay.
  s = l->replay_->Restore(mine != nullptr && !mine->replay.empty() ? mine->replay : replay);
  if (!s.ok()) return s;
  if (config.dedup.window_docs > 0) {
    l->dedup_ = std::make_unique<Deduplicator>(DedupOptionsFromConfig(config));
    if (mine != nullptr && !mine->dedup.empty()) {
      s = l->dedup_->Restore(mine->dedup);
      if (!s.ok()) return s;
    }
  }
  if (mine != nullptr) {
    l->pending_tokens_ = mine->pending_tokens;
    for (const auto& run : mine->pending_sources) l->pending_sources_.push_back(run);
  }
  auto offsets = DecodeOffsets((*hello)["next_offsets"], "next_offsets");
  if (!offsets.ok()) return offsets.status();
  l->start_offsets_ = std::move(*offsets);

  s = l->OpenTextSource(brokers, counters);  // this rank's partitions
  if (!s.ok()) return s;
  SLM_LOG(kInfo) << "learner rank " << dp->rank() << " of " << dp->world_size()
                 << ": model and state from rank 0 (" << l->pending_tokens_.size()
                 << " pending tokens, " << l->replay_->size() << " replay blocks)";
  return l;
}

absl::Status Learner::DpGatherReady(bool own_error) {
  auto all = dp_->AllGatherWords({StreamStepsReady(), stop_ ? 1 : 0, own_error ? 1 : 0});
  if (!all.ok()) return all.status();
  for (int r = 1; r < dp_->world_size(); ++r) {
    const std::vector<int64_t>& w = (*all)[static_cast<size_t>(r)];
    dp_ready_[r] = w[0];
    if (w[2] != 0) {
      return absl::AbortedError(absl::StrCat("data-parallel rank ", r,
                                             " stopped on an error (its log names it); no "
                                             "checkpoint written, the records are read "
                                             "again on restart"));
    }
    if (w[1] != 0 && !stop_) {
      SLM_LOG(kInfo) << "learner: rank " << r << " is stopping: all ranks stop";
      stop_ = true;
    }
  }
  return absl::OkStatus();
}

std::map<int32_t, int64_t> Learner::RankNextOffsets() const {
  // The consumer also knows the start offsets of the other ranks'
  // partitions: they are not this rank's to report.
  std::map<int32_t, int64_t> next;
  for (const auto& [p, off] : source_->positions()) {
    if (Share().Has(p)) next[p] = off;
  }
  return next;
}

std::string Learner::DpReport(const absl::Status& rejects) {
  Lineage since = since_snapshot_;
  since.records_rejected += source_->rejected() - rejected_counted_;
  Json report = {{"next_offsets", OffsetsToJson(RankNextOffsets())},
                 {"first_seen", OffsetsToJson(source_->first_seen())},
                 {"since", LineageToJson(since)},
                 {"heldout", pending_heldout_},
                 {"heldout_sources", pending_heldout_sources_},
                 {"rank_state", RankStateToJson(RankState{
                                    pending_tokens_,
                                    {pending_sources_.begin(), pending_sources_.end()},
                                    replay_->Serialize(),
                                    dedup_ != nullptr ? dedup_->Serialize() : ""})}};
  if (!rejects.ok()) report["error"] = rejects.ToString();
  return report.dump();
}

absl::Status Learner::DpGatherReports(const absl::Status& own_rejects,
                                      std::map<int32_t, int64_t>* next_offsets,
                                      std::map<int32_t, int64_t>* first_seen,
                                      Json* ranks_state) {
  auto reports = dp_->GatherBytes("");
  if (!reports.ok()) return reports.status();
  if (!own_rejects.ok()) return absl::OkStatus();  // the caller returns own_rejects
  for (int r = 1; r < dp_->world_size(); ++r) {
    auto report = ParseJson((*reports)[static_cast<size_t>(r)]);
    if (!report.ok()) return report.status();
    if (report->contains("error")) {
      return absl::UnavailableError(absl::StrCat(
          "data-parallel rank ", r, " could not deliver its rejects: ",
          (*report)["error"].get<std::string>(), "; no checkpoint written"));
    }
    auto next = DecodeOffsets((*report)["next_offsets"], "next_offsets");
    if (!next.ok()) return next.status();
    for (const auto& [p, off] : *next) (*next_offsets)[p] = off;
    auto seen = DecodeOffsets((*report)["first_seen"], "first_seen");
    if (!seen.ok()) return seen.status();
    for (const auto& [p, off] : *seen) first_seen->emplace(p, off);
    const Lineage since = LineageFromJson((*report)["since"]);
    Lineage& mine = since_snapshot_;
    mine.records_trained += since.records_trained;
    mine.records_heldout += since.records_heldout;
    mine.records_rejected += since.records_rejected;
    mine.tokens_trained += since.tokens_trained;
    for (int64_t ms : {since.oldest_record_ms, since.newest_record_ms}) {
      if (ms <= 0) continue;
      mine.oldest_record_ms = mine.oldest_record_ms == 0 ? ms : std::min(mine.oldest_record_ms, ms);
      mine.newest_record_ms = std::max(mine.newest_record_ms, ms);
    }
    for (const Json& t : (*report)["heldout"]) pending_heldout_.push_back(t.get<std::string>());
    for (const Json& t : (*report)["heldout_sources"]) {
      pending_heldout_sources_.push_back(t.get<std::string>());
    }
    (*ranks_state)[std::to_string(r)] = (*report)["rank_state"];
  }
  return absl::OkStatus();
}

absl::Status Learner::DpCommitted() {
  absl::Status s = DpSend(kDpCommit);
  // Every rank continues from rank 0's weights, so no drift of float
  // rounding between ranks outlives a checkpoint.
  if (s.ok()) s = dp_->BroadcastParameters(trainer_->model().net().parameters());
  return s;
}

absl::Status Learner::RunWorker() {
  SLM_LOG(kInfo) << "learner rank " << dp_->rank() << " of " << dp_->world_size()
                 << " consuming its partitions of " << config_.topic_text;
  const auto [n_fresh, n_replay] = StreamSplit();
  while (true) {
    std::vector<int64_t> cmd(4, 0);
    absl::Status s = dp_->BroadcastWords(&cmd);
    if (!s.ok()) return s;
    switch (cmd[0]) {
      case kDpPoll: {
        if (worker_error_.ok()) {
          auto text = source_->Poll(256, static_cast<int>(cmd[1]));
          if (text.ok()) {
            Ingest(std::move(*text));
          } else {
            worker_error_ = text.status();  // reported; rank 0 stops every rank
          }
        }
        auto all = dp_->AllGatherWords(
            {StreamStepsReady(), stop_ ? 1 : 0, worker_error_.ok() ? 0 : 1});
        if (!all.ok()) return all.status();
        break;
      }
      case kDpStep: {
        const bool mine = ((cmd[2] >> dp_->rank()) & 1) != 0;
        StreamBatch batch;
        if (mine) {
          batch = TakeStreamBatch(n_fresh, n_replay);
        }
        const LossFn loss_fn = mine ? BlocksLoss(batch.blocks) : LossFn();
        auto stepped = TrainStep(mine ? &loss_fn : nullptr,
                                 static_cast<double>(batch.blocks.size()), BitsDouble(cmd[1]));
        if (!stepped.ok()) return stepped.status();
        if (mine) ConsumeStreamBatch(batch);
        ++step_;
        counters_->Add("streamlm_learner_steps_total", 1);
        break;
      }
      case kDpFeedbackStep: {
        auto stepped = TrainStep(nullptr, 0, BitsDouble(cmd[1]));
        if (!stepped.ok()) return stepped.status();
        ++step_;
        counters_->Add("streamlm_learner_steps_total", 1);
        break;
      }
      case kDpCheckpoint: {
        const absl::Status rejects = DeliverRejects();
        auto sent = dp_->GatherBytes(DpReport(rejects));
        if (!sent.ok()) return sent.status();
        break;
      }
      case kDpCommit: {
        // Rank 0 stored what this rank reported: start counting afresh.
        since_snapshot_ = Lineage();
        rejected_counted_ = source_->rejected();
        pending_heldout_.clear();
        pending_heldout_sources_.clear();
        absl::Status c = source_->Commit(RankNextOffsets());
        if (!c.ok()) {
          SLM_LOG(kWarning) << "committing " << source_->topic()
                            << " offsets to Kafka failed (not fatal: rank 0's checkpoint "
                               "holds the offsets): " << c;
        }
        s = dp_->BroadcastParameters(trainer_->model().net().parameters());
        if (!s.ok()) return s;
        break;
      }
      case kDpReset: {
        trainer_ = std::make_unique<Trainer>(trainer_->shared_model(), config_.learner.lr);
        s = dp_->BroadcastParameters(trainer_->model().net().parameters());
        if (!s.ok()) return s;
        break;
      }
      case kDpStop:
        SLM_LOG(kInfo) << "learner rank " << dp_->rank() << ": rank 0 stopped"
                       << (cmd[1] != 0 ? " on an error" : "") << " after step " << step_;
        if (!worker_error_.ok()) return worker_error_;
        if (cmd[1] != 0) return absl::AbortedError("rank 0 stopped on an error (its log names it)");
        return absl::OkStatus();
      default:
        return absl::InternalError(absl::StrCat("unknown data-parallel command ", cmd[0]));
    }
  }
}

}  // namespace streamlm

#include "evaluator/rollback.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "evaluator/heldout_scoring.h"
#include "model/language_model.h"

namespace streamlm {
namespace {

constexpr double kZ95 = 1.959963984540054;

Json RateJson(int64_t k, int64_t n) {
  double low = 0, high = 0;
  if (n > 0) WilsonInterval(k, n, &low, &high);
  return {{"count", k},
          {"total", n},
          {"rate", n > 0 ? static_cast<double>(k) / static_cast<double>(n) : 0.0},
          {"ci95", {low, high}}};
}

// One rate signal: k/n of the champion vs the previous champion.
void RateRule(const char* name, const char* metric, const char* what, int64_t k1, int64_t n1,
              int64_t k2, int64_t n2, int64_t min_n, double tolerance, RollbackResult* r,
              std::vector<std::string>* failures, const char* metrics_key) {
  const Estimate d = ProportionDelta(k1, n1, k2, n2);
  const bool enough = n1 >= min_n && n2 >= min_n;
  RuleResult rule;
  rule.name = name;
  rule.metric = metric;
  rule.observed = d.mean;
  rule.threshold = tolerance;
  rule.has_ci = enough;
  rule.ci_level = 0.95;
  rule.ci_low = d.ci_low;
  rule.ci_high = d.ci_high;
  rule.passed = !(enough && d.ci_low > tolerance);
  if (!rule.passed) {
    failures->push_back(absl::StrFormat(
        "%s rose from %d/%d to %d/%d (%+.4f, 95%% CI [%+.4f, %+.4f] wholly above the "
        "tolerance %.4f)",
        what, k2, n2, k1, n1, d.mean, d.ci_low, d.ci_high, tolerance));
  }
  r->metrics[metrics_key] = {{"champion", RateJson(k1, n1)},
                             {"previous", RateJson(k2, n2)},
                             {"delta", {{"mean", d.mean}, {"ci95", {d.ci_low, d.ci_high}}}},
                             {"min_count", min_n},
                             {"enough_evidence", enough}};
  r->rules.push_back(rule);
  r->enough_evidence.push_back(enough);
}

}  // namespace

Json RollbackRuleToJson(const RuleResult& r) {
  Json j = RuleToJson(r);  // the gate's shape
  // The 95% interval also under the decision record's `ci95` name.
  if (r.has_ci) j["ci95"] = {r.ci_low, r.ci_high};
  return j;
}

RollbackConfig RollbackConfigFrom(const Config& c) {
  RollbackConfig r;
  r.min_requests = c.rollback.min_requests;
  r.min_feedback = c.rollback.min_feedback;
  r.max_error_rate_increase = c.rollback.max_error_rate_increase;
  r.max_negative_feedback_increase = c.rollback.max_negative_feedback_increase;
  r.max_stream_loss_increase = c.rollback.max_stream_loss_increase;
  r.min_stream_tokens = c.rollback.min_stream_tokens;
  return r;
}

void WilsonInterval(int64_t k, int64_t n, double* low, double* high) {
  const double nn = static_cast<double>(n);
  const double p = static_cast<double>(k) / nn;
  const double z2 = kZ95 * kZ95;
  const double center = (p + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = kZ95 / (1 + z2 / nn) * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  *low = std::max(0.0, center - half);
  *high = std::min(1.0, center + half);
}

Estimate ProportionDelta(int64_t k1, int64_t n1, int64_t k2, int64_t n2) {
  Estimate e;
  e.sequences = n1 + n2;
  if (n1 <= 0 || n2 <= 0) return e;
  const double p1 = static_cast<double>(k1) / static_cast<double>(n1);
  const double p2 = static_cast<double>(k2) / static_cast<double>(n2);
  double l1, u1, l2, u2;
  WilsonInterval(k1, n1, &l1, &u1);
  WilsonInterval(k2, n2, &l2, &u2);
  e.mean = p1 - p2;
  e.ci_low = e.mean - std::sqrt((p1 - l1) * (p1 - l1) + (u2 - p2) * (u2 - p2));
  e.ci_high = e.mean + std::sqrt((u1 - p1) * (u1 - p1) + (p2 - l2) * (p2 - l2));
  return e;
}

RollbackResult DecideRollback(const RollbackSignals& s, const RollbackConfig& c) {
  RollbackResult r;
  std::vector<std::string> failures;
  const ServingCounts& a = s.champion_serving;
  const ServingCounts& b = s.previous_serving;
  RateRule("serving_errors", "error_rate_increase", "the error rate", a.errors, a.requests,
           b.errors, b.requests, c.min_requests, c.max_error_rate_increase, &r, &failures,
           "error_rate");
  RateRule("negative_feedback", "negative_feedback_rate_increase", "the negative-feedback rate",
           a.negative_feedback, a.feedback, b.negative_feedback, b.feedback, c.min_feedback,
           c.max_negative_feedback_increase, &r, &failures, "negative_feedback_rate");

  const Comparison cmp = Compare(s.stream);
  const bool enough = cmp.delta.tokens >= c.min_stream_tokens && cmp.delta.sequences >= 2;
  RuleResult rule;
  rule.name = "live_stream_loss";
  rule.metric = "stream_loss_increase";
  rule.observed = cmp.delta.mean;
  rule.threshold = c.max_stream_loss_increase;
  rule.has_ci = enough;
  rule.ci_level = 0.95;
  rule.ci_low = cmp.delta.ci_low;
  rule.ci_high = cmp.delta.ci_high;
  rule.passed = !(enough && cmp.delta.ci_low > c.max_stream_loss_increase);
  if (!rule.passed) {
    failures.push_back(absl::StrFormat(
        "the loss on %d held-out stream records (%d tokens) since the promotion rose by "
        "%+.4f nats/token (95%% CI [%+.4f, %+.4f] wholly above the tolerance %.4f)",
        cmp.delta.sequences, cmp.delta.tokens, cmp.delta.mean, cmp.delta.ci_low,
        cmp.delta.ci_high, c.max_stream_loss_increase));
  }
  r.metrics["stream_loss"] = {{"champion", EstimateToJson(cmp.candidate)},
                              {"previous", EstimateToJson(cmp.champion)},
                              {"delta", EstimateToJson(cmp.delta)},
                              {"min_tokens", c.min_stream_tokens},
                              {"enough_evidence", enough}};
  r.rules.push_back(rule);
  r.enough_evidence.push_back(enough);

  r.roll_back = !failures.empty();
  if (r.roll_back) {
    r.reason = absl::StrCat("rolled back ", s.champion, " to ", s.previous, ": ",
                            absl::StrJoin(failures, "; "));
  } else {
    std::vector<std::string> waiting;
    for (size_t i = 0; i < r.rules.size(); ++i) {
      if (!r.enough_evidence[i]) waiting.push_back(r.rules[i].name);
    }
    r.reason = absl::StrCat("no confident regression of ", s.champion, " against ", s.previous,
                            waiting.empty() ? "" : " (not enough evidence yet: ",
                            absl::StrJoin(waiting, ", "), waiting.empty() ? "" : ")");
  }
  return r;
}

Json RollbackDecision(const std::string& champion, const std::string& previous,
                      const RollbackResult& result, double duration_s) {
  Json rules = Json::array();
  for (const RuleResult& r : result.rules) rules.push_back(RollbackRuleToJson(r));
  const int64_t now = NowMs();
  return {{"time", FormatTimeMs(now)},
          {"time_ms", now},
          {"candidate", previous},
          {"champion", champion},
          {"verdict", "rolled_back"},
          {"trigger", "monitor"},
          {"rules", rules},
          {"metrics", {{"rollback", result.metrics}}},
          {"reason", result.reason},
          {"duration_s", duration_s}};
}

std::vector<std::string> RollbackDecisionLines(const Json& d) {
  std::vector<std::string> out;
  if (d.value("verdict", "") != "rolled_back") return out;
  const Json rules = d.value("rules", Json::array());
  for (const Json& r : rules.is_array() ? rules : Json::array()) {
    if (!r.is_object() || r.value("passed", true)) continue;
    std::string ci = "-";
    const Json interval = r.contains("ci95") ? r["ci95"] : r.value("ci", Json());
    if (interval.is_array() && interval.size() == 2 && interval[0].is_number() &&
        interval[1].is_number()) {
      ci = absl::StrFormat("[%+.4f, %+.4f]", interval[0].get<double>(),
                           interval[1].get<double>());
    }
    out.push_back(absl::StrFormat(
        "rollback: %s %s %+.4f, 95%% CI %s, tolerance %.4f", r.value("name", "?"),
        r.value("metric", "?"), r.value("observed", 0.0), ci, r.value("threshold", 0.0)));
  }
  if (out.empty()) out.push_back("rollback: " + d.value("trigger", std::string("manual")));
  return out;
}

RollbackMonitor::RollbackMonitor(const Config& config, Store* store, KafkaProducer* decisions,
                                 CountsFn counts, DecisionCallback on_decision)
    : config_(config),
      rollback_(RollbackConfigFrom(config)),
      store_(store),
      decisions_(decisions),
      counts_(std::move(counts)),
      on_decision_(std::move(on_decision)) {}

RollbackMonitor::~RollbackMonitor() { Stop(); }

void RollbackMonitor::Start() {
  if (!config_.rollback.enabled || worker_.joinable()) return;
  worker_ = std::thread([this] {
    SetThreadComputeBudget(LearnerThreads(config_, /*serving_in_process=*/true));
    Loop();
  });
}

void RollbackMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void RollbackMonitor::Loop() {
  const auto period = std::chrono::duration<double>(config_.rollback.check_every_s);
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, period, [this] { return stop_; });
      if (stop_) return;
    }
    auto result = CheckOnce();
    if (!result.ok()) SLM_LOG(kWarning) << "rollback check: " << result.status();
  }
}

void RollbackMonitor::OnDecision(const Json& decision) {
  if (!config_.rollback.enabled || decision.value("verdict", "") != "promoted") return;
  const std::string champion = decision.value("candidate", "");
  const std::string previous = decision.value("champion", "");
  if (champion.empty() || previous.empty()) return;
  std::lock_guard<std::mutex> lock(check_mu_);
  auto mark = WatchMark(champion, previous);
  if (!mark.ok()) SLM_LOG(kWarning) << "rollback watch of " << champion << ": " << mark.status();
}

RollbackResult RollbackMonitor::last_result() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_result_;
}

absl::StatusOr<int64_t> RollbackMonitor::WatchMark(const std::string& champion,
                                                   const std::string& previous) {
  auto meta = store_->GetSnapshotMeta(champion);
  if (!meta.ok()) return meta.status();
  const Json watch = meta->metrics.value("rollback_watch", Json::object());
  if (watch.is_object() && watch.value("previous", "") == previous &&
      watch.contains("heldout_after") && watch["heldout_after"].is_number_integer()) {
    return watch["heldout_after"].get<int64_t>();
  }
  auto newest = store_->GetHeldoutAfter(-1, 1);
  if (!newest.ok()) return newest.status();
  const int64_t mark = newest->empty() ? -1 : newest->back().first;
  absl::Status s = store_->MergeSnapshotMetrics(
      champion, {{"rollback_watch",
                  {{"previous", previous}, {"heldout_after", mark}, {"since_ms", NowMs()}}}});
  if (!s.ok()) return s;
  return mark;
}

absl::StatusOr<std::shared_ptr<LanguageModel>> RollbackMonitor::Model(const std::string& id) {
  auto it = models_.find(id);
  if (it != models_.end()) return it->second;
  auto snap = store_->GetSnapshot(id);
  if (!snap.ok()) return snap.status();
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) return model.status();
  models_[id] = *model;
  return *model;
}

absl::StatusOr<std::optional<Json>> RollbackMonitor::CheckOnce() {
  std::lock_guard<std::mutex> check(check_mu_);
  const auto start = std::chrono::steady_clock::now();
  auto champion = store_->GetAlias(kChampion);
  auto previous = store_->GetAlias(kPrevious);
  if (!champion.ok() || !previous.ok() || *champion == *previous) return std::nullopt;
  // A champion restored by a rollback is not judged against the one it
  // replaced (that would flip them back and forth); the next promotion
  // re-arms the monitor.
  auto recent = store_->ListDecisions(50);
  if (!recent.ok()) return recent.status();
  for (const Json& d : *recent) {
    const std::string verdict = d.value("verdict", "");
    if (verdict != "promoted" && verdict != "rolled_back") continue;
    if (verdict == "rolled_back" && d.value("candidate", "") == *champion) {
      return std::nullopt;
    }
    break;
  }
  auto mark = WatchMark(*champion, *previous);
  if (!mark.ok()) return mark.status();

  RollbackSignals signals;
  signals.champion = *champion;
  signals.previous = *previous;
  if (counts_) {
    signals.champion_serving = counts_(*champion);
    signals.previous_serving = counts_(*previous);
  }
  // Live stream loss: held-out records since the promotion, both models.
  auto records = store_->GetHeldoutAfter(
      *mark, static_cast<size_t>(std::max(1, config_.rollback.max_stream_records)));
  if (!records.ok()) return records.status();
  if (!records->empty()) {
    const std::string key =
        absl::StrCat(*champion, "/", *previous, "/", records->front().first, "-",
                     records->back().first);
    if (key != scored_key_) {
      // Keep only the two models in memory.
      for (auto it = models_.begin(); it != models_.end();) {
        it = it->first == *champion || it->first == *previous ? std::next(it) : models_.erase(it);
      }
      auto a = Model(*champion);
      if (!a.ok()) return a.status();
      auto b = Model(*previous);
      if (!b.ok()) return b.status();
      PairedLosses p;
      if ((*a)->tokenizer().serialized() == (*b)->tokenizer().serialized()) {
        // Documents as the evaluator scores them; the champion in the
        // candidate's place, so the delta is champion - previous.
        std::vector<std::vector<int32_t>> seqs;
        for (const auto& [seq, r] : *records) {
          seqs.push_back(HeldoutSequence((*a)->tokenizer(), r.text));
        }
        p = ScoreSlices(**a, **b, seqs, /*labels=*/{}, "stream", /*slices=*/nullptr);
      }
      scored_ = std::move(p);
      scored_key_ = key;
    }
    signals.stream = scored_;
  }

  RollbackResult result = DecideRollback(signals, rollback_);
  result.metrics["heldout_after"] = *mark;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_result_ = result;
  }
  if (!result.roll_back) return std::nullopt;

  const double duration_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto stored = store_->AppendRollback(RollbackDecision(*champion, *previous, result, duration_s));
  if (!stored.ok()) return stored.status();
  SLM_LOG(kWarning) << "decision " << (*stored)["id"].get<std::string>() << ": "
                    << result.reason;
  if (decisions_ != nullptr) {
    // As the evaluator: wait for delivery so the topic agrees with the store.
    absl::Status s = decisions_->Produce(config_.topic_decisions, *previous, stored->dump());
    if (s.ok()) s = decisions_->Flush(10000);
    if (!s.ok()) SLM_LOG(kWarning) << "cannot publish rollback decision: " << s;
  }
  scored_key_.clear();
  if (on_decision_) on_decision_(*stored);
  return std::optional<Json>(*stored);
}

}  // namespace streamlm

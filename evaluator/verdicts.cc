#include "evaluator/verdicts.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace streamlm {

absl::Status VerdictCommitter::Load() {
  auto decisions = store_->ListDecisions(0);
  if (!decisions.ok()) return decisions.status();
  for (const Json& d : *decisions) {
    if (d.contains("verdict_id") && d["verdict_id"].is_string()) {
      committed_.insert(d["verdict_id"].get<std::string>());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Json>> VerdictCommitter::Commit(const Json& verdict) {
  auto field = [&verdict](const char* key) -> std::string {
    auto it = verdict.find(key);
    return it != verdict.end() && it->is_string() ? it->get<std::string>() : "";
  };
  const std::string id = field("verdict_id"), candidate = field("candidate"),
                    champion = field("champion"), kind = field("verdict");
  std::string missing;
  if (!verdict.is_object())
    missing = "a JSON object";
  else if (id.empty())
    missing = "\"verdict_id\"";
  else if (candidate.empty())
    missing = "\"candidate\"";
  else if (champion.empty())
    missing = "\"champion\"";
  else if (kind != "promoted" && kind != "rejected" && kind != "held") {
    missing = "\"verdict\" (promoted, rejected or held)";
  }
  if (!missing.empty()) {
    counters_->Add("streamlm_verdicts_total", 1, "invalid");
    return absl::InvalidArgumentError(absl::StrCat("a verdict record needs ", missing));
  }
  if (committed_.count(id) > 0) {
    counters_->Add("streamlm_verdicts_total", 1, "duplicate");
    return std::nullopt;
  }
  // The evaluation sets the evaluator set aside are stored whatever the
  // verdict's fate: they do not depend on it. Not in the decision record.
  Json decision = verdict;
  if (auto sets = verdict.find("eval_sets"); sets != verdict.end()) {
    if (!sets->is_object()) {
      counters_->Add("streamlm_verdicts_total", 1, "invalid");
      return absl::InvalidArgumentError("a verdict record's \"eval_sets\" must be an object");
    }
    for (const auto& [name, value] : sets->items()) {
      if (!value.is_string()) {
        counters_->Add("streamlm_verdicts_total", 1, "invalid");
        return absl::InvalidArgumentError(
            absl::StrCat("a verdict record's eval set '", name, "' must be a string"));
      }
      if (absl::Status s = store_->PutEvalSet(name, value.get<std::string>()); !s.ok()) return s;
    }
    decision.erase("eval_sets");
  }
  auto current = store_->GetAlias(kChampion);
  if (!current.ok()) return current.status();
  if (*current != champion) {
    counters_->Add("streamlm_verdicts_total", 1, "stale");
    SLM_LOG(kInfo) << "verdict " << id << " is stale: it judged " << candidate << " against "
                   << champion << ", but the champion is now " << *current << "; not committed";
    committed_.insert(id);
    return std::nullopt;
  }
  auto stored = store_->AppendDecision(decision, kind == "promoted");
  if (!stored.ok()) return stored.status();
  committed_.insert(id);
  counters_->Add("streamlm_verdicts_total", 1, "committed");
  SLM_LOG(kInfo) << "decision " << (*stored)["id"].get<std::string>() << " (verdict " << id
                 << "): " << candidate << " vs " << champion << ": " << kind;
  return std::optional<Json>(*stored);
}

}  // namespace streamlm

#include "evaluator/heldout_scoring.h"

#include <map>

#include "model/language_model.h"

namespace streamlm {

std::vector<int32_t> HeldoutSequence(const Tokenizer& tok, std::string_view text) {
  std::vector<int32_t> ids = {tok.eos_id()};
  std::vector<int32_t> body = tok.Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(tok.eos_id());
  return ids;
}

PairedLosses ScoreSlices(const LanguageModel& candidate, const LanguageModel& champion,
                         const std::vector<std::vector<int32_t>>& seqs,
                         const std::vector<std::string>& labels, const std::string& kind,
                         std::vector<SliceComparison>* slices) {
  auto a = candidate.SequenceLosses(seqs);
  auto b = champion.SequenceLosses(seqs);
  PairedLosses all;
  std::map<std::string, PairedLosses> by_label;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (a[i].tokens == 0) continue;
    std::vector<PairedLosses*> into = {&all};
    if (slices != nullptr) into.push_back(&by_label[labels[i]]);
    for (PairedLosses* p : into) {
      p->candidate_nats.push_back(a[i].sum_nats);
      p->champion_nats.push_back(b[i].sum_nats);
      p->tokens.push_back(a[i].tokens);
    }
  }
  if (slices != nullptr) {
    for (const auto& [label, losses] : by_label) {
      slices->push_back({kind, label, Compare(losses)});
    }
  }
  return all;
}

}  // namespace streamlm

// Scoring held-out text under two models, as the evaluator (gate) and the
// rollback monitor both do: held-out documents become token sequences the
// same way, and the two models' per-sequence losses are paired the same way.
// Functions; thread-safe as far as LanguageModel::SequenceLosses() is.
#ifndef STREAMLM_EVALUATOR_HELDOUT_SCORING_H_
#define STREAMLM_EVALUATOR_HELDOUT_SCORING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "evaluator/gate.h"
#include "model/tokenizer.h"

namespace streamlm {

class LanguageModel;

// One held-out document as it is scored: EOS (documents start after EOS),
// the text's tokens, EOS.
std::vector<int32_t> HeldoutSequence(const Tokenizer& tok, std::string_view text);

// Scores `seqs` under both models and pairs their losses: `candidate_nats`
// are `candidate`'s, `champion_nats` `champion`'s, in the order of `seqs`;
// sequences without a scored token are left out. With `slices` non-null,
// also appends one SliceComparison of kind `kind` per distinct label
// (labels[i] names seqs[i]; `labels` must then be as long as `seqs`), in
// label order. Returns the pairs over all sequences.
PairedLosses ScoreSlices(const LanguageModel& candidate, const LanguageModel& champion,
                         const std::vector<std::vector<int32_t>>& seqs,
                         const std::vector<std::string>& labels, const std::string& kind,
                         std::vector<SliceComparison>* slices);

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_HELDOUT_SCORING_H_

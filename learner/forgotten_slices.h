// Which replay slices a rejection says were forgotten, read from the
// decision record's rules (evaluator/README.md): the learner boosts their
// replay share until the next promotion (SlicedReplay::Boost). Pure;
// thread-safe.
#ifndef STREAMLM_LEARNER_FORGOTTEN_SLICES_H_
#define STREAMLM_LEARNER_FORGOTTEN_SLICES_H_

#include <string>
#include <vector>

#include "common/json_util.h"

namespace streamlm {

// The SlicedReplay slices a `rejected` decision's failed rules name, in
// rule order (repeats kept: each failed rule is one boost): the base slice
// (SlicedReplay::kBase) for a failed `forgetting` rule and for a failed
// `slice_forgetting` rule with `slice_kind` "base" (every base set replays
// from the one base slice); the rule's `slice` (the stream source, "" for
// records without one) for one with `slice_kind` "stream". A rule without
// those fields names no slice. Empty for any other verdict.
std::vector<std::string> ForgottenReplaySlices(const Json& decision);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_FORGOTTEN_SLICES_H_

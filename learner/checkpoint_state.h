// The learner's part of a store checkpoint (`Checkpoint::state`, JSON):
// decoding with every field's type checked, so a corrupt checkpoint is a
// DataLossError naming the field instead of an exception from the JSON
// library. No libtorch, no store: unit-tested (checkpoint_state_test) and
// fuzzed (tests/fuzz/checkpoint_state_fuzz.cc) on its own.
//
// Pure functions; thread-compatible.
#ifndef STREAMLM_LEARNER_CHECKPOINT_STATE_H_
#define STREAMLM_LEARNER_CHECKPOINT_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json_util.h"

namespace streamlm {

// The part of the state a data-parallel rank above 0 keeps for itself
// (learner/README.md, "Data-parallel learners"); rank 0's is the state's own.
struct RankState {
  std::vector<int32_t> pending_tokens;
  std::vector<std::pair<std::string, int64_t>> pending_sources;
  std::string replay;  // SlicedReplay::Serialize() bytes
  std::string dedup;   // Deduplicator::Serialize() bytes; empty without dedup
};

// Every field is optional in the JSON (older checkpoints lack the newer
// ones); a missing field decodes to the default below, a present one of the
// wrong type is an error.
struct LearnerState {
  std::string snapshot;                       // the checkpoint's model
  std::vector<int32_t> pending_tokens;        // consumed, not yet trained
  std::map<int32_t, int64_t> range_begin;     // partition -> offset
  // Lineage since the last snapshot (store's LineageToJson); its known
  // fields are type-checked, so store's LineageFromJson cannot throw on it.
  Json since_snapshot = Json::object();
  int64_t steps_since_snapshot = 0;
  std::map<int32_t, int64_t> feedback_offsets;  // partition -> next offset
  std::vector<Json> pending_feedback;           // each a JSON object
  std::vector<std::string> user_window;
  Json feedback_since = Json::object();
  std::vector<std::pair<std::string, int64_t>> pending_sources;  // (source, tokens)
  std::optional<int64_t> cycle_step;    // absent: the caller's default
  std::optional<int64_t> cycle_length;  // absent: the caller's default
  std::string reference;                // empty when absent
  int64_t world_size = 1;               // data-parallel learners that wrote it
  std::map<int, RankState> ranks;       // ranks 1..world_size-1
};

// Decodes `state`. A null `state` is an empty one. Errors: DataLossError
// "learner checkpoint: field '<name>' is not <what it must be>".
[[nodiscard]] absl::StatusOr<LearnerState> DecodeLearnerState(const Json& state);

// The encodings DecodeLearnerState reads, for the fields the learner writes:
// {"<partition>": offset}, [[source, tokens], ...] and one rank's state
// (replay and dedup in base64).
Json OffsetsToJson(const std::map<int32_t, int64_t>& offsets);
template <typename Runs>
Json SourceRunsToJson(const Runs& runs) {
  Json j = Json::array();
  for (const auto& [source, tokens] : runs) j.push_back({source, tokens});
  return j;
}
Json RankStateToJson(const RankState& rank);
// An offsets object on its own (`field` names it in the error).
[[nodiscard]] absl::StatusOr<std::map<int32_t, int64_t>> DecodeOffsets(const Json& offsets,
                                                                      const char* field);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_CHECKPOINT_STATE_H_

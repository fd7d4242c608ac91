#include "learner/checkpoint_state.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace streamlm {
namespace {

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::DataLossError(
      absl::StrCat("learner checkpoint: field '", field, "' is not ", what));
}

// The field, or nullptr when absent (or null).
const Json* Field(const Json& state, const char* name) {
  auto it = state.find(name);
  if (it == state.end() || it->is_null()) return nullptr;
  return &*it;
}

bool IsInt64(const Json& j) {
  // Unsigned values above int64's range do not fit.
  if (j.is_number_unsigned()) {
    return j.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  return j.is_number_integer();
}

absl::Status GetInt64(const Json& state, const char* name, int64_t* out) {
  const Json* j = Field(state, name);
  if (j == nullptr) return absl::OkStatus();
  if (!IsInt64(*j)) return Bad(name, "an integer");
  *out = j->get<int64_t>();
  return absl::OkStatus();
}

absl::Status GetString(const Json& state, const char* name, std::string* out) {
  const Json* j = Field(state, name);
  if (j == nullptr) return absl::OkStatus();
  if (!j->is_string()) return Bad(name, "a string");
  *out = j->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetObject(const Json& state, const char* name, Json* out) {
  const Json* j = Field(state, name);
  if (j == nullptr) return absl::OkStatus();
  if (!j->is_object()) return Bad(name, "an object");
  *out = *j;
  return absl::OkStatus();
}

// {"<partition>": offset, ...}
absl::Status GetOffsets(const Json& state, const char* name,
                        std::map<int32_t, int64_t>* out) {
  const Json* j = Field(state, name);
  if (j == nullptr) return absl::OkStatus();
  const char* what = "an object of partition numbers to integer offsets";
  if (!j->is_object()) return Bad(name, what);
  for (const auto& [key, off] : j->items()) {
    int32_t p = 0;
    if (!absl::SimpleAtoi(key, &p) || p < 0 || !IsInt64(off)) return Bad(name, what);
    (*out)[p] = off.get<int64_t>();
  }
  return absl::OkStatus();
}

// The field, or nullptr when absent; a null is present (store's
// LineageFromJson reads with Json::value, which throws on a null).
const Json* Present(const Json& object, const char* name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

// The fields store's LineageFromJson reads, with their types.
absl::Status CheckLineage(const Json& l) {
  const char* name = "since_snapshot";
  const char* what = "a lineage object (parent string, ranges, integer counts)";
  if (!l.is_object()) return Bad(name, what);
  if (const Json* p = Present(l, "parent"); p != nullptr && !p->is_string()) return Bad(name, what);
  for (const char* f : {"records_trained", "records_heldout", "records_rejected",
                        "tokens_trained", "step", "oldest_record_ms", "newest_record_ms"}) {
    if (const Json* v = Present(l, f); v != nullptr && !IsInt64(*v)) return Bad(name, what);
  }
  if (const Json* ranges = Present(l, "ranges"); ranges != nullptr) {
    if (!ranges->is_array()) return Bad(name, what);
    for (const Json& r : *ranges) {
      if (!r.is_object()) return Bad(name, what);
      if (const Json* t = Present(r, "topic"); t != nullptr && !t->is_string()) {
        return Bad(name, what);
      }
      if (const Json* p = Present(r, "partition");
          p != nullptr && (!IsInt64(*p) || p->get<int64_t>() < std::numeric_limits<int>::min() ||
                           p->get<int64_t>() > std::numeric_limits<int>::max())) {
        return Bad(name, what);
      }
      for (const char* f : {"begin", "end"}) {
        if (const Json* v = Present(r, f); v != nullptr && !IsInt64(*v)) return Bad(name, what);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status GetTokens(const Json& state, const char* name, const char* field,
                       std::vector<int32_t>* out) {
  const Json* j = Field(state, field);
  if (j == nullptr) return absl::OkStatus();
  const char* what = "an array of integers (token ids)";
  if (!j->is_array()) return Bad(name, what);
  out->reserve(j->size());
  for (const Json& t : *j) {
    if (!IsInt64(t) || t.get<int64_t>() < std::numeric_limits<int32_t>::min() ||
        t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return Bad(name, what);
    }
    out->push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return absl::OkStatus();
}

absl::Status GetSourceRuns(const Json& state, const char* name, const char* field,
                           std::vector<std::pair<std::string, int64_t>>* out) {
  const Json* j = Field(state, field);
  if (j == nullptr) return absl::OkStatus();
  const char* what = "an array of [source string, token count] pairs";
  if (!j->is_array()) return Bad(name, what);
  for (const Json& run : *j) {
    if (!run.is_array() || run.size() != 2 || !run[0].is_string() || !IsInt64(run[1])) {
      return Bad(name, what);
    }
    out->emplace_back(run[0].get<std::string>(), run[1].get<int64_t>());
  }
  return absl::OkStatus();
}

// {"<rank>": {"pending_tokens", "pending_sources", "replay", "dedup"}, ...}
// with replay and dedup in base64.
absl::Status GetRanks(const Json& state, std::map<int, RankState>* out) {
  const Json* j = Field(state, "ranks");
  if (j == nullptr) return absl::OkStatus();
  const char* what = "an object of rank numbers to rank states";
  if (!j->is_object()) return Bad("ranks", what);
  for (const auto& [key, r] : j->items()) {
    int rank = 0;
    if (!absl::SimpleAtoi(key, &rank) || rank < 1 || !r.is_object()) return Bad("ranks", what);
    RankState rs;
    absl::Status s = GetTokens(r, "ranks", "pending_tokens", &rs.pending_tokens);
    if (s.ok()) s = GetSourceRuns(r, "ranks", "pending_sources", &rs.pending_sources);
    if (!s.ok()) return s;
    for (auto [field, bytes] : {std::pair{"replay", &rs.replay}, std::pair{"dedup", &rs.dedup}}) {
      const Json* b = Field(r, field);
      if (b != nullptr && (!b->is_string() || !absl::Base64Unescape(b->get<std::string>(), bytes))) {
        return Bad("ranks", "an object of rank states with base64 replay and dedup");
      }
    }
    (*out)[rank] = std::move(rs);
  }
  return absl::OkStatus();
}

}  // namespace

Json OffsetsToJson(const std::map<int32_t, int64_t>& offsets) {
  Json j = Json::object();
  for (const auto& [p, off] : offsets) j[std::to_string(p)] = off;
  return j;
}

Json RankStateToJson(const RankState& rank) {
  return {{"pending_tokens", rank.pending_tokens},
          {"pending_sources", SourceRunsToJson(rank.pending_sources)},
          {"replay", absl::Base64Escape(rank.replay)},
          {"dedup", absl::Base64Escape(rank.dedup)}};
}

absl::StatusOr<std::map<int32_t, int64_t>> DecodeOffsets(const Json& offsets,
                                                        const char* field) {
  std::map<int32_t, int64_t> out;
  absl::Status s = GetOffsets(Json{{field, offsets}}, field, &out);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<LearnerState> DecodeLearnerState(const Json& state) {
  LearnerState out;
  if (state.is_null()) return out;
  if (!state.is_object()) {
    return absl::DataLossError("learner checkpoint: the state is not a JSON object");
  }
  absl::Status s = GetString(state, "snapshot", &out.snapshot);
  if (!s.ok()) return s;
  if (s = GetTokens(state, "pending_tokens", "pending_tokens", &out.pending_tokens); !s.ok()) {
    return s;
  }
  if (s = GetOffsets(state, "range_begin", &out.range_begin); !s.ok()) return s;
  if (const Json* j = Field(state, "since_snapshot"); j != nullptr) {
    if (s = CheckLineage(*j); !s.ok()) return s;
    out.since_snapshot = *j;
  }
  if (s = GetInt64(state, "steps_since_snapshot", &out.steps_since_snapshot); !s.ok()) return s;
  if (s = GetOffsets(state, "feedback_offsets", &out.feedback_offsets); !s.ok()) return s;
  if (const Json* j = Field(state, "pending_feedback"); j != nullptr) {
    if (!j->is_array()) return Bad("pending_feedback", "an array of objects");
    for (const Json& r : *j) {
      if (!r.is_object()) return Bad("pending_feedback", "an array of objects");
      out.pending_feedback.push_back(r);
    }
  }
  if (const Json* j = Field(state, "user_window"); j != nullptr) {
    if (!j->is_array()) return Bad("user_window", "an array of strings");
    for (const Json& u : *j) {
      if (!u.is_string()) return Bad("user_window", "an array of strings");
      out.user_window.push_back(u.get<std::string>());
    }
  }
  if (s = GetObject(state, "feedback_since", &out.feedback_since); !s.ok()) return s;
  if (s = GetSourceRuns(state, "pending_sources", "pending_sources", &out.pending_sources);
      !s.ok()) {
    return s;
  }
  int64_t v = 0;
  if (Field(state, "cycle_step") != nullptr) {
    if (s = GetInt64(state, "cycle_step", &v); !s.ok()) return s;
    out.cycle_step = v;
  }
  if (Field(state, "cycle_length") != nullptr) {
    if (s = GetInt64(state, "cycle_length", &v); !s.ok()) return s;
    out.cycle_length = v;
  }
  if (s = GetString(state, "reference", &out.reference); !s.ok()) return s;
  if (s = GetInt64(state, "world_size", &out.world_size); !s.ok()) return s;
  if (out.world_size < 1) return Bad("world_size", "a positive integer");
  if (s = GetRanks(state, &out.ranks); !s.ok()) return s;
  return out;
}

}  // namespace streamlm

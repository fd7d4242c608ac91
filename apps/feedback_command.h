// `streamlm feedback trust FILE`: the operator's trusted feedback set
// (store/store.h kTrustedFeedbackSet), feedback records the learner never
// trains on and the evaluator scores every candidate against.
#ifndef STREAMLM_APPS_FEEDBACK_COMMAND_H_
#define STREAMLM_APPS_FEEDBACK_COMMAND_H_

#include <cstdint>
#include <istream>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/json_util.h"
#include "store/store.h"

namespace streamlm {

// Cleaned feedback records, in input order, and how many of each kind
// ("pair", "rating", "correction"; only kinds present are keys).
struct TrustedFeedback {
  Json records = Json::array();
  std::map<std::string, int64_t> kinds;
};

// The kind of a cleaned `streamlm.feedback` record, by the fields present
// (the same rule as ingest/pipeline.h CleanFeedbackRecord): "pair" with
// "chosen", "correction" with "correction", else "rating".
std::string FeedbackKind(const Json& record);

// Reads JSON lines from `in` (blank lines are skipped) and validates and
// cleans each with CleanFeedbackRecord, using config.clean_feedback and
// config.learner.max_record_bytes. All or nothing: the first bad line gives
// InvalidArgument naming its 1-based line number, the reason and what was
// wrong ("line 3: missing_field (no \"prompt\" field)"); input without any
// record is InvalidArgument too. `source` names the input in messages.
[[nodiscard]] absl::StatusOr<TrustedFeedback> ReadTrustedFeedback(const Config& config,
                                                                  std::istream& in,
                                                                  const std::string& source);

// `streamlm decisions` text output for a decision with metrics.feedback: one
// line for the held-out set and one for the trusted set, each present only
// when the decision has it, e.g.
//   "feedback  held-out pref acc 0.81 [0.70,0.90] vs 0.52 [0.40,0.64]
//    (delta +0.29 [+0.15,+0.43]), 40 pairs; ref snap-000003"   (one line)
// (candidate vs champion). A set without pairs shows its correction and
// rating deltas instead; with no set scored, one line when feedback was
// trained on. No lines for a decision without feedback metrics or with
// nothing in them.
std::vector<std::string> FeedbackDecisionLines(const Json& decision);

// Replaces the stored trusted set with `records` (a JSON array; empty
// clears it).
[[nodiscard]] absl::Status StoreTrustedFeedback(Store* store, const Json& records);

// The subcommand: with `clear` stores an empty set, otherwise reads `path`
// ("-" = `in`) and stores its cleaned records. Opens the store at
// config.data_dir (a running `streamlm run` holding it is reported as such:
// the store can be changed only while it is stopped). Prints a summary to
// `out` ("stored 3 trusted feedback records: 1 pair, 1 rating,
// 1 correction") and errors to `err` as "streamlm: error: ...". Returns the
// process exit code: 0, 1 (store or file) or 2 (bad input).
int RunFeedbackTrust(const Config& config, const std::string& path, bool clear, std::istream& in,
                     std::ostream& out, std::ostream& err);

}  // namespace streamlm

#endif  // STREAMLM_APPS_FEEDBACK_COMMAND_H_

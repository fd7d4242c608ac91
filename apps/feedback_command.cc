#include "apps/feedback_command.h"

#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ingest/pipeline.h"
#include "store/store_open.h"

namespace streamlm {
namespace {

constexpr const char* kKindOrder[] = {"pair", "rating", "correction"};

std::string Plural(int64_t n, const char* one, const char* many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

// "1 pair, 2 ratings" in kKindOrder.
std::string KindSummary(const std::map<std::string, int64_t>& kinds) {
  std::vector<std::string> parts;
  for (const char* k : kKindOrder) {
    auto it = kinds.find(k);
    if (it == kinds.end()) continue;
    parts.push_back(Plural(it->second, k, absl::StrCat(k, "s").c_str()));
  }
  return absl::StrJoin(parts, ", ");
}

// An estimate {mean, ci95: [lo, hi], n} as "0.81 [0.70,0.90]" (with
// `sign`: "+0.29 [+0.15,+0.43]"); "-" when absent.
std::string Estimate(const Json& e, bool sign) {
  auto num = [sign](const Json& v) {
    if (!v.is_number()) return std::string("?");
    return sign ? absl::StrFormat("%+.2f", v.get<double>())
                : absl::StrFormat("%.2f", v.get<double>());
  };
  if (!e.is_object() || !e.contains("mean")) return "-";
  std::string out = num(e["mean"]);
  const Json& ci = e.contains("ci95") ? e["ci95"] : Json();
  if (ci.is_array() && ci.size() == 2)
    absl::StrAppend(&out, " [", num(ci[0]), ",", num(ci[1]), "]");
  return out;
}

// e.g. "held-out pref acc 0.81 [0.70,0.90] vs 0.52 [0.40,0.64] (delta +0.29
// [+0.15,+0.43]), 40 pairs".
std::string FeedbackSetSummary(const char* label, const Json& set) {
  const Json none = Json::object();
  auto field = [&](const Json& j, const char* k) -> const Json& {
    return j.is_object() && j.contains(k) ? j[k] : none;
  };
  auto count = [&](const char* k) {
    return field(set, k).is_number() ? field(set, k).get<int64_t>() : 0;
  };
  std::string out = label;
  const Json& acc = field(set, "preference_accuracy");
  if (!acc.empty()) {
    absl::StrAppend(&out, " pref acc ", Estimate(field(acc, "candidate"), false), " vs ",
                    Estimate(field(acc, "champion"), false), " (delta ",
                    Estimate(field(acc, "delta"), true), "), ",
                    Plural(count("pairs"), "pair", "pairs"));
    return out;
  }
  // No pairs scored: what was, by kind.
  std::vector<std::string> parts;
  const Json& correction = field(set, "correction_logprob");
  if (!correction.empty()) {
    parts.push_back(absl::StrCat("correction logprob delta ",
                                 Estimate(field(correction, "delta"), true), ", ",
                                 Plural(count("corrections"), "correction", "corrections")));
  }
  const Json& rating = field(set, "rating_reward");
  if (!rating.empty()) {
    parts.push_back(absl::StrCat("rating reward delta ", Estimate(field(rating, "delta"), true),
                                 ", ", Plural(count("ratings"), "rating", "ratings")));
  }
  if (parts.empty())
    parts.push_back(Plural(count("records"), "record", "records") + " (nothing scored)");
  absl::StrAppend(&out, " ", absl::StrJoin(parts, "; "));
  return out;
}

}  // namespace

std::string FeedbackKind(const Json& record) {
  if (record.contains("chosen")) return "pair";
  if (record.contains("correction")) return "correction";
  return "rating";
}

absl::StatusOr<TrustedFeedback> ReadTrustedFeedback(const Config& config, std::istream& in,
                                                    const std::string& source) {
  Cleaner cleaner(config.clean_feedback);
  const size_t max_bytes = static_cast<size_t>(config.learner.max_record_bytes);
  TrustedFeedback out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    FeedbackResult f = CleanFeedbackRecord(line, max_bytes, cleaner);
    if (!f.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, " line ", line_no, ": ", f.reason, f.detail.empty() ? "" : " (",
                       f.detail, f.detail.empty() ? "" : ")", "; nothing was stored"));
    }
    ++out.kinds[FeedbackKind(f.record)];
    out.records.push_back(std::move(f.record));
  }
  if (in.bad()) {
    return absl::DataLossError(absl::StrCat("reading ", source, " failed after line ", line_no));
  }
  if (out.records.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no feedback records in ", source,
                     "; to remove the trusted set use `streamlm feedback trust --clear`"));
  }
  return out;
}

absl::Status StoreTrustedFeedback(Store* store, const Json& records) {
  if (!records.is_array()) {
    return absl::InvalidArgumentError("trusted feedback must be a JSON array of records");
  }
  return store->PutEvalSet(kTrustedFeedbackSet,
                           records.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::vector<std::string> FeedbackDecisionLines(const Json& decision) {
  std::vector<std::string> lines;
  if (!decision.is_object() || !decision.contains("metrics")) return lines;
  const Json& metrics = decision["metrics"];
  if (!metrics.is_object() || !metrics.contains("feedback") || !metrics["feedback"].is_object()) {
    return lines;
  }
  const Json& feedback = metrics["feedback"];
  std::string reference;
  for (const Json* j : {&decision, &feedback}) {
    if (reference.empty() && j->contains("reference") && (*j)["reference"].is_string()) {
      reference = (*j)["reference"].get<std::string>();
    }
  }
  std::string ref = reference.empty() ? "" : "; ref " + reference;
  const Json& sets = feedback.contains("sets") ? feedback["sets"] : Json();
  for (const auto& [key, label] :
       {std::pair<const char*, const char*>{"heldout", "held-out"}, {"trusted", "trusted"}}) {
    if (!sets.is_object() || !sets.contains(key) || !sets[key].is_object()) continue;
    lines.push_back(absl::StrCat("feedback  ", FeedbackSetSummary(label, sets[key]), ref));
  }
  // Nothing scored: worth a line only when feedback was trained on.
  const Json& trained = feedback.contains("trained") ? feedback["trained"] : Json();
  const int64_t trained_records =
      trained.is_object() && trained.contains("records") && trained["records"].is_number()
          ? trained["records"].get<int64_t>()
          : 0;
  if (lines.empty() && trained_records > 0) {
    lines.push_back(absl::StrCat("feedback  ", Plural(trained_records, "record", "records"),
                                 " trained since the champion, no held-out or trusted set "
                                 "scored",
                                 ref));
  }
  return lines;
}

int RunFeedbackTrust(const Config& config, const std::string& path, bool clear, std::istream& in,
                     std::ostream& out, std::ostream& err) {
  auto fail = [&err](const absl::Status& s) {
    err << "streamlm: error: " << s.message() << std::endl;
    return absl::IsInvalidArgument(s) ? 2 : 1;
  };
  if (clear && !path.empty()) {
    return fail(absl::InvalidArgumentError("give either FILE or --clear, not both"));
  }
  if (!clear && path.empty()) {
    return fail(
        absl::InvalidArgumentError("give a FILE of feedback JSON lines ('-' = stdin), or --clear"));
  }
  // Read and validate everything before touching the store.
  TrustedFeedback trusted;
  if (!clear) {
    absl::StatusOr<TrustedFeedback> read;
    if (path == "-") {
      read = ReadTrustedFeedback(config, in, "stdin");
    } else {
      std::ifstream file(path, std::ios::binary);
      if (!file) return fail(absl::NotFoundError(absl::StrCat("cannot read '", path, "'")));
      read = ReadTrustedFeedback(config, file, path);
    }
    if (!read.ok()) return fail(read.status());
    trusted = std::move(*read);
  }
  auto store = OpenStore(config);
  if (!store.ok()) {
    if (IsStoreLocked(store.status())) {
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "the store at '", config.data_dir,
          "' is locked by a running StreamLM (`streamlm run`, `learn` or `evaluate`); stop "
          "it, run `streamlm feedback trust` again, then start it again")));
    }
    return fail(store.status());
  }
  absl::Status s = StoreTrustedFeedback(store->get(), trusted.records);
  if (!s.ok()) return fail(s);
  if (clear) {
    out << "cleared the trusted feedback set in " << config.data_dir << "\n";
  } else {
    out << "stored "
        << Plural(static_cast<int64_t>(trusted.records.size()), "trusted feedback record",
                  "trusted feedback records")
        << ": " << KindSummary(trusted.kinds) << " (replacing any previous set)\n";
  }
  return 0;
}

}  // namespace streamlm

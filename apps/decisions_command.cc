// `streamlm decisions`: the decision log as a table or JSON.
#include "apps/commands.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "apps/command_util.h"
#include "apps/feedback_command.h"
#include "common/json_util.h"
#include "evaluator/rollback.h"
#include "store/store.h"

namespace streamlm {

namespace {

std::string Cut(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 3) + "...";
}

}  // namespace

int RunDecisions(const Config& c, bool json, size_t limit) {
  auto store = Store::Open(c.data_dir, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto decisions = (*store)->ListDecisions(limit);
  if (!decisions.ok()) return Fail(decisions.status());
  if (json) {
    std::printf("%s\n", Json(*decisions).dump(2).c_str());
    return 0;
  }
  if (decisions->empty()) {
    std::printf("no decisions yet\n");
    return 0;
  }
  std::printf("%-24s %-12s %-12s %-13s %-26s %-26s %s\n", "TIME", "CANDIDATE", "CHAMPION",
              "VERDICT", "STREAM Δ [CI]", "BASE Δ [CI]", "REASON");
  for (const Json& d : *decisions) {
    // The delta with the interval the verdict used (the rule's, at the
    // look's level), else the 95% one.
    auto delta = [&d](const char* m, const char* rule) {
      const Json& metrics = d.value("metrics", Json::object());
      if (!metrics.contains(m) || !metrics[m].contains("delta")) return std::string("-");
      const Json& e = metrics[m]["delta"];
      if (e.value("tokens", int64_t{0}) == 0) return std::string("none");
      Json ci = e.value("ci95", Json());
      for (const Json& r : d.value("rules", Json::array())) {
        if (r.value("name", "") == rule && r.contains("ci")) ci = r["ci"];
      }
      std::string out = absl::StrFormat("%+.4f", e.value("mean", 0.0));
      if (ci.is_array() && ci.size() == 2 && ci[0].is_number() && ci[1].is_number()) {
        out += absl::StrFormat(" [%+.3f,%+.3f]", ci[0].get<double>(), ci[1].get<double>());
      }
      return out;
    };
    std::string verdict = d.value("verdict", "");
    if (d.contains("look") && d["look"].is_number_integer()) {
      verdict += absl::StrFormat(" %d/%d", d["look"].get<int>(), d.value("max_looks", 0));
    }
    std::printf("%-24s %-12s %-12s %-13s %-26s %-26s %s\n", d.value("time", "").c_str(),
                d.value("candidate", "").c_str(), d.value("champion", "").c_str(),
                verdict.c_str(), delta("stream_loss", "adaptation").c_str(),
                delta("base_loss", "forgetting").c_str(), Cut(d.value("reason", ""), 100).c_str());
    for (const std::string& line : FeedbackDecisionLines(d)) std::printf("  %s\n", line.c_str());
    for (const std::string& line : RollbackDecisionLines(d)) std::printf("  %s\n", line.c_str());
  }
  return 0;
}

}  // namespace streamlm

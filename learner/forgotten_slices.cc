#include "learner/forgotten_slices.h"

#include "learner/replay_buffer.h"

namespace streamlm {

std::vector<std::string> ForgottenReplaySlices(const Json& decision) {
  std::vector<std::string> out;
  if (!decision.is_object() || decision.value("verdict", "") != "rejected") return out;
  const Json rules = decision.value("rules", Json::array());
  if (!rules.is_array()) return out;
  for (const Json& r : rules) {
    if (!r.is_object() || r.value("passed", true)) continue;
    const std::string name = r.value("name", "");
    if (name == "forgetting") {
      out.push_back(SlicedReplay::kBase);
      continue;
    }
    if (name != "slice_forgetting") continue;
    const std::string kind = r.value("slice_kind", "");
    if (kind == "base") {
      out.push_back(SlicedReplay::kBase);
    } else if (kind == "stream" && r.contains("slice") && r["slice"].is_string()) {
      out.push_back(r["slice"].get<std::string>());
    }
  }
  return out;
}

}  // namespace streamlm

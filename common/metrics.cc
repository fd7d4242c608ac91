#include "common/metrics.h"

#include "absl/strings/str_cat.h"

namespace streamlm {

void Counters::Add(const std::string& name, int64_t delta, const std::string& label) {
  std::lock_guard<std::mutex> lock(mu_);
  counts_[{name, label}] += delta;
}

void Counters::Set(const std::string& name, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[name] = value;
}

int64_t Counters::Get(const std::string& name, const std::string& label) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counts_.find({name, label});
  return it == counts_.end() ? 0 : it->second;
}

std::map<std::string, int64_t> Counters::WithLabels(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, int64_t> out;
  for (const auto& [key, v] : counts_) {
    if (key.first == name) out[key.second] = v;
  }
  return out;
}

std::string Counters::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  std::string last;
  for (const auto& [key, v] : counts_) {
    if (key.first != last) {
      absl::StrAppend(&out, "# TYPE ", key.first, " counter\n");
      last = key.first;
    }
    if (key.second.empty()) {
      absl::StrAppend(&out, key.first, " ", v, "\n");
    } else if (size_t eq = key.second.find('='); eq != std::string::npos) {
      absl::StrAppend(&out, key.first, "{", key.second.substr(0, eq), "=\"",
                      key.second.substr(eq + 1), "\"} ", v, "\n");
    } else {
      absl::StrAppend(&out, key.first, "{reason=\"", key.second, "\"} ", v, "\n");
    }
  }
  for (const auto& [name, v] : gauges_) {
    absl::StrAppend(&out, "# TYPE ", name, " gauge\n", name, " ", v, "\n");
  }
  return out;
}

}  // namespace streamlm

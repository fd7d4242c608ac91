#include "common/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace streamlm {

void Counters::Add(const std::string& name, int64_t delta, const std::string& label) {
  std::lock_guard<std::mutex> lock(mu_);
  counts_[{name, label}] += delta;
}

void Counters::Set(const std::string& name, double value, const std::string& label) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[{name, label}] = value;
}

double Counters::GetGauge(const std::string& name, const std::string& label) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = gauges_.find({name, label});
  return it == gauges_.end() ? std::nan("") : it->second;
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

void Counters::Observe(const std::string& name, double value, const std::vector<double>& bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  Histogram& h = histograms_[name];
  if (h.counts.empty()) {
    h.bounds = bounds;
    h.counts.assign(bounds.size() + 1, 0);
  }
  size_t i = std::lower_bound(h.bounds.begin(), h.bounds.end(), value) - h.bounds.begin();
  ++h.counts[i];
  ++h.count;
  h.sum += value;
}

std::pair<int64_t, double> Counters::HistogramCountSum(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = histograms_.find(name);
  if (it == histograms_.end()) return {0, 0.0};
  return {it->second.count, it->second.sum};
}

const std::vector<double>& Counters::LatencyBuckets() {
  static const std::vector<double> b = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25,
                                        0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
  return b;
}

const std::vector<double>& Counters::FreshnessBuckets() {
  static const std::vector<double> b = {1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800,
                                        3600, 7200, 21600};
  return b;
}

namespace {

// One sample line: `name value`, `name{reason="label"} value`, or for a
// label "key=value" `name{key="value"} value`.
template <typename T>
void AppendSample(std::string* out, const std::string& name, const std::string& label, T v) {
  if (label.empty()) {
    absl::StrAppend(out, name, " ", v, "\n");
  } else if (size_t eq = label.find('='); eq != std::string::npos) {
    absl::StrAppend(out, name, "{", label.substr(0, eq), "=\"", label.substr(eq + 1), "\"} ", v,
                    "\n");
  } else {
    absl::StrAppend(out, name, "{reason=\"", label, "\"} ", v, "\n");
  }
}

}  // namespace

std::string Counters::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  std::string last;
  for (const auto& [key, v] : counts_) {
    if (key.first != last) {
      absl::StrAppend(&out, "# TYPE ", key.first, " counter\n");
      last = key.first;
    }
    AppendSample(&out, key.first, key.second, v);
  }
  last.clear();
  for (const auto& [key, v] : gauges_) {
    if (key.first != last) {
      absl::StrAppend(&out, "# TYPE ", key.first, " gauge\n");
      last = key.first;
    }
    AppendSample(&out, key.first, key.second, v);
  }
  for (const auto& [name, h] : histograms_) {
    absl::StrAppend(&out, "# TYPE ", name, " histogram\n");
    int64_t cumulative = 0;
    for (size_t i = 0; i < h.counts.size(); ++i) {
      cumulative += h.counts[i];
      std::string le = i < h.bounds.size() ? absl::StrCat(h.bounds[i]) : "+Inf";
      absl::StrAppend(&out, name, "_bucket{le=\"", le, "\"} ", cumulative, "\n");
    }
    absl::StrAppend(&out, name, "_sum ", h.sum, "\n", name, "_count ", h.count, "\n");
  }
  return out;
}

}  // namespace streamlm

// Counters: named monotonically increasing counts (records by reject reason,
// steps, tokens...), rendered for /metrics in Prometheus text format.
// Thread-safe.
#ifndef STREAMLM_COMMON_METRICS_H_
#define STREAMLM_COMMON_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace streamlm {

class Counters {
 public:
  // `name` is a Prometheus metric name; `label` an optional reason value,
  // or "name=value" for another label name (e.g. "kind=email").
  void Add(const std::string& name, int64_t delta, const std::string& label = "");
  void Set(const std::string& name, double value);
  int64_t Get(const std::string& name, const std::string& label = "") const;
  std::map<std::string, int64_t> WithLabels(const std::string& name) const;
  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> counts_;  // GUARDED_BY(mu_)
  std::map<std::string, double> gauges_;                           // GUARDED_BY(mu_)
};

}  // namespace streamlm

#endif  // STREAMLM_COMMON_METRICS_H_

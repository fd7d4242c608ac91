// Counters: named monotonically increasing counts (records by reject reason,
// steps, tokens...), gauges and histograms, rendered for /metrics in
// Prometheus text format.
// Thread-safe.
#ifndef STREAMLM_COMMON_METRICS_H_
#define STREAMLM_COMMON_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace streamlm {

class Counters {
 public:
  // `name` is a Prometheus metric name; `label` an optional reason value,
  // or "name=value" for another label name (e.g. "kind=email").
  void Add(const std::string& name, int64_t delta, const std::string& label = "");
  // Gauge `name` (labelled like Add's).
  void Set(const std::string& name, double value, const std::string& label = "");
  // A gauge's value; NaN when never set.
  double GetGauge(const std::string& name, const std::string& label = "") const;
  int64_t Get(const std::string& name, const std::string& label = "") const;
  std::map<std::string, int64_t> WithLabels(const std::string& name) const;
  // Histogram `name` (cumulative buckets with upper bounds `bounds`, sorted,
  // +Inf implied; the bounds of the first observation are kept).
  void Observe(const std::string& name, double value, const std::vector<double>& bounds);
  // Count and sum of a histogram (0, 0 when never observed).
  std::pair<int64_t, double> HistogramCountSum(const std::string& name) const;
  std::string RenderPrometheus() const;

  // Bucket bounds in seconds for request latencies (vLLM's spread).
  static const std::vector<double>& LatencyBuckets();
  // Bounds in seconds for data freshness (1 s to 6 h).
  static const std::vector<double>& FreshnessBuckets();

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<int64_t> counts;  // per bucket, not cumulative; last = +Inf
    int64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> counts_;  // GUARDED_BY(mu_)
  std::map<std::pair<std::string, std::string>, double> gauges_;   // GUARDED_BY(mu_)
  std::map<std::string, Histogram> histograms_;                    // GUARDED_BY(mu_)
};

}  // namespace streamlm

#endif  // STREAMLM_COMMON_METRICS_H_

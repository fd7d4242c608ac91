// ControlHttp: the HTTP endpoint of a role that does not serve completions
// (`streamlm learn`, `streamlm evaluate`), for probes, monitoring and, on
// the store's owner, remote serving replicas:
//   GET /healthz  200 {"status": "ok"} while the process runs
//   GET /readyz   200 once set_ready(true), else 503 {"status": "starting"}
//   GET /metrics  the process's counters, Prometheus text format
// plus, with a store, the snapshot transfer routes (serving/admin_api.h
// RegisterSnapshotTransfer) behind serving.admin_token, so `streamlm serve
// --snapshots-from` can fetch champions from the learner's host.
//
// Thread-safety: Start/Stop from one thread; set_ready from any.
#ifndef STREAMLM_APPS_CONTROL_HTTP_H_
#define STREAMLM_APPS_CONTROL_HTTP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "common/config.h"
#include "common/metrics.h"

namespace httplib {
class Server;
}

namespace streamlm {

class Store;

class ControlHttp {
 public:
  // `counters` and `store` (may be null) must outlive this object.
  ControlHttp(const Config& config, Counters* counters, Store* store);
  ~ControlHttp();
  // Listens on config.http (HOST:PORT; port 0 picks one).
  [[nodiscard]] absl::Status Start();
  void Stop();
  int port() const { return port_; }
  void set_ready(bool ready) { ready_ = ready; }

 private:
  Config config_;
  Counters* counters_;
  Store* store_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> ready_{false};
};

}  // namespace streamlm

#endif  // STREAMLM_APPS_CONTROL_HTTP_H_

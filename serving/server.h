// Server: StreamLM's HTTP endpoint (see README.md). Thread-safe.
#ifndef STREAMLM_SERVING_SERVER_H_
#define STREAMLM_SERVING_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "common/config.h"
#include "common/json_util.h"
#include "common/metrics.h"
#include "store/store.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace streamlm {

class LanguageModel;

class Server {
 public:
  Server(const Config& config, Store* store, Counters* counters);
  ~Server();

  // Loads the champion, binds `http`, and starts serving in the background.
  [[nodiscard]] absl::Status Start();
  void Stop();
  // Port actually bound (useful with port 0).
  int port() const { return port_; }

  // Loads the champion if the alias moved; cheap when it did not.
  [[nodiscard]] absl::Status RefreshChampion();
  // Evaluator hook: a decision was made; pick up a promotion now.
  void OnDecision(const Json& decision);

 private:
  struct Served {
    std::string id;
    int64_t created_ms = 0;
    std::shared_ptr<const LanguageModel> model;
  };
  std::shared_ptr<const Served> current() const;
  void HandleCompletions(const httplib::Request& req, httplib::Response& res);
  bool CheckAdmin(const httplib::Request& req, httplib::Response& res);
  void PollLoop();

  Config config_;
  Store* store_;
  Counters* counters_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listen_thread_;
  std::thread poll_thread_;
  int port_ = 0;

  mutable std::mutex mu_;
  std::shared_ptr<const Served> served_;  // GUARDED_BY(mu_)
  std::mutex refresh_mu_;                 // one load at a time
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;  // GUARDED_BY(poll_mu_)
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_SERVER_H_

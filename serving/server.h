// Server: StreamLM's HTTP endpoint (see README.md). Thread-safe.
#ifndef STREAMLM_SERVING_SERVER_H_
#define STREAMLM_SERVING_SERVER_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/json_util.h"
#include "common/metrics.h"
#include "serving/completion_log.h"
#include "store/store.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace streamlm {

class KafkaProducer;
class LanguageModel;
class ChatTemplate;
class Scheduler;
struct GenerationRequest;

// What serving saw of one model (a snapshot id) since this process started;
// in memory only. Requests are pinned to the champion they started with, so
// a model's counts are what it served while champion (and the requests in
// flight at the swap).
struct ModelServingSignals {
  // Generation requests it ran to an outcome: answered, or failed. Not
  // counted: requests refused before running (400s, 429 queue full) and
  // those whose client went away.
  int64_t requests = 0;
  // Of those, the failed ones: a 5xx answer or a failed generation (504
  // timeouts included; in a stream, the error chunk).
  int64_t errors = 0;
  // POST /v1/feedback about its completions: ratings, and both sides of a
  // preference (corrections are not counted).
  int64_t feedback = 0;
  // Of those, the negative ones: rating -1, or its response was the
  // rejected one of a preference (`preferred_over`).
  int64_t negative_feedback = 0;
};

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
  // Evaluator and rollback monitor hook: a decision was made; pick up a
  // promotion or a rollback (verdict "rolled_back") now.
  void OnDecision(const Json& decision);

  // The serving counts of `model_id` (zeros for a model never served).
  // Thread-safe; the rollback monitor reads them (evaluator/rollback.h).
  ModelServingSignals ModelSignals(const std::string& model_id) const;

  // Where POST /v1/feedback writes (config.topic_feedback); without one it
  // answers 503 `feedback_unavailable`. Each feedback waits up to
  // `flush_timeout_ms` for Kafka to confirm its record, else answers 503.
  // The same producer publishes the decision record of a manual rollback
  // (POST /v1/admin/rollback) on config.topic_decisions.
  // Not owned; must outlive the server. Not thread-safe: call before Start().
  void set_feedback_producer(KafkaProducer* producer, int flush_timeout_ms = 10000) {
    feedback_producer_ = producer;
    feedback_flush_timeout_ms_ = flush_timeout_ms;
  }

 private:
  struct Served {
    std::string id;
    int64_t created_ms = 0;
    Json lineage;  // parent, root, offsets and counts (SnapshotMeta lineage)
    std::shared_ptr<const LanguageModel> model;
    // The model's chat template (its own or DefaultChatTemplate()); when it
    // does not parse, chat requests fail with `chat_template_error`.
    std::shared_ptr<const ChatTemplate> chat_template;
    std::string chat_template_error;
  };
  // A validated generation request and how to answer it.
  struct Call;

  std::shared_ptr<const Served> current() const;
  // Resolves the request's `model` field against what is served; false (and
  // `res` filled) when it names another model.
  bool CheckModel(const Json& body, const Served& served, httplib::Response& res);
  // What every model endpoint does first: parse the JSON object body, take
  // the champion, check `model`. Null (and `res` filled) on error.
  std::shared_ptr<const Served> Begin(const httplib::Request& req, Json* body,
                                      httplib::Response& res);
  void HandleCompletions(const httplib::Request& req, httplib::Response& res);
  void HandleChat(const httplib::Request& req, httplib::Response& res);
  void HandleTokenize(const httplib::Request& req, httplib::Response& res);
  void HandleDetokenize(const httplib::Request& req, httplib::Response& res);
  // POST /v1/feedback: one record to config.topic_feedback (README.md).
  void HandleFeedback(const httplib::Request& req, httplib::Response& res);
  // Remembers a finished completion for feedback.
  void RecordCompletion(const Call& call, const std::string& response);
  // Submits `call` to the scheduler and answers: one JSON body, or SSE chunks.
  void Run(std::shared_ptr<Call> call, httplib::Response& res);
  bool CheckAdmin(const httplib::Request& req, httplib::Response& res);
  // Counts one generation outcome of `model_id` (ModelServingSignals).
  void CountOutcome(const std::string& model_id, bool error);
  void CountFeedback(const std::string& model_id, bool negative);
  void PollLoop();

  Config config_;
  Store* store_;
  Counters* counters_;
  KafkaProducer* feedback_producer_ = nullptr;
  int feedback_flush_timeout_ms_ = 10000;
  CompletionLog completion_log_;  // thread-safe on its own
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listen_thread_;
  std::thread poll_thread_;
  int port_ = 0;
  bool loopback_only_ = true;  // `http` binds a loopback address
  std::atomic<int64_t> next_request_{1};

  mutable std::mutex mu_;
  std::shared_ptr<const Served> served_;   // GUARDED_BY(mu_)
  std::deque<std::string> recent_ids_;     // GUARDED_BY(mu_) champions served lately
  std::mutex refresh_mu_;                  // one load at a time
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;  // GUARDED_BY(poll_mu_)
  mutable std::mutex signals_mu_;
  // One small entry per model that served or got feedback (promotions are
  // rare, so this stays small).
  std::map<std::string, ModelServingSignals> signals_;  // GUARDED_BY(signals_mu_)
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_SERVER_H_

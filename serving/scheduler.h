// Scheduler: continuous batching for serving. Each worker thread owns its
// KV caches and runs, step after step, one decode step for all of its active
// sequences of a model together (BatchDecoder); requests that arrive join a
// worker's batch at its next step (after their prefill), finished or
// cancelled ones leave at once. Requests wait in one bounded queue; when it
// is full Submit() refuses (the server answers 429 with Retry-After).
//
// Compute budget: every worker computes on one core (libtorch/OpenMP team
// of 1: these models' ops are too small to split well). `threads` workers
// take requests while the learner works; while it is idle (its progress
// counter has not moved for kLearnerIdleMs) up to `idle_threads` do, so
// cores the learner leaves unused serve, and are handed back as soon as it
// works again (the extra workers finish what they hold, then wait). The
// least loaded allowed worker takes the next request.
//
// Each request is pinned to the model it was submitted with; a swap of the
// served champion affects only requests submitted after it, so a response
// comes from exactly one snapshot.
//
// Thread-safety: Submit(), running(), waiting() from any thread;
// GenerationStream is shared by the scheduler (producer) and one consumer.
#ifndef STREAMLM_SERVING_SCHEDULER_H_
#define STREAMLM_SERVING_SCHEDULER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "model/language_model.h"

namespace streamlm {

struct GenerationRequest {
  std::shared_ptr<const LanguageModel> model;
  std::vector<int32_t> prompt_ids;  // at most the model's context (caller checks)
  SamplingParams params;
  int logprobs = -1;             // per generated token: -1 none, else top-N alternatives
  int prompt_logprobs = -1;      // per prompt token (echo): -1 none, else top-N
  int64_t deadline_ms = 0;       // NowMs() clock; 0 = none
  // The consumer wants each token as it comes (streaming). Otherwise it is
  // woken only by the last event, which saves a thread wake-up per token.
  bool wake_per_token = true;
};

struct GenerationEvent {
  enum Kind { kPrompt, kToken, kDone, kError };
  Kind kind = kToken;
  // kPrompt: the prompt's per-token logprobs (entry 0 has no logprob).
  std::vector<TokenLogprob> prompt;
  // Text of each token (kPrompt: of each prompt token; kToken: entry 0 is
  // the generated token), and of its `top` alternatives, for logprobs.
  std::vector<std::string> token_text;
  std::vector<std::vector<std::string>> top_text;
  // kToken: one generated id, the text it completes (may be empty while a
  // character or a possible stop string is incomplete), its logprob.
  int32_t id = 0;
  std::string text;
  TokenLogprob logprob;
  // kDone: "stop" or "length"; `text` holds text released at the end.
  std::string finish_reason;
  int completion_tokens = 0;
  // kError: why the request failed (deadline, ...).
  absl::Status error;
};

// The events of one request, in order: [kPrompt] kToken* (kDone | kError).
class GenerationStream {
 public:
  explicit GenerationStream(bool wake_per_token = true) : wake_per_token_(wake_per_token) {}
  // Waits up to `timeout_ms` for the next event; false on timeout.
  bool Next(GenerationEvent* e, int timeout_ms);
  // The consumer is gone (client disconnected): the scheduler drops the
  // sequence at its next step.
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }
  void Push(GenerationEvent e);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> events_;  // GUARDED_BY(mu_)
  std::atomic<bool> cancelled_{false};
  const bool wake_per_token_;
};

class Scheduler {
 public:
  struct Options {
    int max_batch = 16;   // sequences one worker decodes together
    int max_queue = 64;   // requests waiting for a slot
    int threads = 1;      // workers taking requests while the learner works
    int idle_threads = 0;  // ... while it is idle; 0 = `threads`
    // A counter the learner advances as it works; empty = no learner here.
    std::function<int64_t()> learner_progress;
  };
  static constexpr int64_t kLearnerIdleMs = 2000;
  Scheduler(const Options& options, Counters* counters);
  ~Scheduler();

  void Start();
  void Stop();
  // Queues a request. ResourceExhausted when the queue is full.
  [[nodiscard]] absl::StatusOr<std::shared_ptr<GenerationStream>> Submit(GenerationRequest r);
  int running() const { return running_.load(); }
  int waiting() const;

 private:
  struct Job;
  struct Active;
  struct Group;
  struct Worker;
  void Loop(Worker* w);
  void Admit(Worker* w, std::vector<std::unique_ptr<Job>>* jobs);
  // Workers that may take requests now. REQUIRES: mu_ held.
  int AllowedWorkers();
  // Puts the newest `keep_tokens` of `a`'s context into a KV-cache row of
  // `g` and sets `a`'s next-token logits.
  void Prefill(Active* a, Group* g, int keep_tokens);
  // Samples the next token of `a`; true if the sequence goes on.
  bool Advance(Active* a, Group* g);
  // Ends `a` with a kDone event; `flush` releases held-back text.
  void Finish(Active* a, const std::string& reason, bool flush);
  void Observe(const Job& job, int64_t now_ms, int tokens);

  Options options_;
  Counters* counters_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<Worker>> workers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                   // GUARDED_BY(mu_)
  int64_t learner_seen_ = -1;               // GUARDED_BY(mu_)
  int64_t learner_moved_ms_ = 0;            // GUARDED_BY(mu_)
  std::atomic<int> running_{0};
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_SCHEDULER_H_

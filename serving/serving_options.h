// Options struct of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::serving).
#ifndef STREAMLM_SERVING_SERVING_OPTIONS_H_
#define STREAMLM_SERVING_SERVING_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The serving.* keys: the serving endpoint (serving/server.h).
struct ServingOptions {
  std::string admin_token;  // empty = admin API open
  int max_tokens = 256;
  int poll_ms = 1000;
  // Compute budget and limits of the serving scheduler (continuous batching).
  // Serving computes on this many cores (one worker thread each) while the
  // learner works; 0 = half the cores (>= 1). While the learner is idle it
  // may use serving.idle_threads; 0 = all cores.
  int threads = 0;
  int idle_threads = 0;
  int max_batch = 16;   // sequences decoded together
  int max_queue = 64;   // requests waiting beyond that; more get 429
  double request_timeout_s = 300;  // per-request deadline; 0 = none
  int64_t max_body_bytes = 1 << 20;  // larger request bodies get 413
  // Hostile clients (serving/README.md "Connections"): connections served at
  // once (a thread each; more get 503), and whole deadlines in seconds for a
  // request's headers (from accept or the previous response) and its body
  // (from the end of the headers); a late request gets 408 and is closed.
  int max_connections = 1024;
  double header_timeout_s = 10;
  double body_timeout_s = 30;
  // Completions remembered for POST /v1/feedback (by id), and for how long.
  int completion_log_size = 10000;
  double completion_log_ttl_s = 3600;
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_SERVING_OPTIONS_H_

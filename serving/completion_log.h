// CompletionLog: what serving answered lately, by completion id, so that
// POST /v1/feedback can turn "completion X was good" into a training record
// with the prompt the model saw and the text it wrote.
//
// Bounded two ways: at most `capacity` entries (the oldest is forgotten
// first) and `ttl_s` seconds per entry (an older one is expired: Get says
// so, and its texts are freed at the next Add). Expired entries keep only
// their id and time, still counting toward `capacity`, so that Get can tell
// "expired" from "unknown" for as long as the id is remembered.
//
// Thread-safe: every method takes one internal mutex.
#ifndef STREAMLM_SERVING_COMPLETION_LOG_H_
#define STREAMLM_SERVING_COMPLETION_LOG_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamlm {

struct CompletionRecord {
  std::string id;        // cmpl-... / chatcmpl-...
  // The prompt exactly as the tokenizer saw it (for chat: the rendered chat
  // template, special-token text included).
  std::string prompt;
  std::string response;  // the generated text the client received (no echo)
  std::string snapshot;  // the snapshot that produced it
  int64_t created_ms = 0;  // set by Add from the log's clock
};

class CompletionLog {
 public:
  // Milliseconds on any clock that does not run backwards.
  using Clock = std::function<int64_t()>;

  // `capacity` 0 turns capture off (Add does nothing; Get is NotFound).
  // `now_ms` defaults to the wall clock (NowMs()).
  CompletionLog(size_t capacity, double ttl_s, Clock now_ms = nullptr);

  // Remembers `record` (its created_ms is set to now), forgetting the oldest
  // entry when full. AlreadyExists when the id is already remembered (the
  // entry is left as it was).
  [[nodiscard]] absl::Status Add(CompletionRecord record);

  // The entry of `id`. NotFound when it is expired (message: "... expired
  // ...", IsExpired() true) or not remembered (message: "... unknown ...":
  // never recorded, or forgotten to make room).
  [[nodiscard]] absl::StatusOr<CompletionRecord> Get(const std::string& id) const;

  // True for Get's NotFound of an expired entry.
  static bool IsExpired(const absl::Status& status);

  size_t capacity() const { return capacity_; }
  double ttl_s() const { return ttl_s_; }
  // Entries remembered, expired ones included (<= capacity()).
  size_t size() const;

 private:
  bool ExpiredAt(const CompletionRecord& r, int64_t now_ms) const;

  const size_t capacity_;
  const double ttl_s_;
  const Clock now_ms_;

  mutable std::mutex mu_;
  std::deque<std::string> order_;                            // GUARDED_BY(mu_) oldest first
  std::unordered_map<std::string, CompletionRecord> by_id_;  // GUARDED_BY(mu_)
  // The first `freed_` entries of order_ are expired and their texts freed.
  size_t freed_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace streamlm

#endif  // STREAMLM_SERVING_COMPLETION_LOG_H_

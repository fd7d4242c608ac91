#include "serving/completion_log.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/json_util.h"

namespace streamlm {
namespace {

constexpr char kExpiredPayload[] = "streamlm/completion_log/expired";

}  // namespace

CompletionLog::CompletionLog(size_t capacity, double ttl_s, Clock now_ms)
    : capacity_(capacity), ttl_s_(ttl_s),
      now_ms_(now_ms ? std::move(now_ms) : Clock([] { return NowMs(); })) {}

bool CompletionLog::ExpiredAt(const CompletionRecord& r, int64_t now_ms) const {
  return static_cast<double>(now_ms - r.created_ms) > ttl_s_ * 1000.0;
}

absl::Status CompletionLog::Add(CompletionRecord record) {
  if (capacity_ == 0) return absl::OkStatus();
  const int64_t now = now_ms_();
  std::lock_guard<std::mutex> lock(mu_);
  if (by_id_.count(record.id) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("completion '", record.id, "' is already in the completion log"));
  }
  // Free the texts of entries that expired (a prefix of order_: entries are
  // added in time order); their ids stay until evicted.
  while (freed_ < order_.size()) {
    CompletionRecord& old = by_id_[order_[freed_]];
    if (!ExpiredAt(old, now)) break;
    std::string().swap(old.prompt);
    std::string().swap(old.response);
    ++freed_;
  }
  while (order_.size() >= capacity_) {
    by_id_.erase(order_.front());
    order_.pop_front();
    if (freed_ > 0) --freed_;
  }
  record.created_ms = now;
  order_.push_back(record.id);
  by_id_.emplace(record.id, std::move(record));
  return absl::OkStatus();
}

absl::StatusOr<CompletionRecord> CompletionLog::Get(const std::string& id) const {
  const int64_t now = now_ms_();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) {
    if (capacity_ == 0) {
      return absl::NotFoundError(absl::StrCat(
          "completion '", id,
          "' is unknown: completions are not recorded (serving.completion_log_size is 0)"));
    }
    return absl::NotFoundError(absl::StrCat(
        "completion '", id,
        "' is unknown: this server never answered it, or has forgotten it (it remembers the "
        "last ", capacity_, " completions, serving.completion_log_size)"));
  }
  if (ExpiredAt(it->second, now)) {
    absl::Status s = absl::NotFoundError(absl::StrCat(
        "completion '", id, "' expired: feedback is accepted for ", ttl_s_,
        " s after a completion (serving.completion_log_ttl_s); it was made ",
        (now - it->second.created_ms) / 1000, " s ago"));
    s.SetPayload(kExpiredPayload, absl::Cord("1"));
    return s;
  }
  return it->second;
}

bool CompletionLog::IsExpired(const absl::Status& status) {
  return absl::IsNotFound(status) && status.GetPayload(kExpiredPayload).has_value();
}

size_t CompletionLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return order_.size();
}

}  // namespace streamlm

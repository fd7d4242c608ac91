#include "ingest/text_source.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/log.h"

namespace streamlm {

TextSource::TextSource(TextSourceOptions options,
                       std::unique_ptr<KafkaConsumer> consumer,
                       std::unique_ptr<KafkaProducer> rejects,
                       Counters* counters)
    : options_(std::move(options)),
      consumer_(std::move(consumer)),
      rejects_(std::move(rejects)),
      counters_(counters) {}

absl::StatusOr<std::unique_ptr<TextSource>> TextSource::Create(
    const TextSourceOptions& options, Counters* counters) {
  auto consumer = KafkaConsumer::Create(options.brokers, options.group,
                                        options.topic, options.start_offsets,
                                        options.share);
  if (!consumer.ok()) return consumer.status();
  auto rejects = KafkaProducer::Create(options.brokers);
  if (!rejects.ok()) return rejects.status();
  return std::unique_ptr<TextSource>(new TextSource(
      options, std::move(*consumer), std::move(*rejects), counters));
}

absl::StatusOr<std::vector<SourceRecord>> TextSource::Poll(size_t max_records,
                                                           int timeout_ms) {
  std::vector<SourceRecord> out;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(timeout_ms);
  int wait_ms = timeout_ms;
  while (out.size() < max_records) {
    auto msg = consumer_->Poll(wait_ms);
    if (!msg.ok()) {
      ++consume_errors_;
      last_error_ = msg.status();
      counters_->Add("streamlm_kafka_consume_errors_total", 1, "topic=" + options_.topic);
      if (!absl::IsUnavailable(msg.status())) {
        SLM_LOG(kWarning) << "consuming " << options_.topic
                          << " failed and cannot be retried: " << msg.status();
        return msg.status();
      }
      SLM_LOG(kWarning) << "consuming " << options_.topic
                        << " failed (transient; retrying): " << msg.status();
      // Retried until the deadline, without spinning on a repeated error.
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now()).count();
      if (left <= 0) break;
      wait_ms = static_cast<int>(std::min<int64_t>(left, 100));
      continue;
    }
    if (!msg->has_value()) {
      if (std::chrono::steady_clock::now() >= deadline || !out.empty()) break;
      // A retry after an error waits the rest of the time.
      wait_ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     deadline - std::chrono::steady_clock::now()).count());
      if (wait_ms <= 0) break;
      continue;
    }
    wait_ms = 0;  // after the first record, drain what is already here
    KafkaMessage& m = **msg;
    first_seen_.emplace(m.partition, m.offset);
    counters_->Add("streamlm_records_consumed_total", 1);
    counters_->Add("streamlm_bytes_consumed_total", static_cast<int64_t>(m.value.size()));
    out.push_back(SourceRecord{m.partition, m.offset, std::move(m.key), std::move(m.value),
                               m.timestamp_ms});
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  if (std::optional<int64_t> lag = consumer_->Lag()) {
    counters_->Set("streamlm_kafka_lag_records", static_cast<double>(*lag),
                   "topic=" + options_.topic);
  }
  int64_t position = 0;
  for (const auto& [p, next] : consumer_->positions()) position += next;
  counters_->Set("streamlm_kafka_position_records", static_cast<double>(position),
                 "topic=" + options_.topic);
  return out;
}

absl::Status TextSource::Commit(const std::map<int32_t, int64_t>& next) {
  absl::Status s = consumer_->Commit(next);
  if (!s.ok()) {
    counters_->Add("streamlm_kafka_commit_errors_total", 1, "topic=" + options_.topic);
  }
  return s;
}

void TextSource::Reject(const SourceRecord& r, std::string_view reason,
                        const std::string& detail) {
  ++rejected_;
  counters_->Add("streamlm_records_rejected_total", 1, std::string(reason));
  Json reject = MakeRejectRecord(options_.topic, r.partition, r.offset, reason, detail, r.payload);
  // The record's own key is kept in the value; the reject's key is the
  // record's position, the same however often the record is re-read.
  reject["source_key"] = EscapeInvalidUtf8(r.key);
  SLM_LOG(kDebug) << "rejected " << reject.dump();
  absl::Status s = rejects_->Produce(options_.rejects_topic,
                                     RejectKey(options_.topic, r.partition, r.offset),
                                     reject.dump());
  if (!s.ok()) {
    ++reject_write_errors_;
    SLM_LOG(kWarning) << "cannot write reject: " << s;
  }
}

absl::Status TextSource::FlushRejects(int timeout_ms) {
  absl::Status s = rejects_->Flush(timeout_ms);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat("rejects of ", options_.topic,
                                               " not yet delivered to ", options_.rejects_topic,
                                               ": ", s.message()));
  }
  const int64_t failures = rejects_->delivery_failures();
  const int64_t lost = failures - reject_delivery_failures_seen_ + reject_write_errors_;
  reject_delivery_failures_seen_ = failures;
  reject_write_errors_ = 0;
  if (lost > 0) {
    return absl::DataLossError(absl::StrCat(lost, " reject(s) of ", options_.topic,
                                            " could not be written to ",
                                            options_.rejects_topic));
  }
  return absl::OkStatus();
}

}  // namespace streamlm

#include "ingest/text_source.h"

#include <chrono>

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
                                        options.topic, options.start_offsets);
  if (!consumer.ok()) return consumer.status();
  auto rejects = KafkaProducer::Create(options.brokers);
  if (!rejects.ok()) return rejects.status();
  return std::unique_ptr<TextSource>(new TextSource(
      options, std::move(*consumer), std::move(*rejects), counters));
}

std::vector<SourceRecord> TextSource::Poll(size_t max_records, int timeout_ms) {
  std::vector<SourceRecord> out;
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(timeout_ms);
  int wait_ms = timeout_ms;
  while (out.size() < max_records) {
    auto msg = consumer_->Poll(wait_ms);
    if (!msg.ok() || !msg->has_value()) break;
    wait_ms = 0;  // after the first record, drain what is already here
    KafkaMessage& m = **msg;
    first_seen_.emplace(m.partition, m.offset);
    counters_->Add("streamlm_records_consumed_total", 1);
    counters_->Add("streamlm_bytes_consumed_total", static_cast<int64_t>(m.value.size()));
    out.push_back(SourceRecord{m.partition, m.offset, std::move(m.key), std::move(m.value),
                               m.timestamp_ms});
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  return out;
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
  if (!s.ok()) SLM_LOG(kWarning) << "cannot write reject: " << s;
}

}  // namespace streamlm

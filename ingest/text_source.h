// TextSource: the learner's view of `streamlm.text`. Reads through a
// consumer that assigns every partition at its stored offset (the group id
// only carries lag-monitoring commits) and hands the raw records to the
// ingest pipeline (pipeline.h); every record the pipeline cannot use comes
// back through Reject(), which counts it in
// `streamlm_records_rejected_total{reason=...}` and writes it to
// `streamlm.rejects`.
//
// Not thread-safe: one thread polls.
#ifndef STREAMLM_INGEST_TEXT_SOURCE_H_
#define STREAMLM_INGEST_TEXT_SOURCE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "ingest/record.h"

namespace streamlm {

struct SourceRecord {
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;      // as on the topic
  std::string payload;  // the raw value
  int64_t timestamp_ms = 0;  // Kafka message timestamp; 0 when absent
};

struct TextSourceOptions {
  std::string brokers;
  std::string group;
  std::string topic;
  std::string rejects_topic;
  std::map<int32_t, int64_t> start_offsets;  // partition -> next offset
  PartitionShare share;  // a data-parallel learner's partitions (all by default)
};

class TextSource {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<TextSource>> Create(
      const TextSourceOptions& options, Counters* counters);

  // Up to `max_records` records, waiting at most `timeout_ms` for the first.
  // Consumer errors are never swallowed: each is counted in
  // `streamlm_kafka_consume_errors_total{topic=...}`, logged as a warning
  // naming the topic and the error, and kept in last_error(). A transient
  // one (UnavailableError from KafkaConsumer::Poll: broker down, timeout,
  // leader change) is retried within `timeout_ms` and the records read so far
  // are returned; any other (authorization, fatal client error) is returned
  // as the status, and the records of this call are not: the caller must
  // stop without checkpointing positions() (the learner does; the records
  // are read again from its last checkpoint on restart). Each call sets
  // the gauges `streamlm_kafka_lag_records{topic=...}`: records on the
  // topic not yet read (KafkaConsumer::Lag; as of the last fetch, so it
  // reads 0 while the broker is away), and
  // `streamlm_kafka_position_records{topic=...}`: the next offsets to read,
  // summed over partitions (what was read, for a topic that starts at 0).
  [[nodiscard]] absl::StatusOr<std::vector<SourceRecord>> Poll(size_t max_records,
                                                               int timeout_ms);
  // Consumer errors seen since Create() (transient and not), and the last.
  int64_t consume_errors() const { return consume_errors_; }
  const absl::Status& last_error() const { return last_error_; }

  // Next offset per partition covering every record seen, used or rejected.
  std::map<int32_t, int64_t> positions() const { return consumer_->positions(); }
  // Rejects a record the pipeline cannot use: counted by reason and written
  // to the rejects topic under the key RejectKey(topic, partition, offset)
  // (record.h), so a record re-read after a restart is rejected under the
  // same key; the record's own key is the value's `source_key`.
  void Reject(const SourceRecord& r, std::string_view reason, const std::string& detail);

  // Waits until every reject written so far is on the rejects topic: the
  // learner calls it before a checkpoint moves past their records, which a
  // restart would not read again. UnavailableError when `timeout_ms` passes
  // first (broker down: call again); DataLossError when one could not be
  // queued or delivered at all (then no checkpoint may cover it: its record
  // must be read, and rejected, again).
  [[nodiscard]] absl::Status FlushRejects(int timeout_ms);

  // Offset of the first record seen per partition since Create().
  const std::map<int32_t, int64_t>& first_seen() const { return first_seen_; }
  // Rejected records seen so far.
  int64_t rejected() const { return rejected_; }
  // Commits next-offsets to the consumer group, for lag monitoring only
  // (KafkaConsumer::Commit: a broker-side failure of the previous commit is
  // returned by this one). A failure is counted in
  // `streamlm_kafka_commit_errors_total{topic=...}` and returned; the caller
  // decides whether it matters (the learner's offsets are in its checkpoint).
  [[nodiscard]] absl::Status Commit(const std::map<int32_t, int64_t>& next);
  const std::string& topic() const { return options_.topic; }

 private:
  TextSource(TextSourceOptions options, std::unique_ptr<KafkaConsumer> consumer,
             std::unique_ptr<KafkaProducer> rejects, Counters* counters);
  TextSourceOptions options_;
  std::unique_ptr<KafkaConsumer> consumer_;
  std::unique_ptr<KafkaProducer> rejects_;
  Counters* counters_;
  int64_t rejected_ = 0;
  int64_t reject_write_errors_ = 0;  // Produce() refused since the last FlushRejects
  int64_t reject_delivery_failures_seen_ = 0;
  int64_t consume_errors_ = 0;
  absl::Status last_error_;
  std::map<int32_t, int64_t> first_seen_;
};

}  // namespace streamlm

#endif  // STREAMLM_INGEST_TEXT_SOURCE_H_

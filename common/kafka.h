// Thin wrappers over librdkafka's C API that turn its error codes into
// absl::Status values with the broker address and topic in the message.
#ifndef STREAMLM_COMMON_KAFKA_H_
#define STREAMLM_COMMON_KAFKA_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace streamlm {

struct KafkaMessage {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  int64_t timestamp_ms = 0;
};

// Returns OK when a broker at `brokers` answers a metadata request within
// `timeout_ms`; otherwise an Unavailable error naming the address.
[[nodiscard]] absl::Status CheckBrokerReachable(const std::string& brokers,
                                                int timeout_ms);

// Number of partitions of `topic`, or NotFound.
[[nodiscard]] absl::StatusOr<int> TopicPartitionCount(
    const std::string& brokers, const std::string& topic, int timeout_ms);

// Asynchronous producer with delivery reports counted.
// Thread-safe: Produce() may be called from any thread.
class KafkaProducer {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaProducer>> Create(
      const std::string& brokers);
  ~KafkaProducer();

  // Queues one record. An empty `key` produces a null key; `partition` < 0
  // lets the key choose the partition. A record not delivered within 5
  // minutes (the broker away) counts in delivery_failures().
  [[nodiscard]] absl::Status Produce(const std::string& topic,
                                     std::string_view key,
                                     std::string_view value, int32_t partition = -1);
  // Waits until every queued record is delivered or `timeout_ms` passes.
  [[nodiscard]] absl::Status Flush(int timeout_ms);
  int64_t delivery_failures() const { return delivery_failures_.load(); }

 private:
  KafkaProducer(rd_kafka_t* rk, std::string brokers);
  static void OnDelivery(rd_kafka_t* rk, const void* msg, void* opaque);
  rd_kafka_t* rk_;
  std::string brokers_;
  std::atomic<int64_t> delivery_failures_{0};
};

// What librdkafka reports through callbacks (run inside
// rd_kafka_consumer_poll) until KafkaConsumer hands it back: the failure of
// an asynchronous commit (returned by Commit) and client errors such as a
// lost broker connection (returned by Poll). Internal to KafkaConsumer.
struct KafkaConsumerEvents {
  std::mutex mu;
  std::string commit_failure;  // GUARDED_BY(mu); empty when none is pending
  int client_error = 0;        // GUARDED_BY(mu); rd_kafka_resp_err_t, 0 = none
  std::string client_error_text;  // GUARDED_BY(mu)
};

// The partitions of a topic one of `count` data-parallel learners reads:
// partition p belongs to index p % count.
struct PartitionShare {
  int index = 0;
  int count = 1;
  bool Has(int32_t partition) const { return partition % count == index; }
};

// Consumer of every partition of one topic (or of its `share` of them) with manual offsets: it assigns
// the partitions itself (no group rebalancing, so a restarted learner starts
// reading at once), each at the position this object knows (from
// `start_offsets`, then advanced by Poll) or at the beginning when it knows
// none. `group` is used only to commit offsets for lag monitoring; nothing
// is auto-committed. A topic that does not exist yet is assigned once it
// appears. Not thread-safe: use from one thread.
class KafkaConsumer {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaConsumer>> Create(
      const std::string& brokers, const std::string& group,
      const std::string& topic, std::map<int32_t, int64_t> start_offsets,
      PartitionShare share = {});
  ~KafkaConsumer();

  // Next record, std::nullopt on timeout. An error librdkafka reports on
  // the consumer (a message-level error, or a client error such as a lost
  // broker connection from its error callback) is returned, never
  // swallowed, its message naming the topic, the partition and librdkafka's
  // error: UnavailableError when it is
  // transient (broker down, timeouts, leader changes: librdkafka recovers
  // and a later Poll reads on), PermissionDeniedError for authorization and
  // authentication failures and InternalError for a fatal client error
  // (both need an operator). The position does not advance on an error.
  [[nodiscard]] absl::StatusOr<std::optional<KafkaMessage>> Poll(
      int timeout_ms);
  // Commits next-offsets to the group (for lag monitoring only). The commit
  // is asynchronous: its broker-side failure is reported by librdkafka
  // during a later Poll and returned by the next Commit (which still sends
  // its own offsets), as UnavailableError naming the topic and the error.
  [[nodiscard]] absl::Status Commit(const std::map<int32_t, int64_t>& next);
  // Next offset to read per partition, as far as this consumer knows.
  std::map<int32_t, int64_t> positions() const;
  // Records between this consumer's positions and the high watermarks of
  // the partitions it reads, summed, as of the last fetch responses
  // (librdkafka's cached watermarks; no request is sent). nullopt until
  // every partition is assigned and its watermark known. Call from the
  // polling thread.
  std::optional<int64_t> Lag() const;

 private:
  KafkaConsumer(rd_kafka_t* rk, std::string brokers, std::string topic,
                std::map<int32_t, int64_t> start,
                std::unique_ptr<KafkaConsumerEvents> events, PartitionShare share);
  // Assigns all partitions (of the share) if not done yet and the topic exists.
  void MaybeAssign();
  rd_kafka_t* rk_;
  std::string brokers_;
  std::string topic_;
  PartitionShare share_;
  int assigned_partitions_ = 0;  // the topic's partitions, once assigned
  int64_t next_assign_attempt_ms_ = 0;
  mutable std::mutex mu_;
  std::map<int32_t, int64_t> positions_;  // GUARDED_BY(mu_)
  std::unique_ptr<KafkaConsumerEvents> events_;  // the callbacks' opaque
};

// Reads every record of `topic` (all partitions) from the beginning up to
// the high watermark seen at the call, without a consumer group.
[[nodiscard]] absl::StatusOr<std::vector<KafkaMessage>> ReadWholeTopic(
    const std::string& brokers, const std::string& topic, int timeout_ms);

}  // namespace streamlm

#endif  // STREAMLM_COMMON_KAFKA_H_

// EmbeddedBroker: a Kafka-protocol broker inside this process, built on
// librdkafka's mock cluster (rdkafka_mock.h). Any Kafka client (kcat,
// confluent-kafka, librdkafka) can produce to and consume from it; it keeps
// everything in memory, and with a journal directory also on disk
// (broker_journal.h), so a restart brings every record back at its offset.
//
// The mock cluster listens on an ephemeral port of its own choosing. To give
// users a fixed bootstrap address (127.0.0.1:9092 by default) a small TCP
// relay listens there and forwards each connection to the mock broker; the
// metadata the broker returns then points clients at its own port.
//
// Thread-safety: construct and destroy from one thread; bootstrap() is const.
#ifndef STREAMLM_COMMON_BROKER_H_
#define STREAMLM_COMMON_BROKER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace streamlm {

class BrokerJournal;

class EmbeddedBroker {
 public:
  // Starts the broker. `port` 0 exposes the mock broker's own port.
  // `topics` are created with `partitions` partitions each. With
  // `journal_dir`, what it holds is replayed from there before any client
  // can connect, and kept there (BrokerJournal).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EmbeddedBroker>> Start(
      int port, const std::vector<std::string>& topics, int partitions,
      const std::string& journal_dir = "");
  ~EmbeddedBroker();

  // "127.0.0.1:PORT": what clients use as bootstrap.servers.
  const std::string& bootstrap() const { return bootstrap_; }

  // Creates a topic (no-op if it exists).
  [[nodiscard]] absl::Status CreateTopic(const std::string& topic,
                                         int partitions);

  // Fault injection for tests: the next `errors.size()` requests of Kafka
  // protocol API `api_key` (kApiFetch, kApiOffsetCommit, ...) are answered
  // with these librdkafka error codes (rd_kafka_resp_err_t values), one per
  // request, in order (rd_kafka_mock_push_request_errors_array).
  static constexpr int16_t kApiProduce = 0;
  static constexpr int16_t kApiFetch = 1;
  static constexpr int16_t kApiOffsetCommit = 8;
  void PushRequestErrors(int16_t api_key, const std::vector<int>& errors);
  // Drops the errors still queued for `api_key`.
  void ClearRequestErrors(int16_t api_key);

  // Outage drills: down disconnects every client and refuses new
  // connections until up again (rd_kafka_mock_broker_set_down/_up); what
  // the topics hold is kept. `streamlm broker` maps SIGUSR1/SIGUSR2 to these.
  [[nodiscard]] absl::Status SetDown(bool down);

  // Shutting down: closes the journal (if any) after it has kept
  // everything the topics hold. From then on the broker refuses new records
  // with a retriable error (producers keep them and retry, e.g. against the
  // restarted broker), so none is acknowledged and then lost. The
  // destructor does it too.
  [[nodiscard]] absl::Status CloseJournal();
  // Records replayed from the journal at start.
  int64_t replayed() const { return replayed_; }

 private:
  EmbeddedBroker() = default;
  void AcceptLoop();
  static void Relay(int client_fd, std::string target);

  std::unique_ptr<BrokerJournal> journal_;  // before the cluster goes
  int64_t replayed_ = 0;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string mock_address_;
  std::string bootstrap_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
};

}  // namespace streamlm

#endif  // STREAMLM_COMMON_BROKER_H_

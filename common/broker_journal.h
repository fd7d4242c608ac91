// BrokerJournal: what an EmbeddedBroker's topics hold, kept on disk so a
// restarted broker (`streamlm broker --journal DIR`) has every record back
// at the offset it had.
//
// librdkafka's mock cluster keeps records in memory and has no hook on its
// produce path, so the journal is a client of it, in the broker's process:
// a consumer reads every partition of the journaled topics as records
// arrive and appends them to DIR/<topic>/<partition>.log, each framed with
// its length and CRC-32, with an fdatasync after each batch. On start,
// before the broker's address accepts a client, each partition's log is
// produced back, in order, to the fresh broker: the mock cluster numbers a
// partition's records from 0 in the order they arrive, so each record gets
// its old offset back; the high watermarks are checked against the logs. A
// torn last record (a crash in the middle of an append) is cut off and
// logged.
//
// What it keeps: a clean stop (Stop(), which first reads up to the high
// watermarks) loses nothing; a crash loses what arrived in the last poll
// (about 100 ms) before it was appended. Consumer group offsets are not
// kept (StreamLM's consumers keep theirs in their stores), nor topics other
// than those given.
//
// Thread-safety: Open and Stop from one thread; the mirror runs on a
// thread of its own.
#ifndef STREAMLM_COMMON_BROKER_JOURNAL_H_
#define STREAMLM_COMMON_BROKER_JOURNAL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct rd_kafka_s rd_kafka_t;

namespace streamlm {

class BrokerJournal {
 public:
  // Replays `dir` (created if missing) into the broker at `address`, whose
  // `topics` have `partitions` partitions each and hold nothing yet, then
  // mirrors new records until Stop(). A log of a partition the broker does
  // not have is an error naming it.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BrokerJournal>> Open(
      const std::string& dir, const std::string& address, const std::vector<std::string>& topics,
      int partitions);
  ~BrokerJournal();
  BrokerJournal(const BrokerJournal&) = delete;
  BrokerJournal& operator=(const BrokerJournal&) = delete;

  // Records produced back at Open.
  int64_t replayed() const { return replayed_; }
  // Records in the journal (replayed and mirrored since).
  int64_t records() const;
  // Mirrors up to the broker's high watermarks (at most `timeout_ms`),
  // syncs and closes the logs. Idempotent.
  [[nodiscard]] absl::Status Stop(int timeout_ms);

 private:
  using Partition = std::pair<std::string, int32_t>;
  struct Log;
  BrokerJournal() = default;
  void MirrorLoop();
  [[nodiscard]] absl::Status SyncDirty();

  std::string dir_;
  rd_kafka_t* consumer_ = nullptr;
  std::map<Partition, std::unique_ptr<Log>> logs_;  // mirror thread, then Stop
  mutable std::mutex mu_;
  std::map<Partition, int64_t> next_;  // GUARDED_BY(mu_): records per partition
  int64_t replayed_ = 0;
  std::atomic<bool> stop_{false};
  std::thread mirror_;
  bool stopped_ = false;
};

}  // namespace streamlm

#endif  // STREAMLM_COMMON_BROKER_JOURNAL_H_

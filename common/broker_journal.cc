#include "common/broker_journal.h"

#include <librdkafka/rdkafka.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace streamlm {
namespace {

// One record: [u32 payload bytes][u32 CRC-32 of payload] payload, where
// payload = [i64 timestamp][i32 key bytes, -1 null][key][i32 value bytes,
// -1 null][value]; integers little-endian as on every host StreamLM runs on.
struct Record {
  int64_t timestamp = 0;
  std::optional<std::string> key, value;
};

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

std::string Frame(const Record& r) {
  std::string payload;
  Put<int64_t>(&payload, r.timestamp);
  for (const auto* field : {&r.key, &r.value}) {
    Put<int32_t>(&payload, field->has_value() ? static_cast<int32_t>((*field)->size()) : -1);
    if (field->has_value()) payload += **field;
  }
  std::string out;
  Put<uint32_t>(&out, static_cast<uint32_t>(payload.size()));
  Put<uint32_t>(&out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                                  payload.size())));
  return out + payload;
}

template <typename T>
bool Get(const std::string& in, size_t* at, T* v) {
  if (in.size() - *at < sizeof(T)) return false;
  std::memcpy(v, in.data() + *at, sizeof(T));
  *at += sizeof(T);
  return true;
}

// Parses `bytes`; *good is the length of its whole, intact records.
std::vector<Record> Parse(const std::string& bytes, size_t* good) {
  std::vector<Record> out;
  size_t at = 0;
  *good = 0;
  while (at < bytes.size()) {
    uint32_t len = 0, crc = 0;
    if (!Get(bytes, &at, &len) || !Get(bytes, &at, &crc) || bytes.size() - at < len) break;
    const std::string payload = bytes.substr(at, len);
    at += len;
    if (crc32(0, reinterpret_cast<const Bytef*>(payload.data()), payload.size()) != crc) break;
    Record r;
    size_t p = 0;
    bool ok = Get(payload, &p, &r.timestamp);
    for (auto* field : {&r.key, &r.value}) {
      int32_t n = 0;
      ok = ok && Get(payload, &p, &n) && (n < 0 || payload.size() - p >= size_t(n));
      if (!ok) break;
      if (n >= 0) {
        *field = payload.substr(p, n);
        p += n;
      }
    }
    if (!ok) break;
    out.push_back(std::move(r));
    *good = at;
  }
  return out;
}

rd_kafka_t* NewClient(rd_kafka_type_t type, const std::string& address,
                      const std::vector<std::pair<const char*, const char*>>& settings,
                      std::string* error) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", address.c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      *error = err;
      rd_kafka_conf_destroy(conf);
      return nullptr;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk == nullptr) *error = err;
  return rk;
}

std::string LogPath(const std::string& dir, const std::string& topic, int32_t partition) {
  return absl::StrCat(dir, "/", topic, "/", partition, ".log");
}

}  // namespace

struct BrokerJournal::Log {
  std::string path;
  FILE* file = nullptr;
  bool dirty = false;
  ~Log() {
    if (file != nullptr) std::fclose(file);
  }
};

absl::StatusOr<std::unique_ptr<BrokerJournal>> BrokerJournal::Open(
    const std::string& dir, const std::string& address, const std::vector<std::string>& topics,
    int partitions) {
  std::unique_ptr<BrokerJournal> j(new BrokerJournal());
  j->dir_ = dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("journal '", dir, "': ", ec.message()));
  // A log the broker has no partition for would be dropped: refuse.
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string topic = entry.path().filename().string();
    if (!entry.is_directory()) continue;
    const bool known = std::find(topics.begin(), topics.end(), topic) != topics.end();
    for (const auto& f : std::filesystem::directory_iterator(entry.path(), ec)) {
      int32_t p = -1;
      if (f.path().extension() != ".log" || !absl::SimpleAtoi(f.path().stem().string(), &p)) {
        continue;
      }
      if (!known || p >= partitions) {
        return absl::FailedPreconditionError(
            absl::StrCat("journal '", dir, "' holds ", topic, "[", p,
                         "], which this broker does not have (", partitions, " partitions of ",
                         topics.size(), " topics): start it with the broker.partitions it had"));
      }
    }
  }
  std::string error;
  rd_kafka_t* producer = NewClient(RD_KAFKA_PRODUCER, address,
                                   {{"enable.idempotence", "false"},
                                    {"max.in.flight.requests.per.connection", "1"},
                                    {"acks", "all"},
                                    {"linger.ms", "5"}},
                                   &error);
  if (producer == nullptr) return absl::InternalError("journal replay: " + error);
  absl::Status status;
  for (const std::string& topic : topics) {
    for (int32_t p = 0; p < partitions && status.ok(); ++p) {
      const std::string path = LogPath(dir, topic, p);
      std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
      std::string bytes;
      if (FILE* f = std::fopen(path.c_str(), "rb")) {
        char buf[1 << 16];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
        std::fclose(f);
      }
      size_t good = 0;
      const std::vector<Record> records = Parse(bytes, &good);
      if (good < bytes.size()) {
        SLM_LOG(kWarning) << "journal: " << path << ": cut off " << bytes.size() - good
                          << " bytes of a torn or corrupt last record (after " << records.size()
                          << " records)";
        std::filesystem::resize_file(path, good, ec);
        if (ec) status = absl::UnavailableError(absl::StrCat(path, ": ", ec.message()));
      }
      for (const Record& r : records) {
        const void* key = r.key.has_value() ? r.key->data() : nullptr;
        const size_t key_len = r.key.has_value() ? r.key->size() : 0;
        void* value = r.value.has_value() ? const_cast<char*>(r.value->data()) : nullptr;
        const size_t value_len = r.value.has_value() ? r.value->size() : 0;
        const int64_t timestamp = std::max<int64_t>(r.timestamp, 0);
        while (status.ok()) {
          rd_kafka_resp_err_t e = rd_kafka_producev(
              producer, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(p),
              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
              RD_KAFKA_V_VALUE(value, value_len), RD_KAFKA_V_TIMESTAMP(timestamp), RD_KAFKA_V_END);
          if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(producer, 10);
            continue;
          }
          if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            status = absl::InternalError(
                absl::StrCat("journal replay of ", topic, "[", p, "]: ", rd_kafka_err2str(e)));
          }
          break;
        }
      }
      j->replayed_ += static_cast<int64_t>(records.size());
      j->next_[{topic, p}] = static_cast<int64_t>(records.size());
    }
  }
  if (status.ok() && rd_kafka_flush(producer, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    status = absl::UnavailableError("journal replay: the broker did not take every record");
  }
  // Every record back at its offset: the high watermarks are the logs' counts.
  for (const auto& [tp, count] : j->next_) {
    if (!status.ok()) break;
    int64_t low = 0, high = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(producer, tp.first.c_str(), tp.second, &low, &high, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR || high != count) {
      status = absl::DataLossError(
          absl::StrCat("journal replay of ", tp.first, "[", tp.second, "]: the broker holds ", high,
                       " records, the journal ", count, e != RD_KAFKA_RESP_ERR_NO_ERROR ? ": " : "",
                       e != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(e) : ""));
    }
  }
  rd_kafka_destroy(producer);
  if (!status.ok()) return status;

  // The mirror: every partition from where its log ends.
  j->consumer_ = NewClient(RD_KAFKA_CONSUMER, address,
                           {{"group.id", "streamlm-journal"},
                            {"enable.auto.commit", "false"},
                            {"enable.partition.eof", "false"},
                            {"fetch.wait.max.ms", "50"}},
                           &error);
  if (j->consumer_ == nullptr) return absl::InternalError("journal mirror: " + error);
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(j->next_.size()));
  for (const auto& [tp, count] : j->next_) {
    rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = count;
    auto log = std::make_unique<Log>();
    log->path = LogPath(dir, tp.first, tp.second);
    log->file = std::fopen(log->path.c_str(), "ab");
    if (log->file == nullptr) {
      rd_kafka_topic_partition_list_destroy(list);
      return absl::UnavailableError(
          absl::StrCat("journal: cannot append to ", log->path, ": ", std::strerror(errno)));
    }
    j->logs_[tp] = std::move(log);
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(j->consumer_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::InternalError(absl::StrCat("journal mirror: ", rd_kafka_err2str(e)));
  }
  if (j->replayed_ > 0) {
    SLM_LOG(kInfo) << "journal: " << j->replayed_ << " records back from " << dir;
  }
  j->mirror_ = std::thread([raw = j.get()] { raw->MirrorLoop(); });
  return j;
}

BrokerJournal::~BrokerJournal() {
  absl::Status s = Stop(10000);
  if (!s.ok()) SLM_LOG(kError) << s;
}

int64_t BrokerJournal::records() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t n = 0;
  for (const auto& [tp, count] : next_) n += count;
  return n;
}

void BrokerJournal::MirrorLoop() {
  int64_t last_warning_ms = 0;
  while (!stop_) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer_, 100);
    if (m == nullptr) {
      if (absl::Status s = SyncDirty(); !s.ok()) SLM_LOG(kError) << s;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR || m->rkt == nullptr) {
      rd_kafka_message_destroy(m);
      continue;
    }
    const Partition tp{rd_kafka_topic_name(m->rkt), m->partition};
    auto log = logs_.find(tp);
    if (log != logs_.end()) {
      std::lock_guard<std::mutex> lock(mu_);
      int64_t& next = next_[tp];
      if (m->offset == next) {
        Record r;
        rd_kafka_timestamp_type_t type;
        r.timestamp = rd_kafka_message_timestamp(m, &type);
        if (m->key != nullptr) r.key.emplace(static_cast<const char*>(m->key), m->key_len);
        if (m->payload != nullptr) {
          r.value.emplace(static_cast<const char*>(m->payload), m->len);
        }
        const std::string framed = Frame(r);
        if (std::fwrite(framed.data(), 1, framed.size(), log->second->file) == framed.size()) {
          log->second->dirty = true;
          ++next;
        }
      } else if (m->offset > next) {
        const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count();
        if (now - last_warning_ms > 10000) {
          last_warning_ms = now;
          SLM_LOG(kError) << "journal: " << tp.first << "[" << tp.second << "] skipped from "
                          << next << " to " << m->offset << "; those records are not kept";
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
}

absl::Status BrokerJournal::SyncDirty() {
  for (auto& [tp, log] : logs_) {
    if (!log->dirty) continue;
    if (std::fflush(log->file) != 0 || fdatasync(fileno(log->file)) != 0) {
      return absl::DataLossError(
          absl::StrCat("journal: cannot write ", log->path, ": ", std::strerror(errno)));
    }
    log->dirty = false;
  }
  return absl::OkStatus();
}

absl::Status BrokerJournal::Stop(int timeout_ms) {
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  absl::Status status;
  if (mirror_.joinable()) {
    // Up to the high watermarks of now, so a clean stop keeps everything.
    std::map<Partition, int64_t> high;
    for (const auto& [tp, log] : logs_) {
      int64_t lo = 0, hi = 0;
      if (rd_kafka_query_watermark_offsets(consumer_, tp.first.c_str(), tp.second, &lo, &hi,
                                           timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        high[tp] = hi;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      bool caught_up = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [tp, hi] : high) caught_up &= next_[tp] >= hi;
      }
      if (caught_up) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [tp, hi] : high) {
        if (next_[tp] < hi) {
          status = absl::DeadlineExceededError(absl::StrCat("journal: ", tp.first, "[", tp.second,
                                                            "] kept ", next_[tp], " of ", hi,
                                                            " records at stop"));
        }
      }
    }
    stop_ = true;
    mirror_.join();
  }
  if (absl::Status s = SyncDirty(); !s.ok() && status.ok()) status = s;
  logs_.clear();
  if (consumer_ != nullptr) {
    rd_kafka_consumer_close(consumer_);
    rd_kafka_destroy(consumer_);
    consumer_ = nullptr;
  }
  return status;
}

}  // namespace streamlm

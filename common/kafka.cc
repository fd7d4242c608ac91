#include "common/kafka.h"

#include <librdkafka/rdkafka.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace streamlm {
namespace {

absl::StatusOr<rd_kafka_conf_t*> MakeConf(
    const std::string& brokers,
    const std::vector<std::pair<std::string, std::string>>& extra) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  std::vector<std::pair<std::string, std::string>> all = {
      {"bootstrap.servers", brokers},
      {"log_level", "3"},
      {"socket.connection.setup.timeout.ms", "5000"}};
  all.insert(all.end(), extra.begin(), extra.end());
  for (const auto& [k, v] : all) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(
          absl::StrCat("kafka setting ", k, "=", v, ": ", err));
    }
  }
  return conf;
}

absl::StatusOr<rd_kafka_t*> NewClient(
    rd_kafka_type_t type, const std::string& brokers,
    const std::vector<std::pair<std::string, std::string>>& extra,
    void (*setup)(rd_kafka_conf_t*, void*) = nullptr, void* opaque = nullptr) {
  auto conf = MakeConf(brokers, extra);
  if (!conf.ok()) return conf.status();
  if (setup) setup(*conf, opaque);
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, *conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(*conf);
    return absl::InternalError(
        absl::StrCat("kafka client for ", brokers, ": ", err));
  }
  return rk;
}

absl::StatusOr<const rd_kafka_metadata_t*> FetchMetadata(
    rd_kafka_t* rk, const std::string& brokers, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat(
        "Kafka broker at ", brokers, " is unreachable (", rd_kafka_err2str(e),
        " after ", timeout_ms, " ms); check --kafka / STREAMLM_KAFKA"));
  }
  return md;
}

}  // namespace

absl::Status CheckBrokerReachable(const std::string& brokers, int timeout_ms) {
  auto rk = NewClient(RD_KAFKA_PRODUCER, brokers, {});
  if (!rk.ok()) return rk.status();
  auto md = FetchMetadata(*rk, brokers, timeout_ms);
  if (md.ok()) rd_kafka_metadata_destroy(*md);
  rd_kafka_destroy(*rk);
  return md.status();
}

absl::StatusOr<int> TopicPartitionCount(const std::string& brokers,
                                        const std::string& topic,
                                        int timeout_ms) {
  auto rk = NewClient(RD_KAFKA_PRODUCER, brokers,
                      {{"allow.auto.create.topics", "false"}});
  if (!rk.ok()) return rk.status();
  auto md = FetchMetadata(*rk, brokers, timeout_ms);
  int count = -1;
  if (md.ok()) {
    for (int i = 0; i < (*md)->topic_cnt; ++i) {
      if (topic == (*md)->topics[i].topic &&
          (*md)->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        count = (*md)->topics[i].partition_cnt;
      }
    }
    rd_kafka_metadata_destroy(*md);
  }
  rd_kafka_destroy(*rk);
  if (!md.ok()) return md.status();
  if (count < 0) {
    return absl::NotFoundError(
        absl::StrCat("topic '", topic, "' does not exist on ", brokers));
  }
  return count;
}

// ---------------------------------------------------------------- producer

KafkaProducer::KafkaProducer(rd_kafka_t* rk, std::string brokers)
    : rk_(rk), brokers_(std::move(brokers)) {}

KafkaProducer::~KafkaProducer() {
  rd_kafka_flush(rk_, 5000);
  rd_kafka_destroy(rk_);
}

void KafkaProducer::OnDelivery(rd_kafka_t*, const void* msg, void*) {
  const auto* m = static_cast<const rd_kafka_message_t*>(msg);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Each record carries its producer as the per-message opaque.
    static_cast<KafkaProducer*>(m->_private)->delivery_failures_++;
    SLM_LOG(kWarning) << "kafka delivery failed: " << rd_kafka_err2str(m->err);
  }
}

absl::StatusOr<std::unique_ptr<KafkaProducer>> KafkaProducer::Create(
    const std::string& brokers) {
  struct Setup {
    static void Apply(rd_kafka_conf_t* conf, void*) {
      rd_kafka_conf_set_dr_msg_cb(
          conf, [](rd_kafka_t* rk, const rd_kafka_message_t* m, void* op) {
            KafkaProducer::OnDelivery(rk, m, op);
          });
    }
  };
  auto rk = NewClient(RD_KAFKA_PRODUCER, brokers,
                      // A record waits up to 5 minutes for a broker that is away
                      // (librdkafka's default) before it counts as failed.
                      {{"linger.ms", "5"}, {"message.timeout.ms", "300000"}},
                      &Setup::Apply, nullptr);
  if (!rk.ok()) return rk.status();
  return std::unique_ptr<KafkaProducer>(new KafkaProducer(*rk, brokers));
}

absl::Status KafkaProducer::Produce(const std::string& topic,
                                    std::string_view key,
                                    std::string_view value, int32_t partition) {
  rd_kafka_resp_err_t e = rd_kafka_producev(
      rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
      RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_KEY(key.empty() ? nullptr : const_cast<char*>(key.data()),
                     key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_OPAQUE(this), RD_KAFKA_V_END);
  if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    rd_kafka_poll(rk_, 100);
    return Produce(topic, key, value, partition);
  }
  rd_kafka_poll(rk_, 0);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat(
        "produce to ", topic, " on ", brokers_, ": ", rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

absl::Status KafkaProducer::Flush(int timeout_ms) {
  rd_kafka_resp_err_t e = rd_kafka_flush(rk_, timeout_ms);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError(absl::StrCat(
        "flush to ", brokers_, ": ", rd_kafka_err2str(e)));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- consumer

KafkaConsumer::KafkaConsumer(rd_kafka_t* rk, std::string brokers,
                             std::string topic, std::map<int32_t, int64_t> start,
                             std::unique_ptr<KafkaConsumerEvents> events,
                             PartitionShare share)
    : rk_(rk), brokers_(std::move(brokers)), topic_(std::move(topic)), share_(share),
      positions_(std::move(start)), events_(std::move(events)) {}

namespace {
// librdkafka's offset-commit callback: keeps the first failure (request or
// partition level) until Commit hands it back.
void OnOffsetCommit(rd_kafka_t*, rd_kafka_resp_err_t err,
                    rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  std::string failure;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    failure = rd_kafka_err2str(err);
  } else if (offsets != nullptr) {
    for (int i = 0; i < offsets->cnt && failure.empty(); ++i) {
      if (offsets->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = absl::StrCat("partition ", offsets->elems[i].partition, ": ",
                               rd_kafka_err2str(offsets->elems[i].err));
      }
    }
  }
  if (failure.empty() || opaque == nullptr) return;
  auto* pending = static_cast<KafkaConsumerEvents*>(opaque);
  std::lock_guard<std::mutex> lock(pending->mu);
  if (pending->commit_failure.empty()) pending->commit_failure = failure;
}

// librdkafka's error callback (broker connections lost or refused, all
// brokers down, fatal errors): keeps the first until Poll returns it.
void OnClientError(rd_kafka_t*, int err, const char* reason, void* opaque) {
  if (opaque == nullptr) return;
  auto* pending = static_cast<KafkaConsumerEvents*>(opaque);
  std::lock_guard<std::mutex> lock(pending->mu);
  if (pending->client_error != 0) return;
  pending->client_error = err;
  pending->client_error_text = reason != nullptr ? reason : "";
}
}  // namespace

KafkaConsumer::~KafkaConsumer() {
  rd_kafka_consumer_close(rk_);
  rd_kafka_destroy(rk_);
}

void KafkaConsumer::MaybeAssign() {
  if (assigned_partitions_ > 0) return;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch()).count();
  if (now < next_assign_attempt_ms_) return;
  next_assign_attempt_ms_ = now + 2000;
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, topic_.c_str(), nullptr);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk_, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  int partitions = 0;
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        partitions = md->topics[i].partition_cnt;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  if (partitions == 0) {
    SLM_LOG(kDebug) << "topic " << topic_ << " not available yet on " << brokers_;
    return;
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  std::lock_guard<std::mutex> lock(mu_);
  if (share_.count > 1 && share_.index >= partitions) {
    SLM_LOG(kWarning) << topic_ << " has " << partitions << " partitions: learner rank "
                      << share_.index << " of " << share_.count
                      << " has none to read (give the topic at least as many partitions "
                         "as learners)";
  }
  for (int p = 0; p < partitions; ++p) {
    if (!share_.Has(p)) continue;
    auto it = positions_.find(p);
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset =
        it == positions_.end() ? RD_KAFKA_OFFSET_BEGINNING : it->second;
    SLM_LOG(kInfo) << "reading " << topic_ << "[" << p << "] from "
                   << (it == positions_.end() ? std::string("the beginning")
                                              : "offset " + std::to_string(it->second));
  }
  e = rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR) assigned_partitions_ = partitions;
}

absl::StatusOr<std::unique_ptr<KafkaConsumer>> KafkaConsumer::Create(
    const std::string& brokers, const std::string& group,
    const std::string& topic, std::map<int32_t, int64_t> start_offsets,
    PartitionShare share) {
  if (share.count < 1 || share.index < 0 || share.index >= share.count) {
    return absl::InvalidArgumentError(absl::StrCat("partition share ", share.index, " of ",
                                                   share.count, " is not a share"));
  }
  auto events = std::make_unique<KafkaConsumerEvents>();
  auto rk = NewClient(RD_KAFKA_CONSUMER, brokers,
                      {{"group.id", group},
                       {"enable.auto.commit", "false"},
                       {"enable.auto.offset.store", "false"},
                       {"auto.offset.reset", "earliest"},
                       {"enable.partition.eof", "false"}},
                      [](rd_kafka_conf_t* conf, void* opaque) {
                        rd_kafka_conf_set_offset_commit_cb(conf, OnOffsetCommit);
                        rd_kafka_conf_set_error_cb(conf, OnClientError);
                        rd_kafka_conf_set_opaque(conf, opaque);
                      },
                      events.get());
  if (!rk.ok()) return rk.status();
  rd_kafka_poll_set_consumer(*rk);
  std::unique_ptr<KafkaConsumer> self(new KafkaConsumer(
      *rk, brokers, topic, std::move(start_offsets), std::move(events), share));
  self->MaybeAssign();
  return self;
}

absl::StatusOr<std::optional<KafkaMessage>> KafkaConsumer::Poll(
    int timeout_ms) {
  MaybeAssign();
  // A client error (from the error callback during an earlier poll) comes
  // back before anything else is read; records are never dropped for it.
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string msg;
  auto take_client_error = [&] {
    std::lock_guard<std::mutex> lock(events_->mu);
    if (events_->client_error == 0) return false;
    err = static_cast<rd_kafka_resp_err_t>(events_->client_error);
    msg = absl::StrCat("kafka consume on ", topic_, " from ", brokers_, ": ",
                       events_->client_error_text, " (", rd_kafka_err2name(err), ")");
    events_->client_error = 0;
    return true;
  };
  rd_kafka_message_t* m = nullptr;
  if (!take_client_error()) {
    m = rd_kafka_consumer_poll(rk_, timeout_ms);
    if (m == nullptr && !take_client_error()) return std::optional<KafkaMessage>();
  }
  if (m != nullptr && m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    err = m->err;
    msg = absl::StrCat("kafka consume on ", topic_);
    if (m->rkt != nullptr) absl::StrAppend(&msg, " partition ", m->partition);
    absl::StrAppend(&msg, " from ", brokers_, ": ", rd_kafka_message_errstr(m), " (",
                    rd_kafka_err2name(err), ")");
    rd_kafka_message_destroy(m);
    m = nullptr;
  }
  if (m == nullptr) {
    switch (err) {
      case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      case RD_KAFKA_RESP_ERR__AUTHENTICATION:
      case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        return absl::PermissionDeniedError(msg);
      case RD_KAFKA_RESP_ERR__FATAL:
      case RD_KAFKA_RESP_ERR__SSL:
      case RD_KAFKA_RESP_ERR__INVALID_ARG:
      case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
        return absl::InternalError(msg);
      default:
        return absl::UnavailableError(msg);  // librdkafka retries by itself
    }
  }
  KafkaMessage out;
  out.topic = rd_kafka_topic_name(m->rkt);
  out.partition = m->partition;
  out.offset = m->offset;
  if (m->key) out.key.assign(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) {
    out.value.assign(static_cast<const char*>(m->payload), m->len);
  }
  rd_kafka_timestamp_type_t tstype;
  out.timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
  rd_kafka_message_destroy(m);
  {
    std::lock_guard<std::mutex> lock(mu_);
    positions_[out.partition] = out.offset + 1;
  }
  return std::optional<KafkaMessage>(std::move(out));
}

absl::Status KafkaConsumer::Commit(const std::map<int32_t, int64_t>& next) {
  if (next.empty()) return absl::OkStatus();
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
  for (const auto& [p, off] : next) {
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset = off;
  }
  // Asynchronous: these commits only feed lag monitoring. A failure of an
  // earlier one (reported by OnOffsetCommit during Poll) is returned now.
  std::string earlier;
  {
    std::lock_guard<std::mutex> lock(events_->mu);
    earlier.swap(events_->commit_failure);
  }
  rd_kafka_resp_err_t e = rd_kafka_commit(rk_, list, 1);
  rd_kafka_topic_partition_list_destroy(list);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(
        absl::StrCat("commit offsets of ", topic_, ": ", rd_kafka_err2str(e)));
  }
  if (!earlier.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "commit offsets of ", topic_, " (an earlier asynchronous commit): ", earlier));
  }
  return absl::OkStatus();
}

std::map<int32_t, int64_t> KafkaConsumer::positions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return positions_;
}

std::optional<int64_t> KafkaConsumer::Lag() const {
  if (assigned_partitions_ == 0) return std::nullopt;
  std::map<int32_t, int64_t> positions = this->positions();
  int64_t lag = 0;
  for (int32_t p = 0; p < assigned_partitions_; ++p) {
    if (!share_.Has(p)) continue;
    int64_t low = RD_KAFKA_OFFSET_INVALID, high = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_get_watermark_offsets(rk_, topic_.c_str(), p, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      return std::nullopt;
    }
    auto it = positions.find(p);
    int64_t from = it != positions.end() ? it->second : std::max<int64_t>(low, 0);
    lag += std::max<int64_t>(high - from, 0);
  }
  return lag;
}

absl::StatusOr<std::vector<KafkaMessage>> ReadWholeTopic(
    const std::string& brokers, const std::string& topic, int timeout_ms) {
  auto partitions = TopicPartitionCount(brokers, topic, timeout_ms);
  if (!partitions.ok()) return partitions.status();
  auto rk = NewClient(RD_KAFKA_CONSUMER, brokers,
                      {{"group.id", "streamlm-reader"},
                       {"enable.auto.commit", "false"},
                       {"enable.partition.eof", "false"}});
  if (!rk.ok()) return rk.status();
  std::vector<KafkaMessage> out;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(*partitions);
  std::map<int32_t, int64_t> high;
  for (int p = 0; p < *partitions; ++p) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
        *rk, topic.c_str(), p, &lo, &hi, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_partition_list_destroy(list);
      rd_kafka_destroy(*rk);
      return absl::UnavailableError(absl::StrCat(
          "watermarks of ", topic, "[", p, "]: ", rd_kafka_err2str(e)));
    }
    if (hi > lo) {
      high[p] = hi;
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = lo;
    }
  }
  rd_kafka_assign(*rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(timeout_ms);
  while (!high.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(*rk, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      KafkaMessage msg;
      msg.topic = topic;
      msg.partition = m->partition;
      msg.offset = m->offset;
      if (m->key) msg.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) {
        msg.value.assign(static_cast<const char*>(m->payload), m->len);
      }
      out.push_back(std::move(msg));
      auto it = high.find(m->partition);
      if (it != high.end() && m->offset + 1 >= it->second) high.erase(it);
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(*rk);
  rd_kafka_destroy(*rk);
  if (!high.empty()) {
    return absl::DeadlineExceededError(
        absl::StrCat("reading ", topic, " from ", brokers, " timed out"));
  }
  return out;
}

}  // namespace streamlm

// TextSource against a real Kafka broker (the embedded librdkafka mock
// cluster): rejects are keyed by the record's position, so a record re-read
// from stored offsets (what the learner does after a crash) is rejected under
// the same key and consumers can de-duplicate.
#include "ingest/text_source.h"

#include <map>
#include <string>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/broker.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "gtest/gtest.h"

namespace streamlm {
namespace {

constexpr char kText[] = "streamlm.text";
constexpr char kRejects[] = "streamlm.rejects";

// Reads every record a fresh source starting at `start` sees within a few
// seconds and rejects the ones whose payload is not JSON, as the learner's
// pipeline would; returns how many it read.
size_t ReadAndRejectBad(const std::string& brokers,
                        const std::map<int32_t, int64_t>& start, size_t expected,
                        Counters* counters) {
  TextSourceOptions o;
  o.brokers = brokers;
  o.group = "text-source-test";
  o.topic = kText;
  o.rejects_topic = kRejects;
  o.start_offsets = start;
  auto source = TextSource::Create(o, counters);
  EXPECT_TRUE(source.ok()) << source.status();
  if (!source.ok()) return 0;
  size_t seen = 0;
  for (int i = 0; i < 100 && seen < expected; ++i) {
    auto records = (*source)->Poll(64, 200);
    EXPECT_TRUE(records.ok()) << records.status();
    if (!records.ok()) return seen;
    for (const SourceRecord& r : *records) {
      ++seen;
      if (!ParseJson(r.payload).ok()) (*source)->Reject(r, "malformed_json", "not JSON");
    }
  }
  return seen;  // destroying the source flushes its rejects
}

TEST(TextSourceTest, RecordReadTwiceIsRejectedUnderTheSameKey) {
  auto broker = EmbeddedBroker::Start(0, {kText, kRejects}, 2);
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string brokers = (*broker)->bootstrap();
  {
    auto producer = KafkaProducer::Create(brokers);
    ASSERT_TRUE(producer.ok()) << producer.status();
    // Two bad records under one user key (the old reject key, which told
    // them apart from nothing), and good records around them.
    ASSERT_TRUE((*producer)->Produce(kText, "user-1", "{\"text\": \"good one\"}").ok());
    ASSERT_TRUE((*producer)->Produce(kText, "user-1", "not json {").ok());
    ASSERT_TRUE((*producer)->Produce(kText, "user-1", "also not json").ok());
    ASSERT_TRUE((*producer)->Produce(kText, "user-2", "{\"text\": \"good two\"}").ok());
    ASSERT_TRUE((*producer)->Flush(10000).ok());
  }
  // Where the broker put the bad records, read independently of TextSource.
  auto text = ReadWholeTopic(brokers, kText, 10000);
  ASSERT_TRUE(text.ok()) << text.status();
  ASSERT_EQ(text->size(), 4u);
  std::vector<std::string> bad_keys;
  for (const KafkaMessage& m : *text) {
    if (m.value.rfind("{", 0) != 0) {
      bad_keys.push_back(absl::StrCat(kText, "/", m.partition, "/", m.offset));
    }
  }
  ASSERT_EQ(bad_keys.size(), 2u);

  Counters counters;
  // First run, then a "restart" from the stored offsets of a checkpoint taken
  // before any of these records: every record is read and rejected again.
  ASSERT_EQ(ReadAndRejectBad(brokers, {}, 4, &counters), 4u);
  ASSERT_EQ(ReadAndRejectBad(brokers, {{0, 0}, {1, 0}}, 4, &counters), 4u);

  auto rejects = ReadWholeTopic(brokers, kRejects, 10000);
  ASSERT_TRUE(rejects.ok()) << rejects.status();
  ASSERT_EQ(rejects->size(), 4u);
  std::map<std::string, int> copies;
  for (const KafkaMessage& m : *rejects) {
    ++copies[m.key];
    auto v = ParseJson(m.value);
    ASSERT_TRUE(v.ok()) << m.value;
    // The value names the same position as the key, and keeps the user key.
    EXPECT_EQ(m.key, absl::StrCat((*v)["topic"].get<std::string>(), "/",
                                  (*v)["partition"].get<int>(), "/",
                                  (*v)["offset"].get<int64_t>()));
    EXPECT_EQ((*v)["source_key"], "user-1");
    EXPECT_EQ((*v)["reason"], "malformed_json");
  }
  // Each bad record: exactly two rejects (one per read), one key between them;
  // two different records: two different keys.
  EXPECT_EQ(copies, (std::map<std::string, int>{{bad_keys[0], 2}, {bad_keys[1], 2}}));
}

// Error injection below goes through the mock cluster's request errors: the
// broker answers the next requests of one Kafka API with an error code.

// Produces `n` JSON text records and waits until they are on the broker.
void ProduceText(const std::string& brokers, int n) {
  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE((*producer)->Produce(kText, absl::StrCat("k", i),
                                     absl::StrCat("{\"text\": \"record ", i, "\"}")).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
}

std::unique_ptr<TextSource> MakeSource(const std::string& brokers, Counters* counters) {
  TextSourceOptions o;
  o.brokers = brokers;
  o.group = "text-source-test";
  o.topic = kText;
  o.rejects_topic = kRejects;
  auto source = TextSource::Create(o, counters);
  EXPECT_TRUE(source.ok()) << source.status();
  return source.ok() ? std::move(*source) : nullptr;
}

// An authorization failure on fetch cannot be retried: Poll returns it (it
// used to end the poll as if the topic were empty) and counts it.
TEST(TextSourceTest, ConsumerErrorThatCannotBeRetriedIsReturned) {
  auto broker = EmbeddedBroker::Start(0, {kText, kRejects}, 1);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ProduceText((*broker)->bootstrap(), 3);
  (*broker)->PushRequestErrors(EmbeddedBroker::kApiFetch,
                               {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED});
  Counters counters;
  auto source = MakeSource((*broker)->bootstrap(), &counters);
  ASSERT_NE(source, nullptr);
  absl::Status error;
  for (int i = 0; i < 50 && error.ok(); ++i) {
    auto records = source->Poll(64, 200);
    if (!records.ok()) error = records.status();
    // The failed fetch is the first one: nothing is read before the error.
    else EXPECT_TRUE(records->empty());
  }
  EXPECT_EQ(error.code(), absl::StatusCode::kPermissionDenied) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), kText)) << error;
  EXPECT_TRUE(absl::StrContains(error.message(), "TOPIC_AUTHORIZATION_FAILED")) << error;
  EXPECT_EQ(source->consume_errors(), 1);
  EXPECT_EQ(source->last_error(), error);
  EXPECT_EQ(counters.Get("streamlm_kafka_consume_errors_total",
                         absl::StrCat("topic=", kText)), 1);
  EXPECT_TRUE(source->positions().empty());  // no position advanced
}

// A transient fetch error is counted and retried: every record still arrives.
TEST(TextSourceTest, TransientConsumerErrorIsCountedAndRetried) {
  auto broker = EmbeddedBroker::Start(0, {kText, kRejects}, 1);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ProduceText((*broker)->bootstrap(), 3);
  (*broker)->PushRequestErrors(EmbeddedBroker::kApiFetch,
                               {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT});
  Counters counters;
  auto source = MakeSource((*broker)->bootstrap(), &counters);
  ASSERT_NE(source, nullptr);
  std::vector<std::string> keys;
  for (int i = 0; i < 50 && keys.size() < 3; ++i) {
    auto records = source->Poll(64, 200);
    ASSERT_TRUE(records.ok()) << records.status();
    for (const SourceRecord& r : *records) keys.push_back(r.key);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"k0", "k1", "k2"}));
  EXPECT_EQ(source->consume_errors(), 1);
  EXPECT_EQ(source->last_error().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(source->last_error().message(), kText));
  EXPECT_EQ(counters.Get("streamlm_kafka_consume_errors_total",
                         absl::StrCat("topic=", kText)), 1);
}

// A commit the broker refuses is reported by the next Commit and counted
// (it used to vanish: the commit is asynchronous).
TEST(TextSourceTest, CommitFailureIsReturnedAndCounted) {
  auto broker = EmbeddedBroker::Start(0, {kText, kRejects}, 1);
  ASSERT_TRUE(broker.ok()) << broker.status();
  ProduceText((*broker)->bootstrap(), 1);
  Counters counters;
  auto source = MakeSource((*broker)->bootstrap(), &counters);
  ASSERT_NE(source, nullptr);
  size_t read = 0;
  for (int i = 0; i < 50 && read < 1; ++i) {
    auto records = source->Poll(64, 200);
    ASSERT_TRUE(records.ok()) << records.status();
    read += records->size();
  }
  ASSERT_EQ(read, 1u);
  (*broker)->PushRequestErrors(EmbeddedBroker::kApiOffsetCommit,
                               {RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE});
  ASSERT_TRUE(source->Commit({{0, 1}}).ok());  // sent; refused later
  // The refusal arrives through librdkafka's callback, served while polling.
  absl::Status next;
  for (int i = 0; i < 50 && next.ok(); ++i) {
    ASSERT_TRUE(source->Poll(64, 100).ok());
    next = source->Commit({{0, 1}});
  }
  EXPECT_EQ(next.code(), absl::StatusCode::kUnavailable) << next;
  EXPECT_TRUE(absl::StrContains(next.message(), kText)) << next;
  EXPECT_EQ(counters.Get("streamlm_kafka_commit_errors_total",
                         absl::StrCat("topic=", kText)), 1);
}

}  // namespace
}  // namespace streamlm

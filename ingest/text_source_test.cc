// TextSource against a real Kafka broker (the embedded librdkafka mock
// cluster): rejects are keyed by the record's position, so a record re-read
// from stored offsets (what the learner does after a crash) is rejected under
// the same key and consumers can de-duplicate.
#include "ingest/text_source.h"

#include <map>
#include <string>
#include <vector>

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
    for (const SourceRecord& r : (*source)->Poll(64, 200)) {
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

}  // namespace
}  // namespace streamlm

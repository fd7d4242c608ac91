// The broker's journal: a restarted broker has every record back at its
// partition and offset, with its key and value, through a real librdkafka
// client; a torn last record is cut off; a journal of other partitions is
// refused.
#include "common/broker_journal.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/broker.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using Seen = std::set<std::tuple<int32_t, int64_t, std::string, std::string>>;

Seen ReadAll(const EmbeddedBroker& broker, const std::string& topic) {
  Seen out;
  auto all = ReadWholeTopic(broker.bootstrap(), topic, 20000);
  EXPECT_TRUE(all.ok()) << all.status();
  if (!all.ok()) return out;
  for (const KafkaMessage& m : *all) out.insert({m.partition, m.offset, m.key, m.value});
  return out;
}

void ProduceRange(const EmbeddedBroker& broker, const std::string& topic, int from, int to) {
  auto producer = KafkaProducer::Create(broker.bootstrap());
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int i = from; i < to; ++i) {
    ASSERT_TRUE((*producer)->Produce(topic, absl::StrCat("k", i), absl::StrCat("value ", i)).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
}

TEST(BrokerJournalTest, ARestartedBrokerHasEveryRecordAtItsOffset) {
  testing::TempDir dir;
  const std::string journal = dir.Sub("journal");
  Seen before;
  {
    auto broker = EmbeddedBroker::Start(0, {"t", "u"}, 2, journal);
    ASSERT_TRUE(broker.ok()) << broker.status();
    EXPECT_EQ((*broker)->replayed(), 0);
    ProduceRange(**broker, "t", 0, 50);
    ProduceRange(**broker, "u", 0, 3);
    before = ReadAll(**broker, "t");
    ASSERT_EQ(before.size(), 50u);
  }  // a clean stop: the journal catches up first
  {
    auto broker = EmbeddedBroker::Start(0, {"t", "u"}, 2, journal);
    ASSERT_TRUE(broker.ok()) << broker.status();
    EXPECT_EQ((*broker)->replayed(), 53);
    EXPECT_EQ(ReadAll(**broker, "t"), before);
    EXPECT_EQ(ReadAll(**broker, "u").size(), 3u);
    // New records continue each partition's offsets.
    ProduceRange(**broker, "t", 50, 60);
    before = ReadAll(**broker, "t");
    ASSERT_EQ(before.size(), 60u);
    std::map<int32_t, int64_t> next;
    for (const auto& [p, offset, key, value] : before) {
      EXPECT_EQ(offset, next[p]) << "partition " << p;  // no gap, no duplicate
      next[p] = offset + 1;
    }
    ASSERT_TRUE((*broker)->CloseJournal().ok());
  }
  // A crash in the middle of an append leaves a torn record: cut off.
  const std::string log = journal + "/t/0.log";
  ASSERT_TRUE(std::filesystem::exists(log));
  const auto size = std::filesystem::file_size(log);
  {
    FILE* f = std::fopen(log.c_str(), "ab");
    ASSERT_NE(f, nullptr);
    const std::string torn("\x40\x00\x00\x00torn", 8);  // says 64 bytes follow; 4 do
    std::fwrite(torn.data(), 1, torn.size(), f);
    std::fclose(f);
  }
  {
    auto broker = EmbeddedBroker::Start(0, {"t", "u"}, 2, journal);
    ASSERT_TRUE(broker.ok()) << broker.status();
    EXPECT_EQ(ReadAll(**broker, "t"), before);
  }
  EXPECT_EQ(std::filesystem::file_size(log), size);
  // Fewer partitions than the journal holds would drop records: refused.
  auto fewer = EmbeddedBroker::Start(0, {"t", "u"}, 1, journal);
  ASSERT_FALSE(fewer.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(fewer.status())) << fewer.status();
  EXPECT_NE(fewer.status().message().find("t[1]"), std::string::npos) << fewer.status();
}

TEST(BrokerJournalTest, WithoutAJournalARestartedBrokerIsEmpty) {
  {
    auto broker = EmbeddedBroker::Start(0, {"t"}, 1);
    ASSERT_TRUE(broker.ok());
    ProduceRange(**broker, "t", 0, 5);
    EXPECT_EQ(ReadAll(**broker, "t").size(), 5u);
  }
  auto broker = EmbeddedBroker::Start(0, {"t"}, 1);
  ASSERT_TRUE(broker.ok());
  EXPECT_TRUE(ReadAll(**broker, "t").empty());
}

}  // namespace
}  // namespace streamlm

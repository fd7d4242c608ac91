// The embedded broker must speak real Kafka: librdkafka and Python's
// confluent-kafka (an independent client build) both produce and consume.
#include "common/broker.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/kafka.h"
#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(EmbeddedBrokerTest, ProduceAndReadBackWithLibrdkafka) {
  auto broker = EmbeddedBroker::Start(0, {"t1"}, 2);
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto producer = KafkaProducer::Create((*broker)->bootstrap());
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE((*producer)->Produce("t1", absl::StrCat("k", i),
                                     absl::StrCat("v", i)).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  auto count = TopicPartitionCount((*broker)->bootstrap(), "t1", 5000);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 2);
  auto all = ReadWholeTopic((*broker)->bootstrap(), "t1", 10000);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 20u);
}

TEST(EmbeddedBrokerTest, FixedPortRelayServesPythonClient) {
  // Port 0 is not what users get; exercise the relay on a fixed port.
  int port = 19000 + (getpid() % 1000);
  auto broker = EmbeddedBroker::Start(port, {"py"}, 1);
  ASSERT_TRUE(broker.ok()) << broker.status();
  EXPECT_EQ((*broker)->bootstrap(), absl::StrCat("127.0.0.1:", port));
  std::string script = absl::StrCat(
      "/usr/bin/python3 -c \"import confluent_kafka as ck\n"
      "p = ck.Producer({'bootstrap.servers': '", (*broker)->bootstrap(), "'})\n"
      "[p.produce('py', value=('hello %d' % i).encode()) for i in range(5)]\n"
      "assert p.flush(10) == 0\"");
  ASSERT_EQ(std::system(script.c_str()), 0) << script;
  auto all = ReadWholeTopic((*broker)->bootstrap(), "py", 10000);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 5u);
  EXPECT_EQ((*all)[4].value, "hello 4");
}

TEST(EmbeddedBrokerTest, UnreachableBrokerIsNamed) {
  absl::Status s = CheckBrokerReachable("127.0.0.1:1", 1500);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("127.0.0.1:1"), std::string::npos) << s;
}

}  // namespace
}  // namespace streamlm

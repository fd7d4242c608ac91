#include "absl/strings/str_cat.h"
#include "learner/bootstrap.h"
#include "ingest/pipeline.h"

#include <fstream>

#include "common/broker.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "model/language_model.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

Config Tiny(const std::string& data_dir) {
  Config c;
  EXPECT_TRUE(ApplyYamlFile(c, testing::SourceDir() + "/tests/data/tiny.yaml").ok());
  c.data_dir = data_dir;
  c.bootstrap.corpus = {testing::SourceDir() + "/data/corpus/brown.txt"};
  c.bootstrap.steps = 400;
  c.bootstrap.checkpoint_every_steps = 100;
  c.bootstrap.progress_every_steps = 100;
  return c;
}

TEST(BootstrapTest, BeatsUnigramAndWritesChampion) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  auto store = Store::Open(dir.path());
  std::vector<std::string> lines;
  auto r = RunBootstrap(Tiny(dir.path()), store->get(),
                        [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->heldout_loss, r->unigram_loss - 0.1);
  EXPECT_EQ(*(*store)->GetAlias(kChampion), r->snapshot_id);
  bool saw_mfu = false;
  for (const std::string& l : lines) saw_mfu |= l.find("MFU") != std::string::npos;
  EXPECT_TRUE(saw_mfu);
}

// An interrupted bootstrap resumes from its checkpoint and ends with exactly
// the weights of an uninterrupted run.
TEST(BootstrapTest, InterruptedRunResumesToTheSameWeights) {
  ConfigureTorchThreads(0);
  testing::TempDir a, b;
  auto store_a = Store::Open(a.path());
  auto whole = RunBootstrap(Tiny(a.path()), store_a->get(), [](const std::string&) {});
  ASSERT_TRUE(whole.ok()) << whole.status();

  auto store_b = Store::Open(b.path());
  std::atomic<bool> stop{false};
  auto first = RunBootstrap(Tiny(b.path()), store_b->get(), [&](const std::string& l) {
    if (l.find("step 200/") != std::string::npos) stop = true;
  }, &stop);
  ASSERT_TRUE(absl::IsCancelled(first.status())) << first.status();
  EXPECT_EQ((*store_b)->GetCheckpoint("bootstrap")->step, 200);
  bool resumed = false;
  auto second = RunBootstrap(Tiny(b.path()), store_b->get(), [&](const std::string& l) {
    resumed |= l.find("resuming at step 200") != std::string::npos;
  });
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(resumed);
  auto wa = (*store_a)->GetSnapshot(whole->snapshot_id);
  auto wb = (*store_b)->GetSnapshot(second->snapshot_id);
  ASSERT_TRUE(wa.ok() && wb.ok());
  EXPECT_EQ(wa->tokenizer, wb->tokenizer);
  EXPECT_TRUE(wa->weights == wb->weights) << "resumed weights differ";
  EXPECT_DOUBLE_EQ(second->heldout_loss, whole->heldout_loss);
}

TEST(BootstrapTest, ReadsATopicsWholeHistory) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  auto broker = EmbeddedBroker::Start(0, {"history"}, 2);
  ASSERT_TRUE(broker.ok());
  auto producer = KafkaProducer::Create((*broker)->bootstrap());
  ASSERT_TRUE(producer.ok());
  std::ifstream in(testing::SourceDir() + "/data/corpus/brown.txt");
  std::string line;
  int n = 0;
  std::vector<IngestItem> replica;  // what the cleaning stages should keep
  while (n < 2500 && std::getline(in, line)) {
    if (line.empty()) continue;
    ASSERT_TRUE((*producer)->Produce("history", "", Json({{"text", line}}).dump()).ok());
    replica.emplace_back();
    replica.back().payload = Json({{"text", line}}).dump();
    ++n;
  }
  ASSERT_TRUE((*producer)->Produce("history", "", "{not json").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  Config c = Tiny(dir.path());
  c.bootstrap.topic = "history";
  c.bootstrap.corpus = {"/nonexistent"};  // must not be read
  Config no_kafka = c;
  EXPECT_FALSE(RunBootstrap(no_kafka, Store::Open(dir.Sub("x"))->get(),
                            [](const std::string&) {}).ok());
  c.kafka = (*broker)->bootstrap();
  auto store = Store::Open(dir.path());
  std::vector<std::string> lines;
  auto r = RunBootstrap(c, store->get(), [&](const std::string& l) { lines.push_back(l); });
  ASSERT_TRUE(r.ok()) << r.status();
  // Every record of the history went through stages 1-6 (clean.text, dedup
  // within the topic); the broken one and the filtered ones are not trained on.
  PipelineOptions po;
  po.clean = c.clean_text;
  Deduplicator dedup;
  TextPipeline(po).Run(replica, &dedup, nullptr);
  int kept = 0;
  for (const IngestItem& item : replica) kept += item.ok();
  EXPECT_GT(kept, 1000);
  EXPECT_LT(kept, 2500);
  EXPECT_NE(lines[0].find(absl::StrCat(kept, " documents")), std::string::npos) << lines[0];
  EXPECT_LT(r->heldout_loss, r->unigram_loss);
}

}  // namespace
}  // namespace streamlm

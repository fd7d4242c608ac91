// A GPT-2-format and a Llama-format checkpoint each import, keep training on
// the stream, generate, and export back to a directory that imports again.
#include <thread>

#include "common/broker.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "learner/learner.h"
#include "model/hf_checkpoint.h"
#include "store/store.h"
#include "tests/util/stream_text.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

class HfStreamTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfStreamTest, ImportTrainGenerateExport) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  Config config;
  ASSERT_TRUE(ApplyYamlFile(config, testing::SourceDir() + "/tests/data/tiny.yaml").ok());
  config.data_dir = dir.Sub("store");
  config.learner.snapshot_every_steps = 4;

  auto imported = ImportHfCheckpoint(testing::SourceDir() + "/tests/data/hf/" + GetParam());
  ASSERT_TRUE(imported.ok()) << imported.status();
  auto store = Store::Open(config.data_dir);
  ASSERT_TRUE(store.ok());
  Snapshot snap;
  snap.meta.id = "imported";
  snap.meta.origin = "import";
  snap.meta.model_config = ModelConfigToJson((*imported)->config());
  snap.weights = (*imported)->SerializeWeights();
  snap.tokenizer = (*imported)->tokenizer().serialized();
  ASSERT_TRUE((*store)->PutSnapshot(snap, {kChampion}).ok());

  auto broker = EmbeddedBroker::Start(0, {config.topic_text, config.topic_rejects}, 1);
  ASSERT_TRUE(broker.ok());
  auto producer = KafkaProducer::Create((*broker)->bootstrap());
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 80; ++i) {
    ASSERT_TRUE((*producer)->Produce(config.topic_text, "", testing::StreamRecord(i)).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  Counters counters;
  std::string candidate;
  std::mutex mu;
  auto learner = Learner::Create(config, (*broker)->bootstrap(), store->get(), &counters,
                                 [&](const std::string& id) {
                                   std::lock_guard<std::mutex> lock(mu);
                                   if (candidate.empty()) candidate = id;  // the first
                                 });
  ASSERT_TRUE(learner.ok()) << learner.status();
  std::thread run([&] { EXPECT_TRUE((*learner)->Run().ok()); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto have_candidate = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return !candidate.empty();
  };
  while (!have_candidate() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  (*learner)->Stop();
  run.join();
  ASSERT_TRUE(have_candidate()) << "no candidate from the stream";

  auto trained = (*store)->GetSnapshot(candidate);
  ASSERT_TRUE(trained.ok());
  EXPECT_EQ(trained->meta.lineage.parent, "imported");
  EXPECT_GT(trained->meta.lineage.tokens_trained, 0);
  EXPECT_NE(trained->weights, snap.weights) << "training changed nothing";
  auto model = LanguageModel::Load(trained->meta.model_config, trained->weights, trained->tokenizer);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ((*model)->config().family, (*imported)->config().family);
  SamplingParams p;
  p.max_tokens = 6;
  p.has_seed = true;
  p.ignore_eos = true;  // exactly max_tokens tokens
  const auto generated = (*model)->Generate("the learner", p);
  EXPECT_EQ(generated.ids.size(), 6u);
  EXPECT_EQ(generated.finish_reason, "length");
  for (int32_t id : generated.ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, (*model)->config().vocab_size);
  }
  EXPECT_EQ((*model)->Generate("the learner", p).ids, generated.ids) << "seeded: reproducible";

  ASSERT_TRUE(ExportHfCheckpoint(**model, dir.Sub("out")).ok());
  auto back = ImportHfCheckpoint(dir.Sub("out"));
  ASSERT_TRUE(back.ok()) << back.status();
  auto a = (*model)->net().named_parameters(), b = (*back)->net().named_parameters();
  for (const auto& q : a) {
    // Exported in the checkpoint's own dtype: equal after that rounding.
    auto expect = q.value().to(ScalarTypeForDtype((*model)->config().dtype)).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(expect, b[q.key()])) << q.key();
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfStreamTest, ::testing::Values("gpt2", "llama"));

}  // namespace
}  // namespace streamlm

// Restart: stop the learner after a checkpoint, start a new one on the same
// store, and show from the stored lineage that it resumed at the stored
// offsets, with no record trained twice and none skipped.
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/broker.h"
#include "common/config.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "ingest/dedup.h"
#include "ingest/record.h"
#include "learner/bootstrap.h"
#include "learner/learner.h"
#include "model/language_model.h"
#include "store/store.h"
#include "tests/util/heldout_stream.h"
#include "tests/util/learner_fixture.h"
#include "tests/util/stream_text.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::StreamRecord;
using testing::StreamSentence;

constexpr int kFirst = 90;   // good records before the restart
constexpr int kSecond = 70;  // good records after it

class RestartTest : public testing::LearnerFixture {};

// Runs a learner until `done` holds, then stops it (final checkpoint).
void RunUntil(Learner* learner, const std::function<bool()>& done) {
  absl::Status result;
  std::thread t([&] { result = learner->Run(); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(done()) << "learner did not get there in time";
  learner->Stop();
  t.join();
  EXPECT_TRUE(result.ok()) << result;
}

int64_t Consumed(Store* store) {
  auto c = store->GetCheckpoint();
  return c.ok() && c->next_offsets.count(0) ? c->next_offsets.at(0) : 0;
}

TEST_F(RestartTest, ResumesAtStoredOffsetsWithoutGapsOrRepeats) {
  Config& config = config_;
  const std::string& brokers = brokers_;
  Store* store = store_.get();
  EmbeddedBroker* broker = broker_.get();
  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok());

  // Expected accounting, from the texts themselves (a replica of the
  // learner's pipeline and deduplicator tells which are dropped).
  int64_t expect_trained = 0, expect_heldout = 0, expect_rejected = 0, produced = 0;
  Deduplicator replica(DedupOptionsFromConfig(config));
  PipelineOptions pipeline_options;
  pipeline_options.clean = config.clean_text;
  TextPipeline pipeline(pipeline_options);
  auto produce_good = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      ASSERT_TRUE((*producer)->Produce(config.topic_text, "", StreamRecord(i)).ok());
      ++produced;
      std::vector<IngestItem> item(1);
      item[0].payload = StreamRecord(i);
      pipeline.Run(item, &replica, nullptr);
      if (!item[0].ok()) ++expect_rejected;
      else if (IsHeldOut(item[0].record.text, config.learner.heldout_every_records)) ++expect_heldout;
      else ++expect_trained;
    }
  };
  produce_good(0, kFirst / 2);
  ASSERT_TRUE((*producer)->Produce(config.topic_text, "", "{broken json").ok());
  ++produced;
  ++expect_rejected;
  produce_good(kFirst / 2, kFirst);
  // Feedback: five good records and a bad one before the restart, three after.
  auto produce_feedback = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      Json f = {{"prompt", absl::StrCat("question ", i)}, {"response", "answer"}, {"rating", 1}};
      ASSERT_TRUE((*producer)->Produce(config.topic_feedback, "", f.dump()).ok());
    }
  };
  produce_feedback(0, 5);
  ASSERT_TRUE((*producer)->Produce(config.topic_feedback, "", R"({"prompt": "no answer"})").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  std::vector<std::string> candidates;
  std::mutex mu;
  auto on_candidate = [&](const std::string& id) {
    std::lock_guard<std::mutex> lock(mu);
    candidates.push_back(id);
  };
  auto count = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return candidates.size();
  };

  Counters counters;
  {
    auto learner = Learner::Create(config, brokers, store, &counters, on_candidate);
    ASSERT_TRUE(learner.ok()) << learner.status();
    EXPECT_TRUE((*learner)->resumed_offsets().empty());
    RunUntil(learner->get(), [&] {
      return count() >= 1 && counters.Get("streamlm_records_consumed_total") >= produced + 6 &&
             counters.Get("streamlm_feedback_stored_total") >= 5;
    });
  }
  const int64_t first_stop = Consumed(store);
  EXPECT_EQ(first_stop, produced) << "the final checkpoint holds every consumed offset";

  produce_good(1000, 1000 + kSecond);
  // Repeats of texts consumed before the restart: only a deduplicator that
  // came back from the checkpoint knows them.
  produce_good(0, 12);
  produce_feedback(5, 8);
  EXPECT_EQ(replica.Check(testing::StreamSentence(3)), Deduplicator::Verdict::kExact);
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  size_t before = count();
  {
    auto learner = Learner::Create(config, brokers, store, &counters, on_candidate);
    ASSERT_TRUE(learner.ok()) << learner.status();
    ASSERT_EQ((*learner)->resumed_offsets().at(0), first_stop);
    RunUntil(learner->get(), [&] {
      return count() > before && counters.Get("streamlm_records_consumed_total") >= produced + 9 &&
             counters.Get("streamlm_feedback_stored_total") >= 8;
    });
  }
  EXPECT_EQ(Consumed(store), produced);
  // A consumer that re-read old records would have counted them again
  // (text and feedback both count in records_consumed).
  EXPECT_EQ(counters.Get("streamlm_records_consumed_total"), produced + 9);
  EXPECT_EQ(counters.Get("streamlm_feedback_stored_total"), 8);
  EXPECT_EQ(counters.Get("streamlm_records_rejected_total", "missing_field"), 1);
  auto feedback = store->ListFeedback();
  ASSERT_TRUE(feedback.ok());
  ASSERT_EQ(feedback->size(), 8u);
  EXPECT_EQ((*feedback)[7].record["prompt"], "question 7");
  EXPECT_EQ(store->GetCheckpoint()->state["feedback_offsets"]["0"], 9);

  // Lineage: the learner's snapshots cover contiguous offset ranges, each
  // starting where its parent ended; the checkpoint carries the rest.
  auto champion = store->GetAlias(kChampion);
  ASSERT_TRUE(champion.ok());
  std::string parent = *champion;
  int64_t next_begin = 0;
  int64_t trained = 0, heldout = 0, rejected = 0;
  for (const std::string& id : candidates) {
    auto meta = store->GetSnapshotMeta(id);
    ASSERT_TRUE(meta.ok());
    const Lineage& l = meta->lineage;
    EXPECT_EQ(l.parent, parent) << id;
    // Each candidate ends a learning-rate cycle of snapshot_every_steps
    // stream steps (the time bound is out of reach here), at the floor.
    EXPECT_NEAR(meta->metrics.value("lr", -1.0),
                config.learner.lr * config.learner.min_lr_ratio, 1e-12) << id;
    EXPECT_EQ(meta->metrics.value("cycle_length", int64_t{-1}),
              config.learner.snapshot_every_steps) << id;
    EXPECT_EQ(meta->metrics.value("cycle_step", int64_t{-1}),
              config.learner.snapshot_every_steps) << id;
    // A snapshot may train only on tokens consumed before it (carried in
    // the checkpoint) and then covers no new offsets.
    ASSERT_LE(l.ranges.size(), 1u) << id;
    if (l.ranges.empty()) {
      EXPECT_EQ(l.records_trained + l.records_heldout + l.records_rejected, 0) << id;
    } else {
      EXPECT_EQ(l.ranges[0].begin, next_begin) << id << ": gap or overlap";
      EXPECT_GT(l.ranges[0].end, l.ranges[0].begin) << id;
      next_begin = l.ranges[0].end;
    }
    parent = id;
    trained += l.records_trained;
    heldout += l.records_heldout;
    rejected += l.records_rejected;
  }
  auto checkpoint = store->GetCheckpoint();
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->state["snapshot"], parent);
  EXPECT_EQ(checkpoint->state["range_begin"]["0"].get<int64_t>(), next_begin);
  Lineage carried = LineageFromJson(checkpoint->state["since_snapshot"]);
  trained += carried.records_trained;
  heldout += carried.records_heldout;
  rejected += carried.records_rejected;
  EXPECT_EQ(trained, expect_trained);
  EXPECT_EQ(heldout, expect_heldout);
  EXPECT_EQ(rejected, expect_rejected);
  // By construction, apart from the replica: the broken record and the 12
  // repeats are the only text records dropped.
  EXPECT_EQ(rejected, 1 + 12);
  EXPECT_EQ(trained + heldout + rejected, produced);

  // On streamlm.rejects: the 13 text records and the one bad feedback
  // record, each once, keyed by its own position (so a consumer can
  // de-duplicate a reject written again after a crash).
  auto rejects = ReadWholeTopic(brokers, config.topic_rejects, 15000);
  ASSERT_TRUE(rejects.ok()) << rejects.status();
  std::set<std::string> keys;
  int64_t text_rejects = 0, feedback_rejects = 0;
  for (const KafkaMessage& m : *rejects) {
    auto v = ParseJson(m.value);
    ASSERT_TRUE(v.ok()) << m.value;
    EXPECT_EQ(m.key, absl::StrCat((*v)["topic"].get<std::string>(), "/",
                                  (*v)["partition"].get<int>(), "/",
                                  (*v)["offset"].get<int64_t>()));
    EXPECT_TRUE(keys.insert(m.key).second) << "rejected twice: " << m.key;
    text_rejects += (*v)["topic"] == config.topic_text;
    feedback_rejects += (*v)["topic"] == config.topic_feedback;
  }
  EXPECT_EQ(text_rejects, 1 + 12);
  EXPECT_EQ(feedback_rejects, 1);
}

}  // namespace
}  // namespace streamlm

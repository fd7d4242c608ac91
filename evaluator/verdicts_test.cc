// The owner's side of a separate evaluator, on a RocksDB store on disk.
#include "evaluator/verdicts.h"

#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::TempDir;

Snapshot MakeSnapshot(const std::string& id) {
  Snapshot s;
  s.meta.id = id;
  s.meta.origin = "learner";
  s.weights.assign(64, 'w');
  s.tokenizer = "tok";
  return s;
}

Json Verdict(const std::string& id, const std::string& candidate, const std::string& champion,
             const std::string& kind) {
  return {{"verdict_id", id},
          {"candidate", candidate},
          {"champion", champion},
          {"verdict", kind},
          {"reason", "test"}};
}

TEST(VerdictCommitterTest, CommitsOnceAcrossRestartsAndSkipsStaleVerdicts) {
  TempDir dir;
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("a"), {kChampion}).ok());
    ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("b")).ok());
    ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("c")).ok());
    Counters counters;
    VerdictCommitter committer(store->get(), &counters);
    ASSERT_TRUE(committer.Load().ok());
    auto held = committer.Commit(Verdict("v1", "b", "a", "held"));
    ASSERT_TRUE(held.ok()) << held.status();
    ASSERT_TRUE(held->has_value());
    EXPECT_EQ(*(*store)->GetAlias(kChampion), "a");  // held moves nothing
    auto promoted = committer.Commit(Verdict("v2", "b", "a", "promoted"));
    ASSERT_TRUE(promoted.ok() && promoted->has_value());
    EXPECT_EQ((**promoted)["verdict_id"], "v2");
    EXPECT_EQ(*(*store)->GetAlias(kChampion), "b");
    EXPECT_EQ(*(*store)->GetAlias(kPrevious), "a");
    // The same record read again (the topic is re-read): nothing new.
    auto again = committer.Commit(Verdict("v2", "b", "a", "promoted"));
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again->has_value());
    // Judged against a, which is no longer the champion: stale.
    auto stale = committer.Commit(Verdict("v3", "c", "a", "promoted"));
    ASSERT_TRUE(stale.ok());
    EXPECT_FALSE(stale->has_value());
    EXPECT_EQ(*(*store)->GetAlias(kChampion), "b");
    EXPECT_EQ(counters.Get("streamlm_verdicts_total", "committed"), 2);
    EXPECT_EQ(counters.Get("streamlm_verdicts_total", "duplicate"), 1);
    EXPECT_EQ(counters.Get("streamlm_verdicts_total", "stale"), 1);
  }
  // A restarted owner re-reads the whole topic: the committed ids come
  // from the stored decisions, so nothing is committed twice.
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  Counters counters;
  VerdictCommitter committer(store->get(), &counters);
  ASSERT_TRUE(committer.Load().ok());
  for (const char* id : {"v1", "v2"}) {
    auto r = committer.Commit(Verdict(id, "b", "a", id == std::string("v1") ? "held" : "promoted"));
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value()) << id;
  }
  auto decisions = (*store)->ListDecisions(0);
  ASSERT_TRUE(decisions.ok());
  EXPECT_EQ(decisions->size(), 2u);
  auto next = committer.Commit(Verdict("v4", "c", "b", "rejected"));
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "b");
}

TEST(VerdictCommitterTest, EvaluationSetsTheEvaluatorSetAsideAreStoredNotRecorded) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("a"), {kChampion}).ok());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("b")).ok());
  Counters counters;
  VerdictCommitter committer(store->get(), &counters);
  ASSERT_TRUE(committer.Load().ok());
  Json v = Verdict("v1", "b", "a", "held");
  v["eval_sets"] = {{"base", R"([{"text": "x"}])"}, {"base_anchor", R"({"nats": [1.5]})"}};
  auto stored = committer.Commit(v);
  ASSERT_TRUE(stored.ok() && stored->has_value()) << stored.status();
  EXPECT_FALSE((**stored).contains("eval_sets"));
  EXPECT_EQ(*(*store)->GetEvalSet("base"), R"([{"text": "x"}])");
  EXPECT_EQ(*(*store)->GetEvalSet("base_anchor"), R"({"nats": [1.5]})");
  EXPECT_FALSE((*(*store)->ListDecisions(0))[0].contains("eval_sets"));
  Json bad = Verdict("v2", "b", "a", "held");
  bad["eval_sets"] = {{"base", 3}};
  EXPECT_TRUE(absl::IsInvalidArgument(committer.Commit(bad).status()));
}

TEST(VerdictCommitterTest, MalformedRecordsAreRefusedNamingWhatIsMissing) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("a"), {kChampion}).ok());
  Counters counters;
  VerdictCommitter committer(store->get(), &counters);
  ASSERT_TRUE(committer.Load().ok());
  auto no_id = committer.Commit({{"candidate", "a"}, {"champion", "a"}, {"verdict", "held"}});
  EXPECT_TRUE(absl::IsInvalidArgument(no_id.status()));
  EXPECT_NE(no_id.status().message().find("verdict_id"), std::string::npos);
  auto bad_kind = committer.Commit(Verdict("v", "a", "a", "crowned"));
  EXPECT_NE(bad_kind.status().message().find("\"verdict\""), std::string::npos);
  EXPECT_TRUE(absl::IsInvalidArgument(committer.Commit(Json::array()).status()));
  EXPECT_EQ(counters.Get("streamlm_verdicts_total", "invalid"), 3);
  EXPECT_TRUE((*store)->ListDecisions(0)->empty());
}

}  // namespace
}  // namespace streamlm

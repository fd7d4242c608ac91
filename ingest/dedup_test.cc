#include "ingest/dedup.h"

#include <fstream>
#include <random>

#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using V = Deduplicator::Verdict;

std::vector<std::string> BrownParagraphs(size_t n) {
  std::ifstream in(testing::SourceDir() + "/data/corpus/brown.txt");
  std::vector<std::string> out;
  std::string line;
  while (out.size() < n && std::getline(in, line)) {
    if (line.size() > 300) out.push_back(line);
  }
  return out;
}

TEST(DedupTest, ExactDuplicatesIgnoreCaseAndWhitespace) {
  Deduplicator d;
  EXPECT_EQ(d.Check("The quick  brown fox."), V::kUnique);
  EXPECT_EQ(d.Check("the quick brown\n fox."), V::kExact);
  EXPECT_EQ(d.Check("The quick brown fox!"), V::kUnique);
}

// Real paragraphs: light edits are near duplicates; other paragraphs are not.
TEST(DedupTest, NearDuplicatesOfRealTextAreCaughtAndDistinctTextIsNot) {
  auto paras = BrownParagraphs(400);
  ASSERT_GE(paras.size(), 300u);
  Deduplicator d;
  for (size_t i = 0; i < 200; ++i) ASSERT_EQ(d.Check(paras[i]), V::kUnique) << i;
  int near = 0;
  for (size_t i = 0; i < 100; ++i) {
    // Change one word near the end: ~5 of many 5-gram shingles differ.
    std::string edited = paras[i];
    size_t pos = edited.rfind(' ', edited.size() - 20);
    edited.insert(pos, " indeed");
    near += d.Check(edited) == V::kNear;
  }
  EXPECT_GE(near, 95);
  int false_hits = 0;
  for (size_t i = 200; i < paras.size(); ++i) false_hits += d.Check(paras[i]) != V::kUnique;
  EXPECT_EQ(false_hits, 0);
}

TEST(DedupTest, WindowBoundsMemoryAndForgetsTheOldest) {
  DedupOptions o;
  o.window_docs = 3;
  Deduplicator d(o);
  for (const char* t : {"alpha one two three four five six", "beta one two three four five six",
                        "gamma x y z w v u t", "delta q r s t u v w"}) {
    EXPECT_EQ(d.Check(t), V::kUnique);
  }
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.Check("alpha one two three four five six"), V::kUnique);  // forgotten
  EXPECT_EQ(d.Check("delta q r s t u v w"), V::kExact);
}

TEST(DedupTest, TimeWindowForgetsOlderDocumentsAndSurvivesSerialization) {
  DedupOptions o;
  o.window_ms = 1000;
  Deduplicator d(o);
  auto fp = [&](const char* t) { return d.MakeFingerprint(t); };
  EXPECT_EQ(d.Check(fp("alpha one two three four five six"), 10'000), V::kUnique);
  EXPECT_EQ(d.Check(fp("beta one two three four five six"), 10'600), V::kUnique);
  EXPECT_EQ(d.Check(fp("alpha one two three four five six"), 10'900), V::kExact);  // 900 ms old
  // Restored windows keep the times they were remembered at.
  Deduplicator e(o);
  ASSERT_TRUE(e.Restore(d.Serialize()).ok());
  EXPECT_EQ(e.Check(e.MakeFingerprint("alpha one two three four five six"), 11'001), V::kUnique);
  EXPECT_EQ(e.Check(e.MakeFingerprint("beta one two three four five six"), 11'500), V::kExact);
  EXPECT_EQ(e.size(), 2u);  // beta and the new alpha
  EXPECT_EQ(d.size(), 2u);
}

TEST(DedupTest, StateSurvivesSerialization) {
  auto paras = BrownParagraphs(50);
  Deduplicator a;
  for (const auto& p : paras) a.Check(p);
  Deduplicator b;
  ASSERT_TRUE(b.Restore(a.Serialize()).ok());
  EXPECT_EQ(b.size(), a.size());
  EXPECT_EQ(b.Check(paras[7]), V::kExact);
  EXPECT_EQ(b.Check(paras[8] + " and so on"), V::kNear);
  EXPECT_FALSE(b.Restore("junk").ok());
  EXPECT_FALSE(b.Restore(a.Serialize().substr(0, 100)).ok());
}

}  // namespace
}  // namespace streamlm

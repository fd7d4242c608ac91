// Audits a store after `streamlm run` consumed a stream to its end, however
// often it was killed or cut off from the broker on the way: from the
// stored lineage, checkpoint, feedback and decisions alone, every record
// counts exactly once. Used by the crash suite and the broker outage test.
//
// The expectation comes from the topics as the test produced them, each
// record's key saying what it is: "doc-N" a new text, "dup-N" a repeat of an
// earlier text, "bad-N" a record the pipeline must reject; on the feedback
// topic "fb-N" a good record and "bad-N" one without a response.
#ifndef STREAMLM_TESTS_UTIL_STREAM_AUDIT_H_
#define STREAMLM_TESTS_UTIL_STREAM_AUDIT_H_

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "learner/checkpoint_state.h"
#include "store/store.h"

namespace streamlm::testing {

// The default topic names (common/config.h), as the suites produce to them.
inline constexpr char kText[] = "streamlm.text";
inline constexpr char kFeedback[] = "streamlm.feedback";
inline constexpr char kRejects[] = "streamlm.rejects";

struct AuditFigures {
  int64_t text_records = 0;      // on the text topic
  int64_t trained = 0;           // by the lineage
  int64_t heldout = 0;
  int64_t rejected = 0;
  int64_t feedback_records = 0;  // on the feedback topic
  int64_t feedback_stored = 0;
  int64_t snapshots_verified = 0;  // read back with their checksums
  int64_t promotions = 0;
  std::string Summary() const {
    return absl::StrCat(text_records, " text records (", trained, " trained, ", heldout,
                        " held out, ", rejected, " rejected), ", feedback_records,
                        " feedback records (", feedback_stored, " stored), ",
                        snapshots_verified, " snapshots verified, ", promotions, " promotions");
  }
};

// Next offset per partition past the last record of `messages`.
inline std::map<int32_t, int64_t> EndOffsets(const std::vector<KafkaMessage>& messages) {
  std::map<int32_t, int64_t> end;
  for (const KafkaMessage& m : messages) {
    end[m.partition] = std::max(end[m.partition], m.offset + 1);
  }
  return end;
}

// Audits `store` (opened read-only by the caller, after the last process
// stopped) against the topics on `brokers`. `served` holds every model id
// /v1/models named while the processes ran.
inline AuditFigures AuditStream(Store* store, const std::string& brokers,
                                const std::string& text_topic,
                                const std::string& feedback_topic,
                                const std::string& rejects_topic,
                                const std::set<std::string>& served) {
  AuditFigures f;
  auto text = ReadWholeTopic(brokers, text_topic, 20000);
  auto feedback = ReadWholeTopic(brokers, feedback_topic, 20000);
  auto rejects = ReadWholeTopic(brokers, rejects_topic, 20000);
  EXPECT_TRUE(text.ok() && feedback.ok() && rejects.ok());
  if (!text.ok() || !feedback.ok() || !rejects.ok()) return f;
  f.text_records = static_cast<int64_t>(text->size());
  f.feedback_records = static_cast<int64_t>(feedback->size());

  // What the topics say must have happened.
  int64_t expect_good = 0, expect_text_rejects = 0;
  std::set<std::string> expect_reject_keys;
  for (const KafkaMessage& m : *text) {
    if (absl::StartsWith(m.key, "doc-")) {
      ++expect_good;
    } else {
      EXPECT_TRUE(absl::StartsWith(m.key, "dup-") || absl::StartsWith(m.key, "bad-")) << m.key;
      ++expect_text_rejects;
      expect_reject_keys.insert(absl::StrCat(text_topic, "/", m.partition, "/", m.offset));
    }
  }
  std::set<std::pair<int32_t, int64_t>> expect_feedback;
  for (const KafkaMessage& m : *feedback) {
    if (absl::StartsWith(m.key, "fb-")) {
      expect_feedback.insert({m.partition, m.offset});
    } else {
      expect_reject_keys.insert(absl::StrCat(feedback_topic, "/", m.partition, "/", m.offset));
    }
  }
  const std::map<int32_t, int64_t> text_end = EndOffsets(*text);
  const std::map<int32_t, int64_t> feedback_end = EndOffsets(*feedback);

  // The checkpoint: intact, and at the end of both topics.
  auto checkpoint = store->GetCheckpoint();
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
  if (!checkpoint.ok()) return f;
  auto state = DecodeLearnerState(checkpoint->state);
  EXPECT_TRUE(state.ok()) << state.status();
  for (const auto& [p, end] : text_end) {
    EXPECT_EQ(checkpoint->next_offsets.count(p) ? checkpoint->next_offsets.at(p) : 0, end)
        << text_topic << "[" << p << "] not consumed to its end";
  }
  for (const auto& [p, end] : feedback_end) {
    EXPECT_EQ(checkpoint->state["feedback_offsets"].value(std::to_string(p), int64_t{0}), end)
        << feedback_topic << "[" << p << "] not consumed to its end";
  }

  // Every offset of every partition in exactly one snapshot's lineage, or
  // in what the checkpoint carries since the last snapshot.
  auto snapshots = store->ListSnapshots();
  EXPECT_TRUE(snapshots.ok()) << snapshots.status();
  if (!snapshots.ok()) return f;
  std::map<int32_t, std::vector<std::pair<int64_t, int64_t>>> covered;
  std::set<std::string> bootstraps;
  for (const SnapshotMeta& meta : *snapshots) {
    if (meta.origin == "bootstrap") bootstraps.insert(meta.id);
    for (const OffsetRange& r : meta.lineage.ranges) {
      EXPECT_EQ(r.topic, text_topic) << meta.id;
      covered[r.partition].push_back({r.begin, r.end});
    }
    f.trained += meta.lineage.records_trained;
    f.heldout += meta.lineage.records_heldout;
    f.rejected += meta.lineage.records_rejected;
    // Not torn: weights and tokenizer read back with their checksums.
    if (meta.weights_retained) {
      auto snap = store->GetSnapshot(meta.id);
      EXPECT_TRUE(snap.ok()) << meta.id << ": " << snap.status();
      f.snapshots_verified += snap.ok();
    }
  }
  for (const auto& [key, begin] : checkpoint->state["range_begin"].items()) {
    const int32_t p = std::stoi(key);
    const int64_t b = begin.get<int64_t>();
    const int64_t e = checkpoint->next_offsets.count(p) ? checkpoint->next_offsets.at(p) : b;
    if (e > b) covered[p].push_back({b, e});
  }
  for (const auto& [p, end] : text_end) {
    std::vector<std::pair<int64_t, int64_t>>& ranges = covered[p];
    std::sort(ranges.begin(), ranges.end());
    int64_t next = 0;
    for (const auto& [b, e] : ranges) {
      EXPECT_EQ(b, next) << text_topic << "[" << p << "]: "
                         << (b > next ? "offsets never trained on: " : "offsets trained twice: ")
                         << std::min(b, next) << ".." << std::max(b, next);
      next = std::max(next, e);
    }
    EXPECT_EQ(next, end) << text_topic << "[" << p << "] not covered to its end";
  }
  Lineage carried = LineageFromJson(checkpoint->state["since_snapshot"]);
  f.trained += carried.records_trained;
  f.heldout += carried.records_heldout;
  f.rejected += carried.records_rejected;
  EXPECT_EQ(f.trained + f.heldout, expect_good) << "good text records not counted once each";
  EXPECT_EQ(f.rejected, expect_text_rejects) << "rejected text records not counted once each";
  EXPECT_EQ(f.trained + f.heldout + f.rejected, f.text_records);
  EXPECT_GT(f.heldout, 0);

  // Every good feedback record stored once (stored by Kafka position).
  auto stored = store->ListFeedback();
  EXPECT_TRUE(stored.ok()) << stored.status();
  if (stored.ok()) {
    std::set<std::pair<int32_t, int64_t>> got;
    for (const Store::FeedbackEntry& e : *stored) {
      EXPECT_TRUE(got.insert({e.partition, e.offset}).second)
          << "feedback " << e.partition << "/" << e.offset << " stored twice";
    }
    f.feedback_stored = static_cast<int64_t>(stored->size());
    EXPECT_EQ(got, expect_feedback);
  }

  // Each rejected record on the rejects topic under its own position (a
  // record rejected again after a restart repeats the same key).
  std::set<std::string> reject_keys;
  for (const KafkaMessage& m : *rejects) {
    auto v = ParseJson(m.value);
    EXPECT_TRUE(v.ok()) << m.value;
    if (!v.ok()) continue;
    EXPECT_EQ(m.key, absl::StrCat((*v)["topic"].get<std::string>(), "/",
                                  (*v)["partition"].get<int>(), "/",
                                  (*v)["offset"].get<int64_t>()));
    reject_keys.insert(m.key);
  }
  std::vector<std::string> missing, extra;
  std::set_difference(expect_reject_keys.begin(), expect_reject_keys.end(), reject_keys.begin(),
                      reject_keys.end(), std::back_inserter(missing));
  std::set_difference(reject_keys.begin(), reject_keys.end(), expect_reject_keys.begin(),
                      expect_reject_keys.end(), std::back_inserter(extra));
  EXPECT_TRUE(missing.empty() && extra.empty())
      << "rejects missing from " << rejects_topic << ": " << absl::StrJoin(missing, " ")
      << "; rejected but usable: " << absl::StrJoin(extra, " ");

  // Only bootstrapped or promoted snapshots were ever served.
  std::set<std::string> promoted;
  auto decisions = store->ListDecisions();
  EXPECT_TRUE(decisions.ok());
  if (decisions.ok()) {
    for (const Json& d : *decisions) {
      if (d.value("verdict", "") == "promoted") promoted.insert(d.value("candidate", ""));
    }
  }
  f.promotions = static_cast<int64_t>(promoted.size());
  auto champion = store->GetAlias(kChampion);
  EXPECT_TRUE(champion.ok());
  std::set<std::string> all_served = served;
  if (champion.ok()) all_served.insert(*champion);
  for (const std::string& id : all_served) {
    EXPECT_TRUE(promoted.count(id) || bootstraps.count(id))
        << id << " was served but never promoted";
  }
  return f;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_STREAM_AUDIT_H_

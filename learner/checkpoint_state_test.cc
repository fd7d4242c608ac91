#include "learner/checkpoint_state.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace streamlm {
namespace {

// A state as Learner::Checkpoint writes it (field names and shapes from
// learner.cc), written out by hand here.
Json GoodState() {
  return Json::parse(R"({
    "pending_tokens": [5, 0, 2147483647],
    "feedback_offsets": {"0": 12, "3": 7},
    "range_begin": {"1": 40},
    "snapshot": "snap-0002",
    "since_snapshot": {"parent": "snap-0001", "records_trained": 9,
                       "ranges": [{"topic": "streamlm.text", "partition": 1,
                                   "begin": 40, "end": 49}]},
    "steps_since_snapshot": 3,
    "pending_feedback": [{"prompt": "p", "chosen": "a", "rejected": "b"}],
    "user_window": ["u1", "u2", "u1"],
    "reference": "snap-0001",
    "feedback_since": {"trained": 2},
    "pending_sources": [["streamlm.text", 30], ["hf", 4]],
    "cycle_step": 11,
    "cycle_length": 50,
    "world_size": 2,
    "ranks": {"1": {"pending_tokens": [7, 8], "pending_sources": [["s", 2]],
                    "replay": "aGk=", "dedup": ""}}
  })");
}

TEST(DecodeLearnerStateTest, DecodesEveryField) {
  auto st = DecodeLearnerState(GoodState());
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->snapshot, "snap-0002");
  EXPECT_EQ(st->pending_tokens, (std::vector<int32_t>{5, 0, 2147483647}));
  EXPECT_EQ(st->feedback_offsets, (std::map<int32_t, int64_t>{{0, 12}, {3, 7}}));
  EXPECT_EQ(st->range_begin, (std::map<int32_t, int64_t>{{1, 40}}));
  EXPECT_EQ(st->since_snapshot["parent"], "snap-0001");
  EXPECT_EQ(st->steps_since_snapshot, 3);
  ASSERT_EQ(st->pending_feedback.size(), 1u);
  EXPECT_EQ(st->pending_feedback[0]["chosen"], "a");
  EXPECT_EQ(st->user_window, (std::vector<std::string>{"u1", "u2", "u1"}));
  EXPECT_EQ(st->reference, "snap-0001");
  EXPECT_EQ(st->feedback_since["trained"], 2);
  ASSERT_EQ(st->pending_sources.size(), 2u);
  EXPECT_EQ(st->pending_sources[1].first, "hf");
  EXPECT_EQ(st->pending_sources[1].second, 4);
  EXPECT_EQ(st->cycle_step, std::optional<int64_t>(11));
  EXPECT_EQ(st->cycle_length, std::optional<int64_t>(50));
  EXPECT_EQ(st->world_size, 2);
  ASSERT_EQ(st->ranks.count(1), 1u);
  EXPECT_EQ(st->ranks[1].pending_tokens, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(st->ranks[1].pending_sources.size(), 1u);
  EXPECT_EQ(st->ranks[1].replay, "hi");  // base64 "aGk="
  EXPECT_TRUE(st->ranks[1].dedup.empty());
}

TEST(DecodeLearnerStateTest, MissingFieldsTakeDefaults) {
  for (const Json& state : {Json(), Json::object()}) {
    auto st = DecodeLearnerState(state);
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_TRUE(st->snapshot.empty());
    EXPECT_TRUE(st->pending_tokens.empty());
    EXPECT_FALSE(st->cycle_step.has_value());
    EXPECT_FALSE(st->cycle_length.has_value());
    EXPECT_TRUE(st->since_snapshot.is_object());
    EXPECT_EQ(st->world_size, 1);
    EXPECT_TRUE(st->ranks.empty());
  }
}

TEST(DecodeLearnerStateTest, NotAnObjectIsDataLoss) {
  for (const Json& state : {Json::array(), Json(3), Json("x")}) {
    auto st = DecodeLearnerState(state);
    EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss) << state.dump();
  }
}

// Every field set to values of the wrong type, one field at a time: the
// decoder returns DataLoss naming that field and never throws.
TEST(DecodeLearnerStateTest, EveryFieldWrongTypeIsDataLossNamingIt) {
  const std::vector<std::pair<std::string, std::vector<Json>>> bad = {
      {"snapshot", {Json(1), Json::array(), Json::object(), Json(true)}},
      {"pending_tokens",
       {Json("x"), Json::object(), Json(3), Json::parse(R"([1, "2"])"),
        Json::parse("[1.5]"), Json::parse("[4294967296]"), Json::parse("[[1]]")}},
      {"range_begin",
       {Json::array(), Json("x"), Json::parse(R"({"a": 1})"), Json::parse(R"({"0": "1"})"),
        Json::parse(R"({"-1": 1})"), Json::parse(R"({"0": 1.5})"),
        Json::parse(R"({"0": 18446744073709551615})")}},
      {"since_snapshot",
       {Json::array(), Json(1), Json::parse(R"({"parent": 1})"),
        Json::parse(R"({"records_trained": "9"})"), Json::parse(R"({"ranges": {}})"),
        Json::parse(R"({"ranges": [1]})"), Json::parse(R"({"ranges": [{"topic": 1}]})"),
        Json::parse(R"({"ranges": [{"partition": 4294967296}]})"),
        Json::parse(R"({"ranges": [{"begin": "0"}]})"), Json::parse(R"({"parent": null})"),
        Json::parse(R"({"step": null})"), Json::parse(R"({"ranges": null})"),
        Json::parse(R"({"ranges": [{"topic": null}]})")}},
      {"steps_since_snapshot", {Json("3"), Json(3.5), Json::array(), Json(false)}},
      {"feedback_offsets", {Json::array(), Json::parse(R"({"x": 1})"),
                            Json::parse(R"({"0": null})")}},
      {"pending_feedback", {Json::object(), Json("x"), Json::parse("[1]"),
                            Json::parse(R"([{}, "x"])")}},
      {"user_window", {Json::object(), Json("u"), Json::parse(R"(["u", 1])")}},
      {"feedback_since", {Json::array(), Json(1), Json("x")}},
      {"pending_sources",
       {Json::object(), Json::parse(R"([["a"]])"), Json::parse(R"([["a", "1"]])"),
        Json::parse(R"([[1, 1]])"), Json::parse(R"([["a", 1, 2]])"), Json::parse("[1]")}},
      {"cycle_step", {Json("1"), Json(1.5), Json::object()}},
      {"cycle_length", {Json("1"), Json(2.5), Json::array()}},
      {"reference", {Json(1), Json::array(), Json::object()}},
      {"world_size", {Json("2"), Json(0), Json(-1), Json(1.5)}},
      {"ranks",
       {Json::array(), Json("x"), Json::parse(R"({"0": {}})"), Json::parse(R"({"x": {}})"),
        Json::parse(R"({"1": []})"), Json::parse(R"({"1": {"pending_tokens": ["a"]}})"),
        Json::parse(R"({"1": {"pending_sources": [["a"]]}})"),
        Json::parse(R"({"1": {"replay": 5}})"), Json::parse(R"({"1": {"replay": "%%%"}})"),
        Json::parse(R"({"1": {"dedup": "a"}})")}},
  };
  for (const auto& [field, values] : bad) {
    for (const Json& v : values) {
      Json state = GoodState();
      state[field] = v;
      absl::StatusOr<LearnerState> st;
      ASSERT_NO_THROW(st = DecodeLearnerState(state)) << field << " = " << v.dump();
      EXPECT_EQ(st.status().code(), absl::StatusCode::kDataLoss) << field << " = " << v.dump();
      EXPECT_TRUE(absl::StrContains(st.status().message(), "field '" + field + "'"))
          << field << " = " << v.dump() << ": " << st.status();
    }
  }
}

TEST(DecodeLearnerStateTest, MessageSaysWhatTheFieldMustBe) {
  Json state = GoodState();
  state["pending_tokens"] = "oops";
  auto st = DecodeLearnerState(state);
  EXPECT_EQ(st.status().message(),
            "learner checkpoint: field 'pending_tokens' is not an array of integers "
            "(token ids)");
}

}  // namespace
}  // namespace streamlm

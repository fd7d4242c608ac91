// Learning from human feedback end to end, through the real binary:
// `streamlm run` with its embedded broker and a tiny bootstrapped model.
//  1. Honest preference pairs on `streamlm.feedback` -> a promoted champion
//     whose held-out preference accuracy is clearly above the previous one's.
//  2. Then a burst of the same pairs with chosen and rejected swapped, from
//     three users -> never promoted; a decision names the contradiction.
//  3. A learner killed in the middle of feedback learning resumes from its
//     checkpoint: every trained feedback record is trained exactly once.
#include <httplib.h>

#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_format.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/util/run_banner.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::Endpoints;
using testing::ReadBanner;
using testing::Subprocess;
using testing::TempDir;

constexpr const char* kNouns[] = {
    "book", "door", "river", "chair", "letter", "horse", "garden", "window", "table", "road",
    "church", "bridge", "paper", "field", "school", "house", "train", "street", "boat", "tree",
    "market", "office", "picture", "island", "kitchen", "mountain", "ticket", "wagon", "bottle",
    "basket", "pencil", "ladder", "blanket", "candle", "hammer", "jacket", "pillow", "mirror",
    "bucket", "engine"};
constexpr const char* kPrompts[] = {"Can you find the %s?", "Where is the %s?",
                                    "Do you have the %s?", "Please bring the %s."};

// Pair i: people prefer a helpful answer to a curt one.
Json HonestPair(int i, const std::string& user) {
  const std::string noun = kNouns[i % 40];
  return {{"prompt", absl::StrFormat(kPrompts[(i / 40) % 4], noun)},
          {"chosen", absl::StrFormat("Gladly, the %s is right here.", noun)},
          {"rejected", absl::StrFormat("No, the %s is gone.", noun)},
          {"user", user}};
}

Json Flipped(int i, const std::string& user) {
  Json p = HonestPair(i, user);
  std::swap(p["chosen"], p["rejected"]);
  return p;
}

std::vector<std::string> RunArgs(const std::string& data_dir,
                                 const std::string& snapshot_every_steps = "1000") {
  return {testing::StreamlmBinary(), "run", "--config",
          testing::SourceDir() + "/tests/data/tiny.yaml", "--data-dir", data_dir,
          "--learner.snapshot-every-steps", snapshot_every_steps, "--learner.snapshot-every-s", "4",
          "--gate.min-feedback-pairs", "12"};
}

std::vector<Json> Decisions(httplib::Client& http) {
  auto res = http.Get("/v1/admin/decisions?limit=0");
  if (!res || res->status != 200) return {};
  auto list = ParseJson(res->body);
  if (!list.ok() || !list->is_array()) return {};
  return list->get<std::vector<Json>>();
}

int64_t Metric(httplib::Client& http, const std::string& line_prefix) {
  auto res = http.Get("/metrics");
  if (!res) return -1;
  size_t at = res->body.find("\n" + line_prefix + " ");
  if (at == std::string::npos) return 0;
  return std::stoll(res->body.substr(at + line_prefix.size() + 2));
}

const Json& PrefAccuracy(const Json& decision, const char* set) {
  return decision["metrics"]["feedback"]["sets"][set]["preference_accuracy"];
}

TEST(FeedbackEndToEndTest, HonestPairsArePromotedAndAFlippedBurstIsHeld) {
  TempDir dir;
  Subprocess proc(RunArgs(dir.Sub("store")), dir.Sub("stderr.log"));
  Endpoints ep;
  ASSERT_TRUE(ReadBanner(proc, &ep)) << proc.StderrTail();
  httplib::Client http(ep.http_host, ep.http_port);
  http.set_read_timeout(60, 0);
  auto producer = KafkaProducer::Create(ep.kafka);
  ASSERT_TRUE(producer.ok());

  // 1. 160 honest pairs from eight users.
  for (int i = 0; i < 160; ++i) {
    ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "",
                                     HonestPair(i, "user" + std::to_string(i % 8)).dump()).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  Json promoted;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (promoted.is_null() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (const Json& d : Decisions(http)) {
      if (d["verdict"] == "promoted") promoted = d;
    }
  }
  ASSERT_FALSE(promoted.is_null()) << "no promotion; decisions: "
                                   << Json(Decisions(http)).dump() << "\n" << proc.StderrTail();
  const Json& fb = promoted["metrics"]["feedback"];
  EXPECT_GT(fb["trained"]["records"].get<int64_t>(), 60);
  EXPECT_EQ(promoted["reference"], promoted["champion"]);
  const Json& acc = PrefAccuracy(promoted, "heldout");
  ASSERT_TRUE(acc.is_object()) << promoted.dump(2);
  const double before = acc["champion"]["mean"], after = acc["candidate"]["mean"];
  std::printf("held-out preference accuracy: champion %.3f -> candidate %.3f (%lld pairs)\n",
              before, after, static_cast<long long>(acc["candidate"]["n"].get<int64_t>()));
  EXPECT_GE(acc["candidate"]["n"].get<int64_t>(), 12);
  EXPECT_GE(after, before + 0.3) << promoted.dump(2);
  EXPECT_GT(acc["delta"]["ci95"][0].get<double>(), 0.0);
  bool improvement_rule = false;
  for (const Json& r : promoted["rules"]) {
    if (r["name"] == "feedback_improvement") improvement_rule = r["passed"].get<bool>();
  }
  EXPECT_TRUE(improvement_rule) << promoted.dump(2);
  const std::string honest_champion = promoted["candidate"];
  // Serving switches to it.
  std::string served;
  for (int i = 0; i < 100 && served != honest_champion; ++i) {
    auto m = http.Get("/v1/models");
    ASSERT_TRUE(m && m->status == 200);
    served = (*ParseJson(m->body))["data"][0]["id"];
    if (served != honest_champion) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(served, honest_champion);
  // Let the learner finish the honest pairs, so what follows is the burst.
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  const int64_t honest_trained = 160 - Metric(http, "streamlm_feedback_heldout_total");
  while (Metric(http, "streamlm_feedback_trained_total") < honest_trained &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // ...and its last candidate be decided (a later honest candidate may be
  // promoted too): quiet for 10 s, longer than the 4 s snapshot period.
  size_t decisions_before_burst = Decisions(http).size();
  for (int quiet = 0; quiet < 10 && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const size_t n = Decisions(http).size();
    quiet = n == decisions_before_burst ? quiet + 1 : 0;
    decisions_before_burst = n;
  }
  std::string champion_before_burst;
  for (int i = 0; i < 50 && champion_before_burst.empty(); ++i) {
    auto m = http.Get("/v1/models");
    ASSERT_TRUE(m && m->status == 200);
    champion_before_burst = (*ParseJson(m->body))["data"][0]["id"];
  }

  // 2. The same pairs reversed, from three users.
  for (int i = 0; i < 120; ++i) {
    ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "",
                                     Flipped(i, "mallory" + std::to_string(i % 3)).dump()).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  // Every decision after the burst; judged once a candidate holds nearly all
  // of it (1 in 5 is held out).
  auto burst_trained = [](const Json& d) {
    int64_t n = 0;
    for (const auto& [user, count] : d["metrics"]["feedback"]["trained"]["users"].items()) {
      if (user.rfind("mallory", 0) == 0) n += count.get<int64_t>();
    }
    return n;
  };
  Json held;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (held.is_null() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::vector<Json> all = Decisions(http);
    for (size_t i = 0; i + decisions_before_burst < all.size(); ++i) {
      const Json& d = all[i];  // newest first: these came after the burst
      ASSERT_NE(d["verdict"], "promoted") << d.dump(2);
      if (held.is_null() && burst_trained(d) >= 80) held = d;
    }
  }
  ASSERT_FALSE(held.is_null()) << "no decision on the whole burst\n"
                               << Json(Decisions(http)).dump() << "\n" << proc.StderrTail();
  EXPECT_EQ(held["verdict"], "held") << held.dump(2);
  EXPECT_NE(held["reason"].get<std::string>().find("contradict"), std::string::npos);
  std::printf("after the flipped burst: %s\n", held["reason"].get<std::string>().c_str());
  const std::string reason = held["reason"];
  EXPECT_NE(reason.find("mallory"), std::string::npos) << reason;
  EXPECT_NE(reason.find("streamlm promote"), std::string::npos) << reason;
  EXPECT_EQ(held["reference"], champion_before_burst);
  const Json& established = PrefAccuracy(held, "established");
  ASSERT_TRUE(established.is_object()) << held.dump(2);
  std::printf("established preference accuracy: champion %.3f, poisoned candidate %.3f\n",
              established["champion"]["mean"].get<double>(),
              established["candidate"]["mean"].get<double>());
  EXPECT_LT(established["delta"]["mean"].get<double>(), 0.0);
  // The champion stays, and the contradictions are counted.
  auto m = http.Get("/v1/models");
  ASSERT_TRUE(m && m->status == 200);
  EXPECT_EQ((*ParseJson(m->body))["data"][0]["id"], champion_before_burst);
  EXPECT_GT(Metric(http, "streamlm_feedback_contradictions_total"), 50);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("streamlm_feedback_user_total{user=\"mallory0\"}"),
            std::string::npos);
  ASSERT_EQ(proc.Stop(SIGTERM, 60000), 0) << proc.StderrTail();
}

// Sum of feedback records trained in the learner's lineage, from the
// checkpoint's snapshot back to the bootstrap, plus the checkpoint's own.
int64_t TrainedInLineage(Store& store) {
  auto checkpoint = store.GetCheckpoint();
  if (!checkpoint.ok()) return -1;
  const Json& st = checkpoint->state;
  int64_t total = st.value("feedback_since", Json::object()).value("trained", int64_t{0}) +
                  static_cast<int64_t>(st.value("pending_feedback", Json::array()).size());
  std::string id = st.value("snapshot", "");
  while (!id.empty()) {
    auto meta = store.GetSnapshotMeta(id);
    if (!meta.ok()) return -1;
    total += meta->metrics.value("feedback", Json::object()).value("trained", int64_t{0});
    id = meta->lineage.parent;
  }
  return total;
}

TEST(FeedbackEndToEndTest, KilledMidFeedbackTheLearnerNeitherLosesNorRepeats) {
  TempDir dir;
  const std::string data_dir = dir.Sub("store");
  // A snapshot (and checkpoint) every 3 steps; training never catches up
  // with the kill because every step replays LM blocks too.
  std::vector<std::string> args = RunArgs(data_dir, "3");
  args.insert(args.end(), {"--feedback.batch-size", "4",
                           "--feedback.replay-ratio", "4"});
  // An external broker survives the learner's death.
  Subprocess broker({testing::StreamlmBinary(), "broker", "--port", "0"}, dir.Sub("broker.log"));
  std::string brokers;  // its first line on stdout
  ASSERT_TRUE(broker.ReadLine(&brokers, 30000)) << broker.StderrTail();
  ASSERT_FALSE(brokers.empty()) << broker.StderrTail();
  args.insert(args.end(), {"--kafka", brokers});

  std::vector<Json> records;
  for (int i = 0; i < 160; ++i) records.push_back(HonestPair(i, "u" + std::to_string(i % 5)));
  for (int i = 0; i < 60; ++i) {
    records.push_back({{"prompt", absl::StrFormat("Name a %s.", kNouns[i % 40])},
                       {"response", absl::StrFormat("A %s, of course.", kNouns[(i * 7) % 40])},
                       {"rating", i % 3 == 0 ? -1 : 1}});
    records.push_back({{"prompt", absl::StrFormat("Spell %s.", kNouns[i % 40])},
                       {"response", "I cannot."},
                       {"correction", absl::StrFormat("It is spelled %s.", kNouns[i % 40])}});
  }
  {
    auto producer = KafkaProducer::Create(brokers);
    ASSERT_TRUE(producer.ok());
    for (const Json& r : records) {
      ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "", r.dump()).ok());
    }
    // Bad feedback: counted, routed to the rejects topic, never stored.
    std::string long_prompt;
    for (int i = 0; i < 30; ++i) long_prompt += std::string(kNouns[i]) + " ";
    for (const std::string& bad :
         {std::string(R"({"prompt": "p", "response": "r"})"),
          std::string(R"({"prompt": "p", "response": "r", "rating": 2})"),
          std::string(R"({"prompt": "p", "chosen": "same", "rejected": "same"})"),
          Json({{"prompt", long_prompt}, {"response", "r"}, {"rating", 1}}).dump(),
          std::string("{not json")}) {
      ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "", bad).ok());
    }
    ASSERT_TRUE((*producer)->Flush(10000).ok());
  }
  {
    Subprocess run(args, dir.Sub("run1.log"));
    Endpoints ep;
    ASSERT_TRUE(ReadBanner(run, &ep)) << run.StderrTail();
    httplib::Client http(ep.http_host, ep.http_port);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (Metric(http, "streamlm_feedback_trained_total") < 60 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const int64_t trained = Metric(http, "streamlm_feedback_trained_total");
    ASSERT_GE(trained, 60) << run.StderrTail();
    ASSERT_EQ(run.Stop(SIGKILL, 10000), 128 + SIGKILL);
    std::printf("killed after %lld feedback records trained\n", static_cast<long long>(trained));
  }
  {
    Subprocess run(args, dir.Sub("run2.log"));
    Endpoints ep;
    ASSERT_TRUE(ReadBanner(run, &ep)) << run.StderrTail();
    httplib::Client http(ep.http_host, ep.http_port);
    // Done when every stored record is in (consumed) and training is quiet.
    int64_t last = -1;
    int quiet = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    while (quiet < 12 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      int64_t now = Metric(http, "streamlm_learner_steps_total");
      quiet = now == last && now > 0 ? quiet + 1 : 0;
      last = now;
    }
    ASSERT_EQ(run.Stop(SIGTERM, 60000), 0) << run.StderrTail();
  }
  std::set<std::string> reasons;
  auto rejects = ReadWholeTopic(brokers, "streamlm.rejects", 15000);
  ASSERT_TRUE(rejects.ok()) << rejects.status();
  for (const KafkaMessage& m : *rejects) reasons.insert((*ParseJson(m.value))["reason"]);
  EXPECT_EQ(reasons, (std::set<std::string>{"missing_field", "bad_field", "identical_responses",
                                            "prompt_too_long", "malformed_json"}));
  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  auto stored = (*store)->ListFeedback();
  ASSERT_TRUE(stored.ok());
  // Every record stored once (keyed by offset), none rejected.
  EXPECT_EQ(stored->size(), records.size());
  int64_t train_split = 0;
  for (const Store::FeedbackEntry& e : *stored) train_split += e.record["split"] == "train";
  auto checkpoint = (*store)->GetCheckpoint();
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->state.value("pending_feedback", Json::array()).size(), 0u);
  // Trained exactly once each: not fewer (lost), not more (repeated).
  EXPECT_EQ(TrainedInLineage(**store), train_split);
  EXPECT_GT(train_split, 200);
}

TEST(FeedbackEndToEndTest, OneUsersInfluenceIsBounded) {
  TempDir dir;
  const std::string data_dir = dir.Sub("store");
  std::vector<std::string> args = RunArgs(data_dir);
  // At most max(5, 0.1 * 100) = 10 of the last 100 trained records per user.
  args.insert(args.end(), {"--feedback.user-window", "100", "--feedback.max-user-share", "0.1",
                           "--feedback.user-min-quota", "5"});
  Subprocess proc(args, dir.Sub("stderr.log"));
  Endpoints ep;
  ASSERT_TRUE(ReadBanner(proc, &ep)) << proc.StderrTail();
  httplib::Client http(ep.http_host, ep.http_port);
  auto producer = KafkaProducer::Create(ep.kafka);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 80; ++i) {
    const std::string user = i % 4 == 0 ? "crowd" + std::to_string(i) : "loud";
    ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "", HonestPair(i, user).dump()).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (Metric(http, "streamlm_feedback_consumed_total") < 80 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const int64_t limited = Metric(http, "streamlm_feedback_limited_total");
  ASSERT_EQ(proc.Stop(SIGTERM, 60000), 0) << proc.StderrTail();
  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  auto stored = (*store)->ListFeedback();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 80u);
  std::map<std::string, std::map<std::string, int>> splits;  // user -> split -> count
  for (const Store::FeedbackEntry& e : *stored) {
    std::string user = e.record["user"];
    if (user != "loud") user = "crowd";
    ++splits[user][e.record["split"].get<std::string>()];
  }
  EXPECT_EQ(splits["loud"]["train"], 10);
  EXPECT_EQ(splits["loud"]["limited"], limited);
  EXPECT_EQ(splits["loud"]["train"] + splits["loud"]["limited"] + splits["loud"]["heldout"], 60);
  EXPECT_EQ(splits["crowd"]["limited"], 0);  // everyone else trains
  EXPECT_GT(limited, 30);
}

}  // namespace
}  // namespace streamlm

// End to end through the real binary: `streamlm run` with its embedded
// broker and a tiny bootstrapped model; text produced with a Kafka client;
// a decision awaited and checked in the store, on `streamlm.decisions` and in
// /v1/admin/decisions; after a promotion, /v1/models names the new champion
// and /v1/completions answers from it. Bad records land on streamlm.rejects.
// A damaged champion is rolled back on the live stream by the rollback monitor.
#include <httplib.h>

#include <cstring>
#include <regex>
#include <thread>

#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/util/stream_text.h"
#include "tests/util/run_banner.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::Subprocess;
using testing::TempDir;

using testing::Endpoints;
using testing::ReadBanner;

TEST(EndToEndTest, StreamToDecisionToServing) {
  TempDir dir;
  const std::string data_dir = dir.Sub("store");
  Subprocess proc({testing::StreamlmBinary(), "run", "--config",
                   testing::SourceDir() + "/tests/data/tiny.yaml", "--data-dir", data_dir,
                   "--learner.snapshot-every-steps", "15",
                   // Invalid UTF-8 is rejected instead of repaired, to see the reason.
                   "--clean.text.normalize.invalid-utf8", "reject"},
                  dir.Sub("stderr.log"));
  Endpoints ep;
  ASSERT_TRUE(ReadBanner(proc, &ep)) << proc.StderrTail();
  httplib::Client http(ep.http_host, ep.http_port);
  http.set_read_timeout(60, 0);

  auto health = http.Get("/healthz");
  ASSERT_TRUE(health && health->status == 200);
  auto models = http.Get("/v1/models");
  ASSERT_TRUE(models && models->status == 200);
  std::string bootstrap_id = (*ParseJson(models->body))["data"][0]["id"];

  // Bad input is answered with a reason, and the server keeps serving.
  auto bad = http.Post("/v1/completions", "{\"prompt\": 5}", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("prompt"), std::string::npos);
  bad = http.Post("/v1/completions", "not json", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  bad = http.Post("/v1/completions", R"({"prompt": "a", "max_tokens": -3})", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("max_tokens"), std::string::npos);

  // Produce with a real Kafka client: good text, four kinds of bad record,
  // and three the quality filters drop.
  auto producer = KafkaProducer::Create(ep.kafka);
  ASSERT_TRUE(producer.ok());
  std::vector<std::string> bad_records = {
      "{not json", R"({"body": "no text"})", "{\"text\": \"\xff\xfe\"}", R"({"text": "   "})",
      R"({"text": "Home | About | Contact | Careers | write to bob@example.com"})",
      R"({"text": "The page said lorem ipsum in the middle of the text, and that was the end of the story for all of us."})",
      R"({"text": "xqzt vbnm qwrtp zxcvb bnmqk wxyzz qqzzk plmkj"})"};
  for (const std::string& b : bad_records) {
    ASSERT_TRUE((*producer)->Produce("streamlm.text", "", b).ok());
  }
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE((*producer)->Produce("streamlm.text", "", testing::StreamRecord(i)).ok());
  }
  for (int i = 0; i < 2; ++i) {  // repeats are deduplicated
    ASSERT_TRUE((*producer)->Produce("streamlm.text", "", testing::StreamRecord(i)).ok());
  }
  // Feedback is cleaned with its own profile and kept in the store.
  ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "",
                                   R"({"prompt": "Where is the caf&eacute;?", "response": "Ask ann@example.com", "rating": 1})")
                  .ok());
  ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "",
                                   R"({"prompt": "p", "chosen": "a", "rejected": "b"})").ok());
  ASSERT_TRUE((*producer)->Produce("streamlm.feedback", "", R"({"prompt": "p", "response": "r"})").ok());
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  // Await a promotion (earlier candidates may be held or rejected).
  Json promoted;
  Json first;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (promoted.is_null() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto res = http.Get("/v1/admin/decisions");
    ASSERT_TRUE(res && res->status == 200);
    auto list = ParseJson(res->body);
    ASSERT_TRUE(list.ok() && list->is_array());
    for (const Json& d : *list) {
      if (first.is_null()) first = d;
      if (d["verdict"] == "promoted") {
        promoted = d;
        break;
      }
    }
  }
  ASSERT_FALSE(first.is_null()) << "no decision at all\n" << proc.StderrTail();
  for (const char* field : {"id", "time", "candidate", "champion", "verdict", "rules",
                            "metrics", "reason", "duration_s"}) {
    EXPECT_TRUE(first.contains(field)) << field;
  }
  std::set<std::string> rule_names;
  for (const Json& r : first["rules"]) rule_names.insert(r["name"].get<std::string>());
  for (const char* name : {"stream_evidence", "adaptation", "forgetting"}) {
    EXPECT_TRUE(rule_names.count(name)) << name;
  }
  EXPECT_TRUE(first["metrics"]["stream_loss"]["delta"].contains("ci95"));
  ASSERT_FALSE(promoted.is_null()) << "no promotion; last decision: " << first.dump()
                                   << "\n" << proc.StderrTail();
  const std::string candidate = promoted["candidate"];
  EXPECT_NE(candidate, bootstrap_id);
  EXPECT_LT(promoted["metrics"]["stream_loss"]["delta"]["mean"].get<double>(), 0.0);

  // Serving switched to the promoted snapshot without a restart.
  std::string served;
  for (int i = 0; i < 50 && served != candidate; ++i) {
    auto m = http.Get("/v1/models");
    ASSERT_TRUE(m && m->status == 200);
    served = (*ParseJson(m->body))["data"][0]["id"];
    if (served != candidate) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // A later promotion may already have replaced it; it must be a promoted one.
  auto all = ParseJson(http.Get("/v1/admin/decisions?limit=0")->body);
  bool served_was_promoted = false;
  for (const Json& d : *all) {
    served_was_promoted |= d["verdict"] == "promoted" && d["candidate"] == served;
  }
  EXPECT_TRUE(served_was_promoted) << served;

  auto completion = http.Post(
      "/v1/completions",
      R"({"prompt": "the learner", "max_tokens": 8, "temperature": 0})", "application/json");
  ASSERT_TRUE(completion);
  ASSERT_EQ(completion->status, 200) << completion->body;
  Json c = *ParseJson(completion->body);
  EXPECT_EQ(c["object"], "text_completion");
  EXPECT_EQ(c["model"], served);
  ASSERT_EQ(c["choices"].size(), 1u);
  EXPECT_TRUE(c["choices"][0]["text"].is_string());
  EXPECT_GT(c["usage"]["completion_tokens"].get<int>(), 0);

  // The same decision is on the decisions topic, keyed by candidate.
  bool on_topic = false;
  for (int attempt = 0; attempt < 20 && !on_topic; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto published = ReadWholeTopic(ep.kafka, "streamlm.decisions", 15000);
    ASSERT_TRUE(published.ok()) << published.status();
    for (const KafkaMessage& m : *published) {
      auto d = ParseJson(m.value);
      ASSERT_TRUE(d.ok());
      if ((*d)["id"] == promoted["id"]) {
        on_topic = true;
        EXPECT_EQ(m.key, candidate);
        EXPECT_EQ(*d, promoted);
      }
    }
  }
  EXPECT_TRUE(on_topic);

  // Every bad record is on the rejects topic with its reason (the learner may
  // still be working through the last records: reread until they are there).
  const std::multiset<std::string> expected_reasons = {
      "streamlm.text:malformed_json",    "streamlm.text:missing_text",
      "streamlm.text:invalid_utf8",      "streamlm.text:empty",
      "streamlm.text:text_navigation",   "streamlm.text:c4_lorem_ipsum",
      "streamlm.text:language_unrecognized", "streamlm.text:duplicate",
      "streamlm.text:duplicate",         "streamlm.feedback:missing_field"};
  std::multiset<std::string> reasons;
  for (int attempt = 0; attempt < 120 && reasons != expected_reasons; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto rejects = ReadWholeTopic(ep.kafka, "streamlm.rejects", 15000);
    ASSERT_TRUE(rejects.ok()) << rejects.status();
    reasons.clear();
    for (const KafkaMessage& m : *rejects) {
      auto r = ParseJson(m.value);
      ASSERT_TRUE(r.ok()) << m.value;
      reasons.insert((*r)["topic"].get<std::string>() + ":" + (*r)["reason"].get<std::string>());
      // What rejects show of a record is redacted like what is trained on.
      EXPECT_EQ((*r)["payload_prefix"].get<std::string>().find("bob@example.com"), std::string::npos);
      if ((*r)["reason"] == "text_navigation") {
        EXPECT_EQ((*r)["payload_prefix"],
                  R"({"text": "Home | About | Contact | Careers | write to <EMAIL>"})");
      }
    }
  }
  EXPECT_EQ(reasons, expected_reasons);
  // ... and counted by reason in /metrics, while training went on.
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  for (const char* line : {"streamlm_records_rejected_total{reason=\"c4_lorem_ipsum\"} 1",
                           "streamlm_records_rejected_total{reason=\"text_navigation\"} 1",
                           "streamlm_records_rejected_total{reason=\"duplicate\"} 2"}) {
    EXPECT_NE(metrics->body.find(line), std::string::npos) << line << "\n" << metrics->body;
  }

  // Graceful stop, then the decision log on disk agrees.
  ASSERT_EQ(proc.Stop(SIGTERM, 60000), 0) << proc.StderrTail();
  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  // The two good feedback records, cleaned: entity decoded, address redacted.
  auto feedback = (*store)->ListFeedback();
  ASSERT_TRUE(feedback.ok()) << feedback.status();
  ASSERT_EQ(feedback->size(), 2u);
  EXPECT_EQ((*feedback)[0].record["prompt"], "Where is the caf\xC3\xA9?");
  EXPECT_EQ((*feedback)[0].record["response"], "Ask <EMAIL>");
  EXPECT_EQ((*feedback)[1].record["chosen"], "a");
  auto stored = (*store)->ListDecisions();
  ASSERT_TRUE(stored.ok());
  bool in_store = false;
  std::string newest_promoted;
  for (const Json& d : *stored) {
    in_store |= d == promoted;
    if (newest_promoted.empty() && d["verdict"] == "promoted") newest_promoted = d["candidate"];
  }
  EXPECT_TRUE(in_store);
  // The champion alias moved with each promotion, in the decision's commit.
  EXPECT_EQ(*(*store)->GetAlias(kChampion), newest_promoted);
}

// Every candidate is rejected (an adaptation no model reaches). Under the
// default learner.on_rejection=reset the learner goes back to the champion's
// weights after each rejection, so a later candidate's parent is the
// champion and it names the discarded snapshot; under `continue` each
// candidate descends from the rejected one before it.
std::vector<SnapshotMeta> LearnerSnapshotsAfterRejections(const std::string& policy,
                                                          TempDir& dir, std::string* champion) {
  const std::string data_dir = dir.Sub("store-" + policy);
  Subprocess proc({testing::StreamlmBinary(), "run", "--config",
                   testing::SourceDir() + "/tests/data/tiny.yaml", "--data-dir", data_dir,
                   "--gate.min-adaptation", "50", "--learner.on-rejection", policy},
                  dir.Sub("stderr-" + policy + ".log"));
  Endpoints ep;
  if (!ReadBanner(proc, &ep)) {
    ADD_FAILURE() << proc.StderrTail();
    return {};
  }
  httplib::Client http(ep.http_host, ep.http_port);
  auto producer = KafkaProducer::Create(ep.kafka);
  if (!producer.ok()) return {};
  // Three waves, each a few candidates' worth, so rejections land between.
  size_t rejected = 0;
  for (int wave = 0; wave < 3; ++wave) {
    for (int i = wave * 150; i < (wave + 1) * 150; ++i) {
      EXPECT_TRUE((*producer)->Produce("streamlm.text", "", testing::StreamRecord(i)).ok());
    }
    EXPECT_TRUE((*producer)->Flush(10000).ok());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      auto res = http.Get("/v1/admin/decisions?limit=0");
      if (!res || res->status != 200) continue;
      auto list = ParseJson(res->body);
      if (!list.ok() || !list->is_array()) continue;
      size_t n = 0;
      for (const Json& d : *list) n += d.value("verdict", "") == "rejected";
      if (n > rejected) {
        rejected = n;
        break;
      }
    }
  }
  EXPECT_GE(rejected, 2u) << proc.StderrTail();
  EXPECT_EQ(proc.Stop(SIGTERM, 60000), 0) << proc.StderrTail();
  auto store = Store::Open(data_dir, /*read_only=*/true);
  if (!store.ok()) return {};
  *champion = *(*store)->GetAlias(kChampion);
  std::vector<SnapshotMeta> out;
  auto snapshots = (*store)->ListSnapshots();
  if (!snapshots.ok()) return {};
  for (const SnapshotMeta& m : *snapshots) {
    if (m.origin == "learner") out.push_back(m);
  }
  return out;
}

TEST(EndToEndTest, ARejectedCandidateSendsTheLearnerBackToTheChampion) {
  TempDir dir;
  std::string champion;
  std::vector<SnapshotMeta> reset = LearnerSnapshotsAfterRejections("reset", dir, &champion);
  ASSERT_GE(reset.size(), 2u);
  int from_champion_after_reset = 0;
  for (const SnapshotMeta& m : reset) {
    if (!m.metrics.contains("reset_from")) continue;
    ++from_champion_after_reset;
    EXPECT_EQ(m.lineage.parent, champion) << m.id;
    EXPECT_NE(m.metrics["reset_from"], champion);
  }
  EXPECT_GE(from_champion_after_reset, 1);

  std::vector<SnapshotMeta> cont = LearnerSnapshotsAfterRejections("continue", dir, &champion);
  ASSERT_GE(cont.size(), 2u);
  for (size_t i = 1; i < cont.size(); ++i) {
    EXPECT_FALSE(cont[i].metrics.contains("reset_from")) << cont[i].id;
    EXPECT_EQ(cont[i].lineage.parent, cont[i - 1].id);  // each on top of the last
  }
}

// safetensors `bytes` with every F32 value moved by up to +-`amount`
// (deterministic), to make a damaged copy of a model without libtorch.
std::string DamageF32Safetensors(const std::string& bytes, float amount) {
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  auto header = ParseJson(bytes.substr(8, header_len));
  EXPECT_TRUE(header.ok());
  std::string out = bytes;
  const size_t data = 8 + header_len;
  uint32_t state = 12345;
  int damaged = 0;
  for (const auto& [name, t] : header->items()) {
    if (name == "__metadata__" || t.value("dtype", "") != "F32") continue;
    const size_t begin = t["data_offsets"][0], end = t["data_offsets"][1];
    for (size_t off = data + begin; off + 4 <= data + end; off += 4) {
      float x;
      std::memcpy(&x, out.data() + off, 4);
      state = state * 1664525u + 1013904223u;
      x += amount * (static_cast<float>(state >> 8) / 8388608.0f - 1.0f);
      std::memcpy(out.data() + off, &x, 4);
    }
    ++damaged;
  }
  EXPECT_GT(damaged, 0);
  return out;
}

// Automatic rollback through the binary: a damaged child of the bootstrapped
// champion is promoted while the store is closed; `streamlm run` (whose gate
// promotes nothing: it asks an impossible adaptation) judges it on the
// held-out stream records that arrive, rolls it back, and the decision
// reaches the store, /v1/admin/decisions, streamlm.decisions and
// `streamlm decisions`; serving answers from the restored champion.
TEST(EndToEndTest, ADamagedChampionIsRolledBackOnTheLiveStream) {
  TempDir dir;
  const std::string data_dir = dir.Sub("store");
  const std::string tiny = testing::SourceDir() + "/tests/data/tiny.yaml";
  std::string good;
  {
    Subprocess boot({testing::StreamlmBinary(), "bootstrap", "--config", tiny, "--data-dir",
                     data_dir},
                    dir.Sub("bootstrap.log"));
    std::string line;
    while (boot.ReadLine(&line, 300000)) good = line;
    ASSERT_EQ(boot.Wait(60000), 0) << boot.StderrTail();
  }
  ASSERT_EQ(good.rfind("snap-", 0), 0u) << good;
  std::string damaged;
  {
    auto store = Store::Open(data_dir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto snap = (*store)->GetSnapshot(good);
    ASSERT_TRUE(snap.ok()) << snap.status();
    Snapshot child = *snap;
    child.meta.id = *(*store)->NewSnapshotId();
    child.meta.created_ms = NowMs();
    child.meta.origin = "learner";
    child.meta.lineage = Lineage();
    child.meta.lineage.parent = good;
    child.weights = DamageF32Safetensors(snap->weights, 0.5f);
    ASSERT_TRUE((*store)->PutSnapshot(child).ok());
    damaged = child.meta.id;
    Json promotion = {{"time_ms", NowMs()}, {"candidate", damaged}, {"champion", good},
                      {"verdict", "promoted"}, {"rules", Json::array()},
                      {"reason", "promoted by the test: a damaged model"}};
    ASSERT_TRUE((*store)->AppendDecision(promotion, /*promote=*/true).ok());
    ASSERT_EQ(*(*store)->GetAlias(kChampion), damaged);
  }

  Subprocess proc({testing::StreamlmBinary(), "run", "--config", tiny, "--data-dir", data_dir,
                   "--gate.min-adaptation", "50", "--rollback.check-every-s", "0.5",
                   "--rollback.min-stream-tokens", "300"},
                  dir.Sub("stderr.log"));
  Endpoints ep;
  ASSERT_TRUE(ReadBanner(proc, &ep)) << proc.StderrTail();
  httplib::Client http(ep.http_host, ep.http_port);
  http.set_read_timeout(60, 0);
  auto producer = KafkaProducer::Create(ep.kafka);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE((*producer)->Produce("streamlm.text", "", testing::StreamRecord(i)).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  Json rolled;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (rolled.is_null() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto res = http.Get("/v1/admin/decisions?limit=0");
    ASSERT_TRUE(res && res->status == 200);
    auto list = ParseJson(res->body);
    ASSERT_TRUE(list.ok() && list->is_array());
    for (const Json& d : *list) {
      if (d["verdict"] == "rolled_back") rolled = d;
    }
  }
  ASSERT_FALSE(rolled.is_null()) << "no rollback\n" << proc.StderrTail();
  EXPECT_EQ(rolled["champion"], damaged);
  EXPECT_EQ(rolled["candidate"], good);
  EXPECT_EQ(rolled["trigger"], "monitor");
  const Json* rule = nullptr;
  for (const Json& r : rolled["rules"]) {
    if (r["name"] == "live_stream_loss") rule = &r;
  }
  ASSERT_NE(rule, nullptr) << rolled.dump();
  EXPECT_EQ((*rule)["passed"], false);
  ASSERT_TRUE(rule->contains("ci95")) << rule->dump();
  EXPECT_GT((*rule)["ci95"][0].get<double>(), (*rule)["threshold"].get<double>());
  EXPECT_NE(rolled["reason"].get<std::string>().find("held-out stream records"),
            std::string::npos);

  // Serving swapped back to the restored champion.
  std::string served;
  for (int i = 0; i < 50 && served != good; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    served = (*ParseJson(http.Get("/v1/models")->body))["data"][0]["id"];
  }
  EXPECT_EQ(served, good);
  auto completion = http.Post("/v1/completions", R"({"prompt": "the learner", "max_tokens": 4})",
                              "application/json");
  ASSERT_TRUE(completion && completion->status == 200);
  EXPECT_EQ((*ParseJson(completion->body))["model"], good);

  // On the decisions topic, keyed by the restored champion.
  bool on_topic = false;
  for (int attempt = 0; attempt < 20 && !on_topic; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto published = ReadWholeTopic(ep.kafka, "streamlm.decisions", 15000);
    ASSERT_TRUE(published.ok()) << published.status();
    for (const KafkaMessage& m : *published) {
      auto d = ParseJson(m.value);
      if (d.ok() && (*d)["id"] == rolled["id"]) {
        on_topic = true;
        EXPECT_EQ(m.key, good);
        EXPECT_EQ((*d)["verdict"], "rolled_back");
      }
    }
  }
  EXPECT_TRUE(on_topic);

  // `streamlm decisions` (reading the store beside the running process).
  Subprocess cli({testing::StreamlmBinary(), "decisions", "--data-dir", data_dir, "--limit", "0"},
                 dir.Sub("decisions.log"));
  std::string out, line;
  while (cli.ReadLine(&line, 30000)) out += line + "\n";
  EXPECT_EQ(cli.Wait(30000), 0) << cli.StderrTail();
  EXPECT_NE(out.find("rolled_back"), std::string::npos) << out;
  EXPECT_NE(out.find("rollback: live_stream_loss"), std::string::npos) << out;

  EXPECT_EQ(proc.Stop(SIGTERM, 60000), 0) << proc.StderrTail();
  {
    auto store = Store::Open(data_dir, /*read_only=*/true);
    ASSERT_TRUE(store.ok());
    EXPECT_EQ(*(*store)->GetAlias(kChampion), good);
    EXPECT_EQ(*(*store)->GetAlias(kPrevious), damaged);
  }

  // A manual rollback (the store closed) is on record the same way.
  Subprocess manual({testing::StreamlmBinary(), "rollback", "--data-dir", data_dir},
                    dir.Sub("rollback.log"));
  ASSERT_TRUE(manual.ReadLine(&line, 30000)) << manual.StderrTail();
  EXPECT_EQ(line, "champion: " + damaged);
  EXPECT_EQ(manual.Wait(30000), 0) << manual.StderrTail();
  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok());
  auto last = (*store)->ListDecisions(1);
  ASSERT_TRUE(last.ok() && last->size() == 1u);
  const Json& m = last->front();
  EXPECT_EQ(m["verdict"], "rolled_back");
  EXPECT_EQ(m["champion"], good);
  EXPECT_EQ(m["candidate"], damaged);
  EXPECT_EQ(m["reason"].get<std::string>().rfind("manual", 0), 0u) << m["reason"];
}

TEST(EndToEndTest, BadConfigAndUnreachableBrokerStopStartupWithAClearMessage) {
  TempDir dir;
  {
    Subprocess proc({testing::StreamlmBinary(), "run", "--data-dir", dir.Sub("s"),
                     "--learner.batch-size", "zero"},
                    dir.Sub("err1.log"));
    EXPECT_EQ(proc.Wait(30000), 2);
    EXPECT_NE(proc.StderrTail().find("learner.batch_size"), std::string::npos)
        << proc.StderrTail();
  }
  {
    std::ofstream(dir.Sub("bad.yaml")) << "learner:\n  replay_fraktion: 0.3\n";
    Subprocess proc({testing::StreamlmBinary(), "run", "--config", dir.Sub("bad.yaml")},
                    dir.Sub("err2.log"));
    EXPECT_EQ(proc.Wait(30000), 2);
    EXPECT_NE(proc.StderrTail().find("learner.replay_fraktion"), std::string::npos)
        << proc.StderrTail();
  }
  {
    Subprocess proc({testing::StreamlmBinary(), "run", "--data-dir", dir.Sub("s"),
                     "--kafka", "127.0.0.1:1"},
                    dir.Sub("err3.log"));
    EXPECT_EQ(proc.Wait(60000), 1);
    EXPECT_NE(proc.StderrTail().find("127.0.0.1:1"), std::string::npos) << proc.StderrTail();
  }
}

}  // namespace
}  // namespace streamlm

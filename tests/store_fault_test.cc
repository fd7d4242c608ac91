// Store faults, made on disk the way they happen:
//  - a snapshot chunk whose bytes changed under RocksDB (written with a raw
//    rocksdb::DB, as a bad disk or a stray tool would): the evaluator names
//    the chunk and never promotes the candidate; the champion stays;
//  - an unreadable learner checkpoint (a weight chunk changed, or its
//    offsets of the wrong type): the learner refuses to start with a
//    DataLossError naming it, and the checkpoint is left as it was;
//  - a full disk (a tmpfs the test mounts, a few MB larger than the
//    bootstrapped store, store.min_free_mb 1): `streamlm run`'s learner
//    stops with an error naming "no space left on device" while serving
//    keeps answering from its champion; once there is room again a restart resumes from the last
//    checkpoint and every record is accounted for exactly once.
#include <sys/mount.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/broker.h"
#include "common/config.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "evaluator/evaluator.h"
#include "gtest/gtest.h"
#include "learner/bootstrap.h"
#include "learner/learner.h"
#include "model/language_model.h"
#include "rocksdb/db.h"
#include "store/store.h"
#include "tests/util/heldout_stream.h"
#include "tests/util/run_process.h"
#include "tests/util/skip.h"
#include "tests/util/snapshot_copy.h"
#include "tests/util/stream_audit.h"
#include "tests/util/stream_text.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

// Changes one byte of the value under the first key starting with `prefix`,
// directly in RocksDB (the store must be closed). Returns that key.
std::string CorruptFirstValue(const std::string& dir, const std::string& prefix) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Options options;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return "";
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->Seek(prefix);
  EXPECT_TRUE(it->Valid() && it->key().starts_with(prefix)) << "no key under " << prefix;
  if (!it->Valid() || !it->key().starts_with(prefix)) return "";
  const std::string key = it->key().ToString();
  std::string value = it->value().ToString();
  value[value.size() / 2] ^= 0x5a;
  it.reset();
  EXPECT_TRUE(db->Put(rocksdb::WriteOptions(), key, value).ok());
  return key;
}

TEST(StoreFaultTest, CorruptCandidateChunkIsNamedAndNeverPromoted) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  Config config = testing::TinyConfig(dir.Sub("store"));
  std::string champion, candidate;
  {
    auto store = Store::Open(config.data_dir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto boot = RunBootstrap(config, store->get(), [](const std::string&) {});
    ASSERT_TRUE(boot.ok()) << boot.status();
    champion = boot->snapshot_id;
    // A candidate barely different from the champion: it would pass the gate.
    candidate = testing::CopySnapshot(store->get(), champion, store->get(), 1e-6, 7,
                                      {kCandidate});
    ASSERT_FALSE(candidate.empty());
  }
  const std::string key = CorruptFirstValue(config.data_dir, "snap/" + candidate + "/w/");
  ASSERT_FALSE(key.empty());

  auto store = Store::Open(config.data_dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto read = (*store)->GetSnapshot(candidate);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss) << read.status();
  EXPECT_TRUE(absl::StrContains(read.status().message(), key)) << read.status();

  std::vector<Json> heard;
  Evaluator evaluator(config, store->get(), nullptr, [&](const Json& d) { heard.push_back(d); });
  auto decision = evaluator.Evaluate(candidate);
  EXPECT_EQ(decision.status().code(), absl::StatusCode::kDataLoss) << decision.status();
  EXPECT_TRUE(absl::StrContains(decision.status().message(), "checksum mismatch in " + key))
      << decision.status();
  EXPECT_TRUE(heard.empty());
  auto decisions = (*store)->ListDecisions();
  ASSERT_TRUE(decisions.ok());
  EXPECT_TRUE(decisions->empty());
  EXPECT_EQ(*(*store)->GetAlias(kChampion), champion);
  // The champion itself still reads back whole.
  EXPECT_TRUE((*store)->GetSnapshot(champion).ok());
}

TEST(StoreFaultTest, UnreadableCheckpointIsDataLossAndKept) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  Config config = testing::TinyConfig(dir.Sub("store"));
  config.learner.snapshot_every_s = 1000;
  auto broker = EmbeddedBroker::Start(
      0, {config.topic_text, config.topic_feedback, config.topic_rejects}, 1);
  ASSERT_TRUE(broker.ok()) << broker.status();
  const std::string brokers = (*broker)->bootstrap();
  Counters counters;
  {
    auto store = Store::Open(config.data_dir);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(RunBootstrap(config, store->get(), [](const std::string&) {}).ok());
    auto producer = KafkaProducer::Create(brokers);
    ASSERT_TRUE(producer.ok());
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE((*producer)->Produce(config.topic_text, "", testing::StreamRecord(i)).ok());
    }
    ASSERT_TRUE((*producer)->Flush(10000).ok());
    auto learner = Learner::Create(config, brokers, store->get(), &counters, nullptr);
    ASSERT_TRUE(learner.ok()) << learner.status();
    absl::Status result;
    std::thread t([&] { result = (*learner)->Run(); });
    for (int i = 0; i < 1200 && counters.Get("streamlm_records_consumed_total") < 40; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    (*learner)->Stop();
    t.join();
    ASSERT_TRUE(result.ok()) << result;
  }
  // A checkpoint keeps its own weights or shares a snapshot's; corrupt the
  // optimizer state, which is always its own.
  const std::string key = CorruptFirstValue(config.data_dir, "ckpt/learner/opt/");
  ASSERT_FALSE(key.empty());
  auto store = Store::Open(config.data_dir);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<Learner>> learner;
  ASSERT_NO_THROW(learner = Learner::Create(config, brokers, store->get(), &counters, nullptr));
  EXPECT_EQ(learner.status().code(), absl::StatusCode::kDataLoss) << learner.status();
  EXPECT_TRUE(absl::StrContains(learner.status().message(), "checksum mismatch in " + key))
      << learner.status();
  // Still there, still unreadable: nothing overwrote it.
  EXPECT_EQ((*store)->GetCheckpoint().status().code(), absl::StatusCode::kDataLoss);
  store->reset();

  // Offsets of the wrong type in the checkpoint's own record.
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), config.data_dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::string value;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "ckpt/learner/state", &value).ok());
    auto state = ParseJson(value);
    ASSERT_TRUE(state.ok());
    (*state)["next_offsets"] = {{"zero", 40}};
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "ckpt/learner/state", state->dump()).ok());
  }
  store = Store::Open(config.data_dir);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<LearnerCheckpoint> checkpoint;
  ASSERT_NO_THROW(checkpoint = (*store)->GetCheckpoint());
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kDataLoss) << checkpoint.status();
  EXPECT_TRUE(absl::StrContains(checkpoint.status().message(), "next_offsets entry 'zero'"))
      << checkpoint.status();
}

// Mounts a tmpfs of `mb` MiB at `dir`; unmounts on destruction.
class Tmpfs {
 public:
  Tmpfs(const std::string& dir, int mb) : dir_(dir) {
    std::filesystem::create_directories(dir);
    mounted_ = mount("tmpfs", dir.c_str(), "tmpfs", 0, absl::StrCat("size=", mb, "m").c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~Tmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  bool Resize(int mb) {
    return mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT,
                 absl::StrCat("size=", mb, "m").c_str()) == 0;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

int64_t DirBytes(const std::string& dir) {
  int64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) n += static_cast<int64_t>(e.file_size());
  }
  return n;
}

TEST(StoreFaultTest, FullDiskStopsLearningNotServingAndLosesNothing) {
  testing::TempDir dir;
  // Bootstrapped on a normal disk, then moved to a tmpfs with little room.
  const std::string seed_dir = dir.Sub("seed");
  testing::Subprocess boot({testing::StreamlmBinary(), "bootstrap", "--config",
                            testing::SourceDir() + "/tests/data/tiny.yaml", "--data-dir",
                            seed_dir},
                           dir.Sub("bootstrap.log"));
  ASSERT_EQ(boot.Wait(300000), 0) << boot.StderrTail();
  const int64_t seed_bytes = DirBytes(seed_dir);
  const int room_mb = static_cast<int>(seed_bytes >> 20) + 3;  // a few candidates' worth
  Tmpfs disk(dir.Sub("disk"), room_mb);
  if (!disk.mounted()) {
    SLM_SKIP_OR_FAIL("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): "
                     << disk.error());
  }
  const std::string data_dir = dir.Sub("disk") + "/store";
  std::filesystem::copy(seed_dir, data_dir, std::filesystem::copy_options::recursive);

  std::string brokers;
  auto broker = testing::StartBroker(dir.Sub("broker.log"), 1, &brokers);
  ASSERT_FALSE(brokers.empty()) << broker->StderrTail();
  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok());
  int next = 0;
  auto produce = [&](int n) {
    for (int k = 0; k < n; ++k, ++next) {
      ASSERT_TRUE((*producer)->Produce(testing::kText, absl::StrCat("doc-", next),
                                       testing::StreamRecord(next)).ok());
    }
    ASSERT_TRUE((*producer)->Flush(10000).ok());
  };
  produce(600);

  std::string champion;
  {
    // Candidates and checkpoints fill the disk; the learner stops, serving not.
    const std::string log = dir.Sub("run-full.log");
    testing::RunProcess run(brokers, data_dir, log, {"--store.min-free-mb", "1"});
    ASSERT_TRUE(testing::WaitForLog(log, "learner stopped", 300)) << run.Tail();
    const std::string text = testing::ReadTestFile(log);
    EXPECT_TRUE(std::regex_search(text, std::regex("\nE [^\n]*learner stopped: [^\n]*"
                                                   "no space left on device")))
        << run.Tail();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    ASSERT_TRUE(run.WaitUp(deadline)) << run.Tail();
    httplib::Client http(run.endpoints().http_host, run.endpoints().http_port);
    http.set_read_timeout(10, 0);
    for (int i = 0; i < 5; ++i) {
      auto h = http.Get("/healthz");
      ASSERT_TRUE(h && h->status == 200);
      auto c = http.Post("/v1/completions", R"({"prompt": "the learner", "max_tokens": 4})",
                         "application/json");
      ASSERT_TRUE(c && c->status == 200) << (c ? c->body : "no answer");
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    EXPECT_EQ(testing::MetricValue(http, "streamlm_learner_running"), 0);
    auto models = http.Get("/v1/models");
    ASSERT_TRUE(models && models->status == 200);
    champion = (*ParseJson(models->body))["data"][0]["id"];
    // Stopped by the operator: the exit code says the learner failed.
    EXPECT_NE(run.Finish(SIGTERM, 60000), 0);
  }

  // Room again: the learner resumes from its last checkpoint and drains.
  ASSERT_TRUE(disk.Resize(256));
  produce(100);
  const std::string log = dir.Sub("run-after.log");
  testing::RunProcess run(brokers, data_dir, log);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  ASSERT_TRUE(run.WaitUp(deadline)) << run.Tail();
  httplib::Client http(run.endpoints().http_host, run.endpoints().http_port);
  ASSERT_TRUE(testing::WaitDrained(http, {{testing::kText, next}}, deadline)) << run.Tail();
  EXPECT_EQ(run.Finish(SIGTERM, 120000), 0) << run.Tail();
  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  std::set<std::string> served = run.served();
  served.insert(champion);
  testing::AuditFigures f = testing::AuditStream(store->get(), brokers, testing::kText,
                                                 testing::kFeedback, testing::kRejects, served);
  EXPECT_EQ(f.text_records, 700);
  std::printf("full disk: %d MiB tmpfs for a %.1f MiB store; %s\n", room_mb,
              static_cast<double>(seed_bytes) / (1 << 20), f.Summary().c_str());
}

}  // namespace
}  // namespace streamlm

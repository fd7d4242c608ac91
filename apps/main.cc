// The `streamlm` binary: one subcommand per user task (DESIGN.md).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <map>
#include <mutex>
#include <atomic>
#include <memory>
#include <string>
#include <chrono>
#include <thread>

#include "CLI/CLI.hpp"
#include "apps/clean_command.h"
#include "apps/command_util.h"
#include "apps/feedback_command.h"
#include "apps/serve_command.h"
#include "common/file_util.h"
#include "bench/continual_bench.h"
#include "bench/ingest_bench.h"
#include "bench/serve_bench.h"
#include "bench/tokenize_bench.h"
#include "bench/train_bench.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/broker.h"
#include "common/config.h"
#include "common/kafka.h"
#include "common/log.h"
#include "common/metrics.h"
#include "evaluator/evaluator.h"
#include "evaluator/rollback.h"
#include "learner/bootstrap.h"
#include "learner/learner.h"
#include "model/hf_checkpoint.h"
#include "model/language_model.h"
#include "serving/admin_api.h"
#include "serving/server.h"
#include "store/store.h"
#include "store/store_open.h"

namespace streamlm {
namespace {

// Flags given on the command line, by config key.
struct CommandLine {
  std::string config_file;
  std::map<std::string, std::string> overrides;
};

std::string FlagForKey(const std::string& key) {
  return "--" + absl::StrReplaceAll(key, {{"_", "-"}});
}

void AddConfigFlags(CLI::App* app, CommandLine* cl) {
  app->add_option("--config", cl->config_file, "YAML config file");
  auto* group = app->add_option_group(
      "Config keys", "each also settable in --config YAML or as STREAMLM_<KEY>");
  for (const ConfigKey& k : ConfigKeys()) {
    std::string key = k.name;
    group->add_option_function<std::string>(
        FlagForKey(key), [cl, key](const std::string& v) { cl->overrides[key] = v; },
        absl::StrCat(k.help, " (", key, ", default '", k.get(Config()), "')"));
  }
}

// defaults < YAML file < environment < flags.
absl::StatusOr<Config> LoadConfig(const CommandLine& cl) {
  Config c;
  if (!cl.config_file.empty()) {
    absl::Status s = ApplyYamlFile(c, cl.config_file);
    if (!s.ok()) return s;
  }
  absl::Status s = ApplyEnvironment(c);
  if (!s.ok()) return s;
  for (const auto& [key, value] : cl.overrides) {
    s = SetConfigValue(c, key, value);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("flag ", FlagForKey(key), ": ", s.message()));
    }
  }
  // Relative corpus paths also resolve against the source tree, so the
  // shipped corpus is found from any working directory.
  for (std::string& path : c.bootstrap_corpus) {
    std::string in_tree = std::string(STREAMLM_SOURCE_DIR) + "/" + path;
    if (!std::filesystem::exists(path) && std::filesystem::exists(in_tree)) path = in_tree;
  }
  return c;
}

// SIGUSR1 takes the broker down (clients disconnected, connections
// refused; the topics keep what they hold), SIGUSR2 brings it back: outage
// drills for the learner and serving (tests/broker_outage_test.cc).
int RunBroker(const Config& c) {
  BlockSignals({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
  auto broker = EmbeddedBroker::Start(c.broker_port, DefaultTopics(c), c.broker_partitions);
  if (!broker.ok()) return Fail(broker.status());
  std::printf("%s\n", (*broker)->bootstrap().c_str());
  std::fflush(stdout);
  SLM_LOG(kInfo) << "embedded Kafka broker at " << (*broker)->bootstrap()
                 << "; Ctrl-C stops it (data is kept in memory only); SIGUSR1 takes it "
                    "down, SIGUSR2 brings it back";
  while (true) {
    const int sig = WaitForSignal({SIGINT, SIGTERM, SIGUSR1, SIGUSR2});
    if (sig != SIGUSR1 && sig != SIGUSR2) return 0;
    absl::Status s = (*broker)->SetDown(sig == SIGUSR1);
    if (!s.ok()) {
      SLM_LOG(kError) << s;
    } else {
      SLM_LOG(kWarning) << "embedded Kafka broker is "
                        << (sig == SIGUSR1 ? "DOWN (SIGUSR1; SIGUSR2 brings it back)"
                                           : "up again (SIGUSR2)");
    }
  }
}

absl::StatusOr<std::string> Bootstrap(const Config& c, Store* store,
                                      const std::atomic<bool>* stop) {
  auto result = RunBootstrap(c, store, [](const std::string& line) {
    SLM_LOG(kInfo) << line;
  }, stop);
  if (!result.ok()) return result.status();
  return result->snapshot_id;
}

// Wakes a thread blocked in WaitForSignal() that no signal has woken.
int RunBootstrapCommand(const Config& c) {
  BlockSignals();
  ConfigureTorchThreads(c.threads);
  auto store = OpenStore(c);
  if (!store.ok()) return Fail(store.status());
  std::atomic<bool> stop{false}, finished{false};
  std::thread signals([&] {
    WaitForSignal();
    if (!finished) SLM_LOG(kInfo) << "signal: checkpointing the bootstrap and stopping";
    stop = true;
  });
  auto id = Bootstrap(c, store->get(), &stop);
  finished = true;
  if (!stop) WakeSignalThread();
  signals.join();
  if (!id.ok()) return Fail(id.status());
  std::printf("%s\n", id->c_str());
  return 0;
}

int RunAll(const Config& c) {
  BlockSignals();
  ConfigureTorchThreads(c.threads);
  std::unique_ptr<EmbeddedBroker> broker;
  std::string brokers = c.kafka;
  if (brokers.empty()) {
    auto b = EmbeddedBroker::Start(c.broker_port, DefaultTopics(c), c.broker_partitions);
    if (!b.ok()) return Fail(b.status());
    broker = std::move(*b);
    brokers = broker->bootstrap();
  } else {
    absl::Status s = CheckBrokerReachable(brokers, 10000);
    if (!s.ok()) return Fail(s);
  }
  auto store = OpenStore(c);
  if (!store.ok()) return Fail(store.status());
  // From here on SIGINT/SIGTERM stop whatever runs: bootstrap or learner.
  std::atomic<bool> stop{false};
  std::mutex learner_mu;
  Learner* active_learner = nullptr;  // GUARDED_BY(learner_mu)
  std::thread signals([&] {
    int sig = WaitForSignal();
    if (!stop) SLM_LOG(kInfo) << "signal " << sig << ": checkpointing and stopping";
    stop = true;
    std::lock_guard<std::mutex> lock(learner_mu);
    if (active_learner != nullptr) active_learner->Stop();
  });
  auto finish = [&](int code) {
    if (!stop.exchange(true)) WakeSignalThread();
    signals.join();
    return code;
  };
  if (!(*store)->GetAlias(kChampion).ok()) {
    SLM_LOG(kInfo) << "no champion in " << c.data_dir << ": bootstrapping one from "
                   << (c.bootstrap_topic.empty() ? absl::StrJoin(c.bootstrap_corpus, ", ")
                                                 : "topic " + c.bootstrap_topic);
    auto id = Bootstrap(c, store->get(), &stop);
    if (!id.ok()) return finish(Fail(id.status()));
  }
  // Compute budget: serving's scheduler takes serving.threads; the learner
  // (this thread) and the evaluator the rest, so neither starves the other.
  const int learner_threads = LearnerThreads(c, /*serving_in_process=*/true);
  SetThreadComputeBudget(learner_threads);
  SLM_LOG(kInfo) << "compute budget: learner and evaluator " << learner_threads
                 << " thread(s), serving " << ServingThreads(c);
  Counters counters;
  auto producer = KafkaProducer::Create(brokers);
  if (!producer.ok()) return finish(Fail(producer.status()));
  Server server(c, store->get(), &counters);
  server.set_feedback_producer(producer->get());  // POST /v1/feedback -> topic.feedback
  absl::Status s = server.Start();
  if (!s.ok()) return finish(Fail(s));
  // A bad trusted-feedback file stops start-up, naming the key and line.
  if (auto trusted = LoadTrustedFeedback(c, store->get()); !trusted.ok()) {
    return finish(Fail(trusted.status()));
  }
  // Serving, the learner and (for promotions) the rollback monitor hear of
  // every decision: the evaluator's and the monitor's rollbacks alike.
  RollbackMonitor* monitor = nullptr;  // set below, before any decision
  auto on_decision = [&](const Json& d) {
    server.OnDecision(d);
    if (monitor != nullptr) monitor->OnDecision(d);
    std::lock_guard<std::mutex> lock(learner_mu);
    if (active_learner != nullptr) active_learner->OnDecision(d);
  };
  // Rolls the champion back on a confident serving-side regression
  // (evaluator/README.md "Rollback"); the learner's compute budget.
  RollbackMonitor rollback(
      c, store->get(), producer->get(),
      [&server](const std::string& id) {
        const ModelServingSignals m = server.ModelSignals(id);
        return ServingCounts{m.requests, m.errors, m.feedback, m.negative_feedback};
      },
      on_decision);
  monitor = &rollback;
  rollback.Start();
  Evaluator evaluator(c, store->get(), producer->get(), on_decision);
  evaluator.Start();
  auto learner = Learner::Create(c, brokers, store->get(), &counters,
                                 [&evaluator](const std::string& id) { evaluator.Submit(id); });
  if (!learner.ok()) return finish(Fail(learner.status()));
  {
    std::lock_guard<std::mutex> lock(learner_mu);
    active_learner = learner->get();
    if (stop) active_learner->Stop();
  }

  std::string host = c.http.substr(0, c.http.rfind(':'));
  std::printf(
      "StreamLM is running (Ctrl-C stops it)\n"
      "  kafka  %s%s\n"
      "         produce text: kcat -P -b %s -t %s   (one JSON {\"text\": ...} per line)\n"
      "  http   http://%s:%d  (POST /v1/completions, /v1/chat/completions; GET /v1/models, /metrics)\n"
      "  ui     http://%s:%d/ui  (dashboard: decisions, learner, serving)\n"
      "  store  %s   (streamlm decisions --data-dir %s)\n",
      brokers.c_str(), broker ? " (embedded)" : "", brokers.c_str(), c.topic_text.c_str(),
      host.c_str(), server.port(), host.c_str(), server.port(), c.data_dir.c_str(),
      c.data_dir.c_str());
  std::fflush(stdout);

  counters.Set("streamlm_learner_running", 1);
  s = (*learner)->Run();
  {
    std::lock_guard<std::mutex> lock(learner_mu);
    active_learner = nullptr;
  }
  if (!s.ok()) {
    // A learner that cannot go on (full disk, a fatal consumer error) stops
    // learning, not serving: requests are answered by the champion until an
    // operator fixes the cause and restarts; the learner then resumes from
    // its last checkpoint. The exit code says it failed.
    counters.Set("streamlm_learner_running", 0);
    SLM_LOG(kError) << "learner stopped: " << s
                    << "; serving goes on with the champion it has. Fix the cause and restart "
                       "(the learner resumes from its last checkpoint); streamlm_learner_running "
                       "is 0 until then";
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  evaluator.Stop();
  rollback.Stop();
  server.Stop();
  return finish(s.ok() ? 0 : Fail(s));
}

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  std::stringstream ss;
  if (path.empty() || path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError("cannot read input file '" + path + "'");
    ss << in.rdbuf();
  }
  return ss.str();
}

int RunTokenize(const std::string& tokenizer_path, const std::string& input, bool decode) {
  auto tok = LoadTokenizerFromPath(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  auto text = ReadInput(input);
  if (!text.ok()) return Fail(text.status());
  if (!decode) {
    std::printf("%s\n", Json((*tok)->Encode(*text)).dump().c_str());
    return 0;
  }
  auto ids = ParseJson(*text);
  if (!ids.ok() || !ids->is_array() ||
      !std::all_of(ids->begin(), ids->end(), [](const Json& v) { return v.is_number_integer(); })) {
    return Fail(absl::InvalidArgumentError("--decode expects a JSON array of integer token ids"));
  }
  std::string out = (*tok)->Decode(ids->get<std::vector<int32_t>>());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int RunGenerate(const Config& c, const std::string& snapshot, const std::string& prompt,
                int max_tokens, double temperature) {
  ConfigureTorchThreads(c.threads);
  auto store = Store::Open(c.data_dir, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  std::string id = snapshot;
  auto alias = (*store)->GetAlias(snapshot);  // "champion" etc. also work
  if (alias.ok()) id = *alias;
  auto snap = (*store)->GetSnapshot(id);
  if (!snap.ok()) return Fail(snap.status());
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) return Fail(model.status());
  SamplingParams p;
  p.max_tokens = max_tokens;
  p.temperature = temperature;
  Completion out = (*model)->Generate(prompt, p);
  std::printf("%s\n", out.text.c_str());
  return 0;
}

int RunImportHf(const Config& c, const std::string& dir, const std::string& name,
                bool champion, const std::vector<std::string>& base_corpus) {
  ConfigureTorchThreads(c.threads);
  auto model = ImportHfCheckpoint(dir);
  if (!model.ok()) return Fail(model.status());
  auto store = OpenStore(c);
  if (!store.ok()) return Fail(store.status());
  auto id = (*store)->NewSnapshotId();
  if (!id.ok()) return Fail(id.status());
  Snapshot snap;
  snap.meta.id = *id;
  snap.meta.created_ms = NowMs();
  snap.meta.origin = "import";
  snap.meta.model_config = ModelConfigToJson((*model)->config());
  snap.meta.metrics = {{"imported_from", std::filesystem::absolute(dir).string()},
                       {"name", name.empty() ? std::filesystem::path(dir).filename().string() : name},
                       {"parameters", (*model)->config().ParameterCount()}};
  snap.weights = (*model)->SerializeWeights();
  snap.tokenizer = (*model)->tokenizer().serialized();
  std::vector<std::string> aliases;
  if (champion) aliases.push_back(kChampion);
  if (!base_corpus.empty()) {
    // Before the snapshot: a champion never exists without the base set asked for.
    auto summary = WriteBaseCorpus(c, base_corpus, store->get());
    if (!summary.ok()) return Fail(summary.status());
    SLM_LOG(kInfo) << "base evaluation set and replay seed: " << *summary;
  } else if (champion && absl::IsNotFound((*store)->GetEvalSet(kBaseEvalSet).status())) {
    SLM_LOG(kWarning) << "no --base-corpus: the evaluator will set aside the first held-out "
                         "stream records as the base evaluation set (forgetting is measured "
                         "against them, not against what the model was trained on)";
  }
  absl::Status s = (*store)->PutSnapshot(snap, aliases);
  if (!s.ok()) return Fail(s);
  SLM_LOG(kInfo) << "imported " << (*model)->config().family << " model ("
                 << (*model)->config().ParameterCount() << " parameters, "
                 << (*model)->config().dtype << ") from " << dir
                 << (champion ? " as champion" : "");
  std::printf("%s\n", id->c_str());
  return 0;
}

int RunExportHf(const Config& c, const std::string& snapshot, const std::string& dir) {
  auto store = Store::Open(c.data_dir, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto alias = (*store)->GetAlias(snapshot);
  auto snap = (*store)->GetSnapshot(alias.ok() ? *alias : snapshot);
  if (!snap.ok()) return Fail(snap.status());
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) return Fail(model.status());
  absl::Status s = ExportHfCheckpoint(**model, dir);
  if (!s.ok()) return Fail(s);
  std::printf("%s\n", dir.c_str());
  return 0;
}

int RunBenchTokenize(const std::string& tokenizer_path, const std::string& input) {
  auto tok = LoadTokenizerFromPath(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  auto text = ReadInput(input);
  if (!text.ok()) return Fail(text.status());
  std::printf("%s\n", RunTokenizeBench(**tok, *text).dump().c_str());
  return 0;
}

std::string Cut(const std::string& s, size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 3) + "...";
}

int RunBenchIngest(const Config& c, const std::string& tokenizer_path, const std::string& input) {
  auto tok = LoadTokenizerFromPath(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  auto contents = ReadFileToString(input);
  if (!contents.ok()) return Fail(contents.status());
  std::vector<std::string> records = ReadBenchRecords(*contents);
  if (records.empty()) return Fail(absl::InvalidArgumentError("no records in " + input));
  Json out = RunIngestBench(records, c.clean_text, **tok, c.model_context_tokens);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int RunDecisions(const Config& c, bool json, size_t limit) {
  auto store = Store::Open(c.data_dir, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto decisions = (*store)->ListDecisions(limit);
  if (!decisions.ok()) return Fail(decisions.status());
  if (json) {
    std::printf("%s\n", Json(*decisions).dump(2).c_str());
    return 0;
  }
  if (decisions->empty()) {
    std::printf("no decisions yet\n");
    return 0;
  }
  std::printf("%-24s %-12s %-12s %-13s %-26s %-26s %s\n", "TIME", "CANDIDATE", "CHAMPION",
              "VERDICT", "STREAM Δ [CI]", "BASE Δ [CI]", "REASON");
  for (const Json& d : *decisions) {
    // The delta with the interval the verdict used (the rule's, at the
    // look's level), else the 95% one.
    auto delta = [&d](const char* m, const char* rule) {
      const Json& metrics = d.value("metrics", Json::object());
      if (!metrics.contains(m) || !metrics[m].contains("delta")) return std::string("-");
      const Json& e = metrics[m]["delta"];
      if (e.value("tokens", int64_t{0}) == 0) return std::string("none");
      Json ci = e.value("ci95", Json());
      for (const Json& r : d.value("rules", Json::array())) {
        if (r.value("name", "") == rule && r.contains("ci")) ci = r["ci"];
      }
      std::string out = absl::StrFormat("%+.4f", e.value("mean", 0.0));
      if (ci.is_array() && ci.size() == 2 && ci[0].is_number() && ci[1].is_number()) {
        out += absl::StrFormat(" [%+.3f,%+.3f]", ci[0].get<double>(), ci[1].get<double>());
      }
      return out;
    };
    std::string verdict = d.value("verdict", "");
    if (d.contains("look") && d["look"].is_number_integer()) {
      verdict += absl::StrFormat(" %d/%d", d["look"].get<int>(), d.value("max_looks", 0));
    }
    std::printf("%-24s %-12s %-12s %-13s %-26s %-26s %s\n", d.value("time", "").c_str(),
                d.value("candidate", "").c_str(), d.value("champion", "").c_str(),
                verdict.c_str(), delta("stream_loss", "adaptation").c_str(),
                delta("base_loss", "forgetting").c_str(), Cut(d.value("reason", ""), 100).c_str());
    for (const std::string& line : FeedbackDecisionLines(d)) std::printf("  %s\n", line.c_str());
    for (const std::string& line : RollbackDecisionLines(d)) std::printf("  %s\n", line.c_str());
  }
  return 0;
}

int RunSnapshots(const Config& c, bool json) {
  auto store = Store::Open(c.data_dir, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto snaps = (*store)->ListSnapshots();
  if (!snaps.ok()) return Fail(snaps.status());
  std::map<std::string, std::string> aliases;
  for (const char* a : {kChampion, kCandidate, kPrevious}) {
    auto id = (*store)->GetAlias(a);
    if (id.ok()) aliases[*id] += aliases[*id].empty() ? a : std::string(",") + a;
  }
  if (json) {
    Json out = Json::array();
    for (const SnapshotMeta& m : *snaps) {
      Json j = SnapshotMetaToJson(m);
      j["aliases"] = aliases[m.id];
      out.push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("%-12s %-24s %-10s %-12s %-8s %-10s %s\n", "ID", "CREATED", "ORIGIN", "PARENT",
              "STEP", "RECORDS", "ALIASES");
  for (const SnapshotMeta& m : *snaps) {
    std::printf("%-12s %-24s %-10s %-12s %-8lld %-10lld %s\n", m.id.c_str(),
                FormatTimeMs(m.created_ms).c_str(), m.origin.c_str(),
                m.lineage.parent.empty() ? "-" : m.lineage.parent.c_str(),
                static_cast<long long>(m.lineage.step),
                static_cast<long long>(m.lineage.records_trained), aliases[m.id].c_str());
  }
  return 0;
}

// `streamlm promote` / `rollback` while `streamlm run` owns the store: the
// same change through the running server's admin API.
int RunAliasChangeOverHttp(const Config& c, const std::string& promote_id) {
  std::fprintf(stderr,
               "streamlm: the store at '%s' is in use by a running StreamLM; asking its "
               "admin API at http://%s (--http) instead\n",
               c.data_dir.c_str(), c.http.c_str());
  auto answer = promote_id.empty()
                    ? PostAdmin(c.http, "/v1/admin/rollback", Json::object(),
                                c.serving_admin_token)
                    : PostAdmin(c.http, "/v1/admin/promote", {{"snapshot", promote_id}},
                                c.serving_admin_token);
  if (!answer.ok()) return Fail(answer.status());
  std::printf("champion: %s\n", answer->value("champion", "").c_str());
  return 0;
}

int RunAliasChange(const Config& c, const std::string& promote_id) {
  auto store = OpenStore(c);
  if (!store.ok()) {
    if (IsStoreLocked(store.status())) return RunAliasChangeOverHttp(c, promote_id);
    return Fail(store.status());
  }
  absl::Status s;
  if (promote_id.empty()) {
    // On record as a decision (verdict rolled_back, reason "manual: ..."),
    // in the same commit as the alias swap.
    auto champion = (*store)->GetAlias(kChampion);
    auto previous = (*store)->GetAlias(kPrevious);
    if (!champion.ok() || !previous.ok()) {
      return Fail(absl::FailedPreconditionError("no previous champion to roll back to"));
    }
    s = (*store)->AppendRollback(
                    ManualRollbackDecision(*champion, *previous, "streamlm rollback"))
            .status();
  } else {
    s = (*store)->Promote(promote_id);
  }
  if (!s.ok()) return Fail(s);
  std::printf("champion: %s\n", (*(*store)->GetAlias(kChampion)).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"StreamLM: keeps a language model learning from live data"};
  app.require_subcommand(1);
  CommandLine cl;

  auto* run = app.add_subcommand(
      "run", "everything in one process: broker (unless --kafka), store, learner, evaluator, "
             "serving; bootstraps a champion from the shipped corpus when the store has none");
  auto* serve = app.add_subcommand(
      "serve", "serving alone, following the store another process owns on --data-dir and the "
               "decisions topic on --kafka; swaps to each new champion as its decision arrives");
  std::string snapshots_from;
  serve->add_option("--snapshots-from", snapshots_from,
                    "http://HOST:PORT of a StreamLM server with the store (another host): fetch "
                    "each champion from it into this --data-dir instead of following a store");
  auto* broker = app.add_subcommand(
      "broker",
      "a standalone Kafka-protocol broker (in memory); SIGUSR1 takes it down, SIGUSR2 back up");
  broker->add_option_function<std::string>(
      "--port", [&cl](const std::string& v) { cl.overrides["broker.port"] = v; },
      "port to listen on (same as --broker.port; default 9092)");
  auto* bootstrap = app.add_subcommand("bootstrap", "batch pretraining from text files; prints "
                                                    "the new champion's snapshot id last");
  std::vector<std::string> corpus;
  bootstrap->add_option("--corpus", corpus, "text files (blank lines separate documents)");
  auto* decisions = app.add_subcommand("decisions", "promotion decisions, newest first");
  bool json = false;
  size_t limit = 20;
  decisions->add_flag("--json", json, "print JSON for machines");
  decisions->add_option("--limit", limit, "at most this many (0 = all)");
  auto* snapshots = app.add_subcommand("snapshots", "stored snapshots and their aliases");
  snapshots->add_flag("--json", json, "print JSON for machines");
  auto* promote = app.add_subcommand("promote", "make a snapshot the champion");
  std::string promote_id;
  promote->add_option("SNAPSHOT", promote_id, "snapshot id")->required();
  auto* rollback = app.add_subcommand("rollback", "swap champion and previous champion");
  std::string tokenizer_path, input;
  bool decode = false;
  auto* tokenize = app.add_subcommand(
      "tokenize", "print the token ids of the whole input as one JSON array (--decode: ids to text)");
  tokenize->add_option("--tokenizer", tokenizer_path,
                       "tokenizer.json, a SentencePiece .model, or a directory with "
                       "vocab.json + merges.txt")->required();
  tokenize->add_option("--input", input, "input file (default: stdin)");
  tokenize->add_flag("--decode", decode, "read a JSON array of ids, print the text");
  std::string snapshot = kChampion, prompt;
  int max_tokens = 32;
  double temperature = 1.0;
  auto* generate = app.add_subcommand("generate", "print a completion from a stored snapshot");
  generate->add_option("--snapshot", snapshot, "snapshot id or alias (default: champion)");
  generate->add_option("--prompt", prompt, "prompt text")->required();
  generate->add_option("--max-tokens", max_tokens, "most tokens to generate")
      ->check(CLI::Range(0, 1 << 20));
  generate->add_option("--temperature", temperature, "0 = greedy")->check(CLI::Range(0.0, 10.0));
  AddConfigFlags(generate, &cl);
  std::string hf_dir, import_name;
  bool import_champion = false;
  auto* import_hf = app.add_subcommand(
      "import-hf", "store a Hugging Face checkpoint directory as a snapshot; prints its id last");
  import_hf->add_option("DIR", hf_dir, "directory with config.json, safetensors and tokenizer")
      ->required();
  import_hf->add_option("--name", import_name, "a name to keep in the snapshot's metadata");
  import_hf->add_flag("--champion", import_champion, "make it the champion");
  std::vector<std::string> base_corpus;
  import_hf->add_option("--base-corpus", base_corpus,
                        "text files like what the model was trained on: their held-out "
                        "documents become the base evaluation set (forgetting), the rest the "
                        "replay seed")
      ->check(CLI::ExistingFile);
  AddConfigFlags(import_hf, &cl);
  std::string export_snapshot;
  auto* export_hf = app.add_subcommand("export-hf", "write a snapshot as a Hugging Face directory");
  export_hf->add_option("SNAPSHOT", export_snapshot, "snapshot id or alias")->required();
  export_hf->add_option("DIR", hf_dir, "output directory")->required();
  AddConfigFlags(export_hf, &cl);
  bool clean_text = false;
  auto* clean = app.add_subcommand(
      "clean", "ingest stages 1-6 on JSON lines (or --text documents) from stdin to stdout; "
               "counts per reason as JSON on stderr");
  clean->add_flag("--text", clean_text,
                  "plain text in and out, one document per blank-line-separated block");
  AddConfigFlags(clean, &cl);
  auto* feedback = app.add_subcommand("feedback", "human feedback the evaluator judges by");
  feedback->require_subcommand(1);
  auto* feedback_trust = feedback->add_subcommand(
      "trust", "replace the trusted feedback set (scored for every candidate, never trained on) "
               "with the cleaned records of FILE; any bad line stores nothing");
  std::string trust_file;
  bool trust_clear = false;
  feedback_trust->add_option("FILE", trust_file,
                             "feedback JSON lines ('-' = stdin), the streamlm.feedback shapes");
  feedback_trust->add_flag("--clear", trust_clear, "remove the trusted set (store an empty one)");
  AddConfigFlags(feedback_trust, &cl);
  auto* bench = app.add_subcommand("bench", "benchmarks that print one JSON object");
  bench->require_subcommand(1);
  auto* bench_tokenize = bench->add_subcommand(
      "tokenize", "tokenizer MB/s on one thread and on all (bytes, tokens, mb_per_s_1t, mb_per_s_all)");
  bench_tokenize->add_option("--tokenizer", tokenizer_path, "as for `streamlm tokenize`")->required();
  bench_tokenize->add_option("--input", input, "text file")->required();
  auto* bench_ingest = bench->add_subcommand(
      "ingest", "ingest pipeline MB/s (stages 1-7) on one thread and on all, per stage, peak RSS");
  bench_ingest->add_option("--tokenizer", tokenizer_path, "as for `streamlm tokenize`")->required();
  bench_ingest->add_option("--input", input, "JSON lines or plain text (blank-line-separated documents)")
      ->required();
  AddConfigFlags(bench_ingest, &cl);
  std::string bench_config = "small";
  int bench_steps = 0;
  auto* bench_train = bench->add_subcommand(
      "train", "training tokens/s and MFU against this machine's measured matmul rate");
  bench_train->add_option("--config", bench_config, "model preset: small, default, tiny");
  bench_train->add_option("--steps", bench_steps, "timed steps (default: the preset's)");
  ContinualBenchOptions continual_bench;
  std::string continual_policies;
  auto* bench_continual = bench->add_subcommand(
      "continual", "the learner under a domain shift (Brown non-fiction, then fiction as the "
                   "stream): new-domain loss, base forgetting and promotions per policy "
                   "(no_replay, replay, replay_rewarm, retrain); bench/README.md");
  bench_continual->add_option("--corpus-dir", continual_bench.corpus_dir,
                              "folder of the tagged Brown corpus files (ca01 ... cr09)");
  bench_continual->add_option("--records", continual_bench.records,
                              "new-domain records to stream")->check(CLI::Range(1, 1 << 20));
  bench_continual->add_option("--policies", continual_policies,
                              "comma-separated subset of no_replay,replay,replay_rewarm,retrain");
  bench_continual->add_option("--work-dir", continual_bench.work_dir,
                              "keep the stores here (default: a temporary directory, removed)");
  AddConfigFlags(bench_continual, &cl);  // --seed, --learner.*, --model.*, --gate.* ...
  ServeBenchOptions serve_bench;
  std::string serve_concurrency = "1,2,4,8";
  auto* bench_serve = bench->add_subcommand(
      "serve", "load a running server's completions endpoint at each concurrency level: "
               "tokens/s, latency, time to first token, learner steps/s meanwhile");
  bench_serve->add_option("--url", serve_bench.url, "server, http://HOST:PORT")->required();
  bench_serve->add_option("--concurrency", serve_concurrency,
                          "comma-separated client counts, run in turn");
  bench_serve->add_option("--duration-s", serve_bench.duration_s, "measured seconds per level")
      ->check(CLI::Range(0.1, 86400.0));
  bench_serve->add_option("--warmup-s", serve_bench.warmup_s, "unmeasured seconds per level")
      ->check(CLI::Range(0.0, 3600.0));
  bench_serve->add_option("--learner-idle-s", serve_bench.learner_idle_s,
                          "first a level 0 of this many seconds without clients (learner alone)")
      ->check(CLI::Range(0.0, 86400.0));
  bench_serve->add_option("--prompt-tokens", serve_bench.prompt_tokens,
                          "prompt length, in words of the corpus")->check(CLI::Range(1, 100000));
  bench_serve->add_option("--max-tokens", serve_bench.max_tokens, "max_tokens of each request")
      ->check(CLI::Range(1, 1 << 20));
  bench_serve->add_option("--endpoint", serve_bench.endpoint, "completions or chat")
      ->check(CLI::IsMember({"completions", "chat"}));
  bench_serve->add_flag("--stream", serve_bench.stream,
                        "stream: true (SSE); also measures time to first token");
  bench_serve->add_option("--temperature", serve_bench.temperature, "sampling temperature")
      ->check(CLI::Range(0.0, 2.0));
  serve_bench.corpus_path = "data/corpus/brown.txt";
  bench_serve->add_option("--corpus", serve_bench.corpus_path, "text the prompts are cut from");
  bench_serve->add_option("--seed", serve_bench.seed, "seed for choosing prompts");
  bench_serve->add_option("--api-key", serve_bench.api_key, "sent as a bearer token");
  bench_serve->add_option("--feed-kafka", serve_bench.feed_kafka,
                          "Kafka HOST:PORT: first produce corpus text for the server's learner "
                          "(the `kafka` address in `streamlm run`'s banner)");
  double serve_feed_mb = 2;
  bench_serve->add_option("--feed-mb", serve_feed_mb, "megabytes of text for --feed-kafka")
      ->check(CLI::Range(0.0, 1e4));
  for (CLI::App* sub : {run, serve, broker, bootstrap, decisions, snapshots, promote, rollback}) {
    AddConfigFlags(sub, &cl);
  }
  CLI11_PARSE(app, argc, argv);

  if (!corpus.empty()) {
    std::string joined = absl::StrJoin(corpus, ",");
    cl.overrides["bootstrap.corpus"] = joined;
  }
  auto config = LoadConfig(cl);
  if (!config.ok()) return Fail(config.status());
  if (run->parsed()) return RunAll(*config);
  if (serve->parsed()) return RunServe(*config, snapshots_from);
  if (broker->parsed()) return RunBroker(*config);
  if (bootstrap->parsed()) return RunBootstrapCommand(*config);
  if (decisions->parsed()) return RunDecisions(*config, json, limit);
  if (snapshots->parsed()) return RunSnapshots(*config, json);
  if (promote->parsed()) return RunAliasChange(*config, promote_id);
  if (rollback->parsed()) return RunAliasChange(*config, "");
  if (tokenize->parsed()) return RunTokenize(tokenizer_path, input, decode);
  if (import_hf->parsed()) return RunImportHf(*config, hf_dir, import_name, import_champion, base_corpus);
  if (export_hf->parsed()) return RunExportHf(*config, export_snapshot, hf_dir);
  if (generate->parsed()) return RunGenerate(*config, snapshot, prompt, max_tokens, temperature);
  if (bench_tokenize->parsed()) return RunBenchTokenize(tokenizer_path, input);
  if (clean->parsed()) return RunClean(*config, clean_text, std::cin, std::cout, std::cerr);
  if (feedback_trust->parsed()) {
    return RunFeedbackTrust(*config, trust_file, trust_clear, std::cin, std::cout, std::cerr);
  }
  if (bench_ingest->parsed()) return RunBenchIngest(*config, tokenizer_path, input);
  if (bench_serve->parsed()) {
    auto levels = ParseConcurrencyList(serve_concurrency);
    if (!levels.ok()) return Fail(levels.status());
    serve_bench.concurrency = *levels;
    serve_bench.feed_bytes = static_cast<int64_t>(serve_feed_mb * 1e6);
    std::string in_tree = std::string(STREAMLM_SOURCE_DIR) + "/" + serve_bench.corpus_path;
    if (!std::filesystem::exists(serve_bench.corpus_path) && std::filesystem::exists(in_tree)) {
      serve_bench.corpus_path = in_tree;
    }
    auto result = RunServeBench(serve_bench);
    if (!result.ok()) return Fail(result.status());
    std::printf("%s\n", result->dump().c_str());
    return 0;
  }
  if (bench_continual->parsed()) {
    // The bench's own model preset, then --config YAML, then flags.
    auto bench_config = ContinualBenchConfig(cl.config_file, cl.overrides);
    if (!bench_config.ok()) return Fail(bench_config.status());
    ConfigureTorchThreads(bench_config->threads);
    if (!continual_policies.empty()) {
      continual_bench.policies = absl::StrSplit(continual_policies, ',', absl::SkipEmpty());
    }
    auto result = RunContinualBench(*bench_config, continual_bench, [](const std::string& line) {
      SLM_LOG(kInfo) << line;
    });
    if (!result.ok()) return Fail(result.status());
    std::printf("%s\n", result->dump().c_str());
    return 0;
  }
  if (bench_train->parsed()) {
    ConfigureTorchThreads(config->threads);
    auto preset = TrainBenchPreset(bench_config);
    if (!preset.ok()) return Fail(preset.status());
    if (bench_steps > 0) preset->steps = bench_steps;
    std::printf("%s\n", RunTrainBench(*preset).dump().c_str());
    return 0;
  }
  return 1;
}

}  // namespace
}  // namespace streamlm

int main(int argc, char** argv) {
  // OpenMP's worker threads spin while they wait for work by default, which
  // on a machine shared by the learner, serving and other processes burns
  // the cores the others need. libgomp reads the policy when it is loaded,
  // before main(), so set it and start again once (unless the caller chose).
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: run as we are
  }
  return streamlm::Main(argc, argv);
}

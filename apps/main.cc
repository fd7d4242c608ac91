// The `streamlm` binary: parses the command line and dispatches to one
// command (apps/commands.h; each in its own apps/<command>_command.cc).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "apps/clean_command.h"
#include "apps/command_util.h"
#include "apps/commands.h"
#include "apps/feedback_command.h"
#include "bench/continual_bench.h"
#include "bench/serve_bench.h"
#include "common/config.h"

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
  for (std::string& path : c.bootstrap.corpus) {
    std::string in_tree = std::string(STREAMLM_SOURCE_DIR) + "/" + path;
    if (!std::filesystem::exists(path) && std::filesystem::exists(in_tree)) path = in_tree;
  }
  return c;
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
  auto* learn = app.add_subcommand(
      "learn", "the learner alone: owns the store on --data-dir, trains on --kafka's text and "
               "feedback, announces candidates, commits the verdicts of `streamlm evaluate`");
  LearnOptions learn_options;
  learn->add_option("--world-size", learn_options.world_size,
                    "data-parallel learners in all (default 1); each reads its share of the "
                    "text topic's partitions and all average their gradients (Gloo)")
      ->check(CLI::Range(1, 62));
  learn->add_option("--rank", learn_options.rank,
                    "this learner's rank, 0..world-size-1; rank 0 owns the store on --data-dir, "
                    "the others keep no store");
  learn->add_option("--master", learn_options.master,
                    "HOST:PORT where rank 0 meets the other ranks (rank 0 listens on PORT)");
  auto* evaluate = app.add_subcommand(
      "evaluate", "the gated evaluator alone: follows the store `streamlm learn` owns, judges "
                  "each announced candidate, proposes its verdict to the learner");
  auto* broker = app.add_subcommand(
      "broker",
      "a standalone Kafka-protocol broker (in memory; on disk too with --journal); SIGUSR1 takes "
      "it down, SIGUSR2 back up");
  broker->add_option_function<std::string>(
      "--port", [&cl](const std::string& v) { cl.overrides["broker.port"] = v; },
      "port to listen on (same as --broker.port; default 9092)");
  std::string journal_dir;
  broker->add_option("--journal", journal_dir,
                     "directory that keeps every record on disk: a restarted broker replays "
                     "it, each record at its old offset (without it, a restart starts empty)");
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
  for (CLI::App* sub : {run, serve, learn, evaluate, broker, bootstrap, decisions, snapshots, promote, rollback}) {
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
  if (learn->parsed()) return RunLearn(*config, learn_options);
  if (evaluate->parsed()) return RunEvaluate(*config);
  if (broker->parsed()) return RunBroker(*config, journal_dir);
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
  if (bench_serve->parsed()) return RunBenchServe(serve_bench, serve_concurrency, serve_feed_mb);
  if (bench_continual->parsed()) {
    return RunBenchContinual(cl.config_file, cl.overrides, continual_bench, continual_policies);
  }
  if (bench_train->parsed()) return RunBenchTrain(*config, bench_config, bench_steps);
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

// The `streamlm` commands (DESIGN.md, "CLI"): one function per command,
// each defined in its own apps/<command>_command.cc; main.cc parses the
// command line and calls one. Each returns the process exit code (0, 1 for
// a failure, 2 for bad input) after printing what the user asked for.
#ifndef STREAMLM_APPS_COMMANDS_H_
#define STREAMLM_APPS_COMMANDS_H_

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/continual_bench.h"
#include "bench/serve_bench.h"
#include "common/config.h"

namespace streamlm {

class Store;

// run_command.cc: every role in one process, until SIGINT/SIGTERM.
int RunAll(const Config& c);
// serve_command.cc: serving alone, following a store another process owns
// on c.data_dir; with `snapshots_from` (http://HOST:PORT of a StreamLM
// server) c.data_dir is its own, holding the champions fetched from there.
int RunServe(const Config& c, const std::string& snapshots_from);
// learn_command.cc: the learner alone, owner of c.data_dir's writes; commits
// the verdicts of a separate evaluator (evaluator/verdicts.h).
// Data-parallel learners (`learn --world-size N --rank R --master HOST:PORT`).
struct LearnOptions {
  int world_size = 1;
  int rank = 0;
  std::string master;  // rank 0's rendezvous, HOST:PORT
};
int RunLearn(const Config& c, const LearnOptions& options);
// evaluate_command.cc: the evaluator alone, following the store the learner
// owns; proposes verdicts on c.topic_verdicts.
int RunEvaluate(const Config& c);
// broker_command.cc: the embedded broker alone; SIGUSR1 down, SIGUSR2 up;
// with `journal_dir`, its records kept there across restarts.
int RunBroker(const Config& c, const std::string& journal_dir);
// bootstrap_command.cc: batch pretraining; prints the champion's id.
int RunBootstrapCommand(const Config& c);
// The bootstrap run and `run` share: trains and stores a champion (resuming
// an interrupted bootstrap); `stop` cuts it short at a checkpoint.
[[nodiscard]] absl::StatusOr<std::string> BootstrapChampion(const Config& c, Store* store,
                                                            const std::atomic<bool>* stop);
// BootstrapChampion when the store has no champion yet (run, learn).
[[nodiscard]] absl::Status BootstrapIfNoChampion(const Config& c, Store* store,
                                                 const std::atomic<bool>* stop);
// decisions_command.cc, snapshots_command.cc.
int RunDecisions(const Config& c, bool json, size_t limit);
int RunSnapshots(const Config& c, bool json);
// alias_command.cc: promote `promote_id`, or roll back when it is empty;
// through the admin API of the process that holds the store, if one does.
int RunAliasChange(const Config& c, const std::string& promote_id);
// tokenize_command.cc, generate_command.cc, import_hf_command.cc,
// export_hf_command.cc.
int RunTokenize(const std::string& tokenizer_path, const std::string& input, bool decode);
int RunGenerate(const Config& c, const std::string& snapshot, const std::string& prompt,
                int max_tokens, double temperature);
int RunImportHf(const Config& c, const std::string& dir, const std::string& name,
                bool champion, const std::vector<std::string>& base_corpus);
int RunExportHf(const Config& c, const std::string& snapshot, const std::string& dir);
// bench_command.cc.
int RunBenchTokenize(const std::string& tokenizer_path, const std::string& input);
int RunBenchIngest(const Config& c, const std::string& tokenizer_path, const std::string& input);
int RunBenchServe(ServeBenchOptions options, const std::string& concurrency, double feed_mb);
int RunBenchContinual(const std::string& config_file,
                      const std::map<std::string, std::string>& overrides,
                      ContinualBenchOptions options, const std::string& policies);
int RunBenchTrain(const Config& c, const std::string& preset_name, int steps);

}  // namespace streamlm

#endif  // STREAMLM_APPS_COMMANDS_H_

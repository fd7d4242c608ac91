// `streamlm bench ...`: the benchmarks, each printing one JSON object.
#include "apps/commands.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "apps/command_util.h"
#include "bench/continual_bench.h"
#include "bench/ingest_bench.h"
#include "bench/serve_bench.h"
#include "bench/tokenize_bench.h"
#include "bench/train_bench.h"
#include "common/file_util.h"
#include "common/json_util.h"
#include "common/log.h"
#include "model/language_model.h"
#include "model/tokenizer.h"

namespace streamlm {

int RunBenchTokenize(const std::string& tokenizer_path, const std::string& input) {
  auto tok = LoadTokenizerFromPath(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  auto text = ReadInput(input);
  if (!text.ok()) return Fail(text.status());
  std::printf("%s\n", RunTokenizeBench(**tok, *text).dump().c_str());
  return 0;
}

int RunBenchIngest(const Config& c, const std::string& tokenizer_path, const std::string& input) {
  auto tok = LoadTokenizerFromPath(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  auto contents = ReadFileToString(input);
  if (!contents.ok()) return Fail(contents.status());
  std::vector<std::string> records = ReadBenchRecords(*contents);
  if (records.empty()) return Fail(absl::InvalidArgumentError("no records in " + input));
  Json out = RunIngestBench(records, c.clean_text, **tok, c.model.context_tokens);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}


int RunBenchServe(ServeBenchOptions options, const std::string& concurrency, double feed_mb) {
  auto levels = ParseConcurrencyList(concurrency);
  if (!levels.ok()) return Fail(levels.status());
  options.concurrency = *levels;
  options.feed_bytes = static_cast<int64_t>(feed_mb * 1e6);
  std::string in_tree = std::string(STREAMLM_SOURCE_DIR) + "/" + options.corpus_path;
  if (!std::filesystem::exists(options.corpus_path) && std::filesystem::exists(in_tree)) {
    options.corpus_path = in_tree;
  }
  auto result = RunServeBench(options);
  if (!result.ok()) return Fail(result.status());
  std::printf("%s\n", result->dump().c_str());
  return 0;
}

int RunBenchContinual(const std::string& config_file,
                      const std::map<std::string, std::string>& overrides,
                      ContinualBenchOptions options, const std::string& policies) {
  // The bench's own model preset, then --config YAML, then flags.
  auto bench_config = ContinualBenchConfig(config_file, overrides);
  if (!bench_config.ok()) return Fail(bench_config.status());
  ConfigureTorchThreads(bench_config->threads);
  if (!policies.empty()) options.policies = absl::StrSplit(policies, ',', absl::SkipEmpty());
  auto result = RunContinualBench(*bench_config, options, [](const std::string& line) {
    SLM_LOG(kInfo) << line;
  });
  if (!result.ok()) return Fail(result.status());
  std::printf("%s\n", result->dump().c_str());
  return 0;
}

int RunBenchTrain(const Config& c, const std::string& preset_name, int steps) {
  ConfigureTorchThreads(c.threads);
  auto preset = TrainBenchPreset(preset_name);
  if (!preset.ok()) return Fail(preset.status());
  if (steps > 0) preset->steps = steps;
  std::printf("%s\n", RunTrainBench(*preset).dump().c_str());
  return 0;
}

}  // namespace streamlm

// `streamlm generate`: a completion from a stored snapshot.
#include "apps/commands.h"

#include <cstdio>
#include <string>

#include "apps/command_util.h"
#include "model/language_model.h"
#include "store/store.h"

namespace streamlm {

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

}  // namespace streamlm

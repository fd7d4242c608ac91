// `streamlm export-hf`: a stored snapshot as a Hugging Face checkpoint.
#include "apps/commands.h"

#include <cstdio>
#include <string>

#include "apps/command_util.h"
#include "model/hf_checkpoint.h"
#include "model/language_model.h"
#include "store/store.h"

namespace streamlm {

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

}  // namespace streamlm

// `streamlm import-hf`: a Hugging Face checkpoint into the store.
#include "apps/commands.h"

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/command_util.h"
#include "common/json_util.h"
#include "common/log.h"
#include "learner/bootstrap.h"
#include "model/hf_checkpoint.h"
#include "model/language_model.h"
#include "model/model_config.h"
#include "store/store.h"
#include "store/store_open.h"

namespace streamlm {

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

}  // namespace streamlm

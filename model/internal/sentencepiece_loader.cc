#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <iostream>
#include <mutex>

#include "model/internal/sentencepiece_wrapper.h"

namespace streamlm::tokenizer_internal {
namespace {

#ifdef STREAMLM_SANITIZED
// The sanitizer runtimes refuse RTLD_DEEPBIND (google/sanitizers#611), so a
// sanitized build loads the module without it. Its module links a static
// SentencePiece whose protobuf copy is private to it
// (STREAMLM_SENTENCEPIECE_PREFIX, set by scripts/test.sh --sanitize), so
// libtorch's libprotobuf cannot take its place.
constexpr int kDeepBind = 0;
#else
constexpr int kDeepBind = RTLD_DEEPBIND;
#endif

std::string ExecutableDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

}  // namespace

const SpApi* GetSpApi(std::string* error) {
  static const SpApi* api = nullptr;
  static std::string load_error;
  static std::once_flag once;
  std::call_once(once, [] {
    // STREAMLM_SENTENCEPIECE_MODULE overrides; else the build's copy, else
    // one beside the executable.
    std::vector<std::string> candidates;
    if (const char* env = getenv("STREAMLM_SENTENCEPIECE_MODULE")) candidates.push_back(env);
    candidates.push_back(STREAMLM_SENTENCEPIECE_MODULE_PATH);
    candidates.push_back(ExecutableDir() + "/libstreamlm_sentencepiece.so");
    for (const std::string& path : candidates) {
      void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | kDeepBind);
      if (h == nullptr) {
        load_error += std::string(dlerror()) + "; ";
        continue;
      }
      using Fn = const SpApi* (*)();
      using InitFn = void (*)(std::ostream*, std::ostream*, std::ostream*);
      auto fn = reinterpret_cast<Fn>(dlsym(h, "streamlm_sentencepiece_api"));
      auto init = reinterpret_cast<InitFn>(dlsym(h, "streamlm_sentencepiece_init"));
      if (fn != nullptr && init != nullptr) {
        init(&std::cout, &std::cerr, &std::clog);
        api = fn();
        return;
      }
      load_error += path + ": no streamlm_sentencepiece_api; ";
    }
  });
  if (api == nullptr) *error = "cannot load the SentencePiece module: " + load_error;
  return api;
}

SpModel::~SpModel() {
  if (model_ != nullptr) api_->destroy(model_);
}

bool SpModel::Load(const std::string& bytes, std::string* error) {
  api_ = GetSpApi(error);
  if (api_ == nullptr) return false;
  model_ = api_->load(bytes, error);
  return model_ != nullptr;
}

std::vector<int> SpModel::Encode(std::string_view text) const {
  std::vector<int> ids;
  api_->encode(model_, text, &ids);
  return ids;
}

std::string SpModel::Decode(const std::vector<int>& ids) const {
  std::string out;
  api_->decode(model_, ids, &out);
  return out;
}

bool TrainSp(const std::vector<std::string>& sentences, const std::string& args,
             std::string* model, std::string* error) {
  const SpApi* api = GetSpApi(error);
  return api != nullptr && api->train(sentences, args, model, error);
}

}  // namespace streamlm::tokenizer_internal

// Options struct of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::model).
#ifndef STREAMLM_MODEL_MODEL_OPTIONS_H_
#define STREAMLM_MODEL_MODEL_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The model.* keys: the architecture bootstrap trains.
struct ModelOptions {
  // Model architecture used by bootstrap (a GPT-style decoder).
  int vocab_size = 2048;
  int context_tokens = 128;
  int d_model = 128;
  int layers = 4;
  int heads = 4;
};

}  // namespace streamlm

#endif  // STREAMLM_MODEL_MODEL_OPTIONS_H_

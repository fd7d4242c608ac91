#include "model/hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"

namespace streamlm {
namespace {

namespace fs = std::filesystem;

// Per-block tensors: our name, GPT-2's name, and whether GPT-2 stores it
// transposed (its Conv1D weights are [in, out]).
struct Gpt2Name {
  const char* ours;
  const char* hf;
  bool transpose;
};
constexpr Gpt2Name kGpt2BlockNames[] = {
    {"ln1.weight", "ln_1.weight", false},        {"ln1.bias", "ln_1.bias", false},
    {"ln2.weight", "ln_2.weight", false},        {"ln2.bias", "ln_2.bias", false},
    {"attn.qkv.weight", "attn.c_attn.weight", true},
    {"attn.qkv.bias", "attn.c_attn.bias", false},
    {"attn.proj.weight", "attn.c_proj.weight", true},
    {"attn.proj.bias", "attn.c_proj.bias", false},
    {"fc.weight", "mlp.c_fc.weight", true},      {"fc.bias", "mlp.c_fc.bias", false},
    {"fc_proj.weight", "mlp.c_proj.weight", true},
    {"fc_proj.bias", "mlp.c_proj.bias", false}};

// Maps "<block_prefix>.<i>.<suffix>" between the two naming schemes; the
// top-level tensors (wte, wpe, ln_f) share their names. Empty when `name`
// is not a weight of ours (e.g. GPT-2's attn.bias mask buffers).
std::string MapGpt2Name(const std::string& name, bool to_ours, bool* transpose) {
  *transpose = false;
  if (name == "wte.weight" || name == "wpe.weight" || absl::StartsWith(name, "ln_f.")) return name;
  const std::string from_prefix = to_ours ? "h." : "blocks.";
  const std::string to_prefix = to_ours ? "blocks." : "h.";
  if (!absl::StartsWith(name, from_prefix)) return "";
  size_t dot = name.find('.', from_prefix.size());
  if (dot == std::string::npos) return "";
  std::string index = name.substr(from_prefix.size(), dot - from_prefix.size());
  std::string rest = name.substr(dot + 1);
  for (const Gpt2Name& n : kGpt2BlockNames) {
    if (rest == (to_ours ? n.hf : n.ours)) {
      *transpose = n.transpose;
      return to_prefix + index + "." + (to_ours ? n.ours : n.hf);
    }
  }
  return "";
}

absl::StatusOr<ModelConfig> ConfigFromHf(const Json& j) {
  ModelConfig m;
  const std::string type = j.value("model_type", "");
  try {
    if (type == "gpt2") {
      m.family = "gpt";
      m.vocab_size = j.at("vocab_size").get<int>();
      m.context_tokens = j.value("n_positions", j.value("n_ctx", 1024));
      m.d_model = j.at("n_embd").get<int>();
      m.layers = j.at("n_layer").get<int>();
      m.heads = j.at("n_head").get<int>();
      m.norm_eps = j.value("layer_norm_epsilon", 1e-5);
      std::string act = j.value("activation_function", "gelu_new");
      if (act != "gelu_new" && act != "gelu_pytorch_tanh") {
        return absl::InvalidArgumentError("config.json: activation_function '" + act +
                                          "' is not supported (gelu_new)");
      }
    } else if (type == "llama" || type == "mistral" || type == "qwen2") {
      m.family = "llama";
      m.vocab_size = j.at("vocab_size").get<int>();
      m.d_model = j.at("hidden_size").get<int>();
      m.layers = j.at("num_hidden_layers").get<int>();
      m.heads = j.at("num_attention_heads").get<int>();
      m.kv_heads = j.value("num_key_value_heads", m.heads);
      m.intermediate_size = j.at("intermediate_size").get<int>();
      m.rope_theta = j.value("rope_theta", 10000.0);
      m.norm_eps = j.value("rms_norm_eps", 1e-6);
      m.context_tokens = std::min(j.value("max_position_embeddings", 2048), 32768);
      m.tie_embeddings = j.value("tie_word_embeddings", type == "qwen2");
      m.qkv_bias = type == "qwen2" || j.value("attention_bias", false);
      if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
        const Json& rs = j["rope_scaling"];
        if (!rs.is_object()) {
          return absl::InvalidArgumentError("config.json: rope_scaling must be an object");
        }
        // Older files say "type", newer ones "rope_type".
        m.rope_scaling = rs.value("rope_type", rs.value("type", std::string()));
        if (m.rope_scaling != "linear" && m.rope_scaling != "llama3") {
          return absl::InvalidArgumentError(
              absl::StrCat("config.json: rope_scaling type '", m.rope_scaling,
                           "' is not supported (linear, llama3)"));
        }
        m.rope_factor = rs.at("factor").get<double>();
        if (m.rope_scaling == "llama3") {
          m.rope_low_freq_factor = rs.at("low_freq_factor").get<double>();
          m.rope_high_freq_factor = rs.at("high_freq_factor").get<double>();
          m.rope_original_context = rs.at("original_max_position_embeddings").get<int>();
        }
      }
      if (j.value("hidden_act", "silu") != "silu") {
        return absl::InvalidArgumentError("config.json: hidden_act must be silu");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: model_type '", type, "' is not supported (gpt2, llama, mistral, qwen2)"));
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", e.what()));
  }
  absl::Status s = ValidateModelConfig(m);
  if (!s.ok()) return s;
  return m;
}

Json ConfigToHf(const ModelConfig& m) {
  std::string dtype = m.dtype == "F16" ? "float16" : m.dtype == "BF16" ? "bfloat16" : "float32";
  if (m.family == "gpt") {
    return {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"},
            {"vocab_size", m.vocab_size},           {"n_positions", m.context_tokens},
            {"n_ctx", m.context_tokens},            {"n_embd", m.d_model},
            {"n_layer", m.layers},                  {"n_head", m.heads},
            {"layer_norm_epsilon", m.norm_eps},     {"activation_function", "gelu_new"},
            {"tie_word_embeddings", true},          {"torch_dtype", dtype}};
  }
  Json rope_scaling = nullptr;
  if (m.rope_scaling == "linear") {
    rope_scaling = {{"rope_type", "linear"}, {"factor", m.rope_factor}};
  } else if (m.rope_scaling == "llama3") {
    rope_scaling = {{"rope_type", "llama3"},
                    {"factor", m.rope_factor},
                    {"low_freq_factor", m.rope_low_freq_factor},
                    {"high_freq_factor", m.rope_high_freq_factor},
                    {"original_max_position_embeddings", m.rope_original_context}};
  }
  return {{"architectures", {m.qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
          {"model_type", m.qkv_bias ? "qwen2" : "llama"},
          {"vocab_size", m.vocab_size},
          {"hidden_size", m.d_model},
          {"num_hidden_layers", m.layers},
          {"num_attention_heads", m.heads},
          {"num_key_value_heads", m.kv_heads_or_heads()},
          {"intermediate_size", m.intermediate_or_default()},
          {"rope_theta", m.rope_theta},
          {"rope_scaling", rope_scaling},
          {"rms_norm_eps", m.norm_eps},
          {"max_position_embeddings", m.context_tokens},
          {"tie_word_embeddings", m.tie_embeddings},
          {"attention_bias", m.qkv_bias},
          {"hidden_act", "silu"},
          {"torch_dtype", dtype}};
}

absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>> ReadWeights(
    const fs::path& dir, std::map<std::string, std::string>* dtypes) {
  std::vector<std::string> files;
  if (fs::exists(dir / "model.safetensors")) {
    files.push_back("model.safetensors");
  } else if (fs::exists(dir / "model.safetensors.index.json")) {
    auto index_text = ReadFileToString((dir / "model.safetensors.index.json").string());
    if (!index_text.ok()) return index_text.status();
    auto index = ParseJson(*index_text);
    if (!index.ok() || !index->contains("weight_map") || !(*index)["weight_map"].is_object()) {
      return absl::InvalidArgumentError("model.safetensors.index.json has no weight_map");
    }
    std::set<std::string> shards;
    for (const auto& [name, file] : (*index)["weight_map"].items()) {
      std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos) {
        return absl::InvalidArgumentError("index names a shard outside the directory: " + f);
      }
      shards.insert(f);
    }
    files.assign(shards.begin(), shards.end());
  } else {
    return absl::NotFoundError(absl::StrCat(
        "'", dir.string(), "' has neither model.safetensors nor model.safetensors.index.json"));
  }
  std::vector<std::pair<std::string, torch::Tensor>> all;
  for (const std::string& f : files) {
    auto bytes = ReadFileToString((dir / f).string());
    if (!bytes.ok()) return bytes.status();
    auto tensors = DecodeSafetensors(*bytes, dtypes);
    if (!tensors.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(f, ": ", tensors.status().message()));
    }
    for (auto& t : *tensors) all.push_back(std::move(t));
  }
  return all;
}

// A special token in tokenizer_config.json: a string, an AddedToken object
// ({"content": ...}) or null.
std::string SpecialToken(const Json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) {
    return j["content"].get<std::string>();
  }
  return "";
}

// The chat template and special tokens of DIR/tokenizer_config.json, when
// there is one. chat_template is a string, or a list of {name, template}
// of which "default" is used (as transformers does without a name).
absl::Status ReadChatTemplate(const fs::path& dir, ModelConfig* config) {
  if (!fs::exists(dir / "tokenizer_config.json")) return absl::OkStatus();
  auto text = ReadFileToString((dir / "tokenizer_config.json").string());
  if (!text.ok()) return text.status();
  auto j = ParseJson(*text);
  if (!j.ok() || !j->is_object()) {
    return absl::InvalidArgumentError("tokenizer_config.json is not a JSON object");
  }
  config->bos_token = SpecialToken(j->value("bos_token", Json()));
  config->eos_token = SpecialToken(j->value("eos_token", Json()));
  const Json chat = j->value("chat_template", Json());
  if (chat.is_string()) {
    config->chat_template = chat.get<std::string>();
  } else if (chat.is_array()) {
    for (const Json& t : chat) {
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") &&
          t["template"].is_string()) {
        config->chat_template = t["template"].get<std::string>();
      }
    }
    if (config->chat_template.empty() && !chat.empty()) {
      return absl::InvalidArgumentError(
          "tokenizer_config.json: chat_template lists several templates but none named "
          "'default'");
    }
  } else if (!chat.is_null()) {
    return absl::InvalidArgumentError(
        "tokenizer_config.json: chat_template must be a string or a list of {name, template}");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<LanguageModel>> ImportHfCheckpoint(const std::string& dir_name) {
  fs::path dir(dir_name);
  auto config_text = ReadFileToString((dir / "config.json").string());
  if (!config_text.ok()) return config_text.status();
  auto hf = ParseJson(*config_text);
  if (!hf.ok() || !hf->is_object()) return absl::InvalidArgumentError("config.json is not a JSON object");
  auto config = ConfigFromHf(*hf);
  if (!config.ok()) return config.status();

  std::map<std::string, std::string> dtypes;
  auto tensors = ReadWeights(dir, &dtypes);
  if (!tensors.ok()) return tensors.status();
  std::set<std::string> seen_dtypes;
  for (const auto& [name, dtype] : dtypes) seen_dtypes.insert(dtype);
  if (seen_dtypes.size() == 1) config->dtype = *seen_dtypes.begin();

  // Tokenizer: tokenizer.json first (byte-level or SentencePiece BPE, see
  // bpe_tokenizer.h); a SentencePiece tokenizer.model beside it when
  // tokenizer.json is of a kind not supported here. Export writes back
  // whichever was used (the tokenizer's serialized form).
  auto tokenizer = LoadTokenizerFromPath(dir.string());
  if (!tokenizer.ok() && fs::exists(dir / "tokenizer.json") &&
      fs::exists(dir / "tokenizer.model")) {
    auto sp = LoadTokenizerFromPath((dir / "tokenizer.model").string());
    if (!sp.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: tokenizer.json: ", tokenizer.status().message(),
                       "; tokenizer.model: ", sp.status().message()));
    }
    tokenizer = std::move(sp);
  }
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer: ", tokenizer.status().message()));
  }
  absl::Status chat = ReadChatTemplate(dir, &*config);
  if (!chat.ok()) return chat;
  auto model = LanguageModel::Create(*config, std::move(*tokenizer), 0);
  if (!model.ok()) return model.status();

  std::map<std::string, torch::Tensor> ours;
  for (auto& [name, t] : *tensors) {
    if (config->family == "gpt") {
      bool transpose;
      std::string hf_name = absl::StartsWith(name, "transformer.") ? name.substr(12) : name;
      std::string mapped = MapGpt2Name(hf_name, /*to_ours=*/true, &transpose);
      if (mapped.empty()) continue;  // attn.bias masks, tied lm_head
      ours[mapped] = transpose ? t.t().contiguous() : t;
    } else {
      if (absl::EndsWith(name, "rotary_emb.inv_freq")) continue;
      if (name == "lm_head.weight" && config->tie_embeddings) continue;
      ours[name] = t;
    }
  }
  absl::Status s = (*model)->LoadTensors(ours);
  if (!s.ok()) return s;
  return model;
}

absl::Status ExportHfCheckpoint(LanguageModel& model, const std::string& dir_name) {
  fs::path dir(dir_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError("cannot create '" + dir_name + "': " + ec.message());
  const ModelConfig& c = model.config();
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : model.net().named_parameters()) {
    if (c.family == "gpt") {
      bool transpose;
      std::string name = MapGpt2Name(p.key(), /*to_ours=*/false, &transpose);
      tensors.emplace_back(name, transpose ? p.value().t().contiguous() : p.value());
    } else {
      tensors.emplace_back(p.key(), p.value());
    }
  }
  absl::Status s = WriteStringToFile((dir / "config.json").string(), ConfigToHf(c).dump(2));
  if (s.ok()) s = WriteStringToFile((dir / "model.safetensors").string(), EncodeSafetensors(tensors, c.dtype));
  if (!s.ok()) return s;
  if (!c.chat_template.empty() || !c.bos_token.empty() || !c.eos_token.empty()) {
    Json tc = Json::object();
    if (!c.chat_template.empty()) tc["chat_template"] = c.chat_template;
    if (!c.bos_token.empty()) tc["bos_token"] = c.bos_token;
    if (!c.eos_token.empty()) tc["eos_token"] = c.eos_token;
    s = WriteStringToFile((dir / "tokenizer_config.json").string(), tc.dump(2));
    if (!s.ok()) return s;
  }
  const std::string& tok = model.tokenizer().serialized();
  return WriteStringToFile(
      (dir / (!tok.empty() && tok[0] == '{' ? "tokenizer.json" : "tokenizer.model")).string(), tok);
}

}  // namespace streamlm

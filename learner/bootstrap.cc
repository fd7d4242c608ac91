#include "learner/bootstrap.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/kafka.h"
#include "common/log.h"
#include "ingest/pipeline.h"
#include "learner/trainer.h"
#include "model/language_model.h"
#include "model/token_blocks.h"

namespace streamlm {
namespace {

using Document = std::vector<std::string>;  // paragraphs

absl::StatusOr<std::vector<Document>> ReadCorpus(const Config& config) {
  std::vector<Document> docs;
  if (!config.bootstrap.topic.empty()) {
    if (config.kafka.empty()) {
      return absl::InvalidArgumentError(
          "config key 'bootstrap.topic' needs 'kafka' (--kafka HOST:PORT) to read it from");
    }
    auto records = ReadWholeTopic(config.kafka, config.bootstrap.topic, 120000);
    if (!records.ok()) return records.status();
    // The same stages 1-6 as the stream (clean.text profile, dedup within
    // the topic); unusable records are skipped here, the learner routes them
    // to rejects when it reads them.
    std::vector<IngestItem> items(records->size());
    for (size_t i = 0; i < records->size(); ++i) items[i].payload = std::move((*records)[i].value);
    PipelineOptions po;
    po.clean = config.clean_text;
    po.max_record_bytes = static_cast<size_t>(config.learner.max_record_bytes);
    po.threads = ResolveThreads(config.ingest.threads);
    Deduplicator dedup(DedupOptionsFromConfig(config));
    TextPipeline(po).Run(items, config.dedup.window_docs > 0 ? &dedup : nullptr, nullptr);
    size_t kept = 0;
    for (const IngestItem& item : items) {
      if (!item.ok()) continue;
      ++kept;
      docs.push_back(absl::StrSplit(item.record.text, '\n', absl::SkipEmpty()));
    }
    SLM_LOG(kInfo) << "bootstrap: " << kept << " of " << items.size() << " records of "
                   << config.bootstrap.topic << " kept after cleaning";
  }
  int64_t budget = config.bootstrap.max_corpus_bytes > 0
                       ? config.bootstrap.max_corpus_bytes
                       : INT64_MAX;
  for (const std::string& path :
       config.bootstrap.topic.empty() ? config.bootstrap.corpus : std::vector<std::string>()) {
    std::ifstream in(path);
    if (!in) {
      return absl::NotFoundError(absl::StrCat(
          "bootstrap corpus file '", path,
          "' cannot be read (config key bootstrap.corpus)"));
    }
    Document doc;
    std::string line;
    while (budget > 0 && std::getline(in, line)) {
      budget -= static_cast<int64_t>(line.size()) + 1;
      if (line.empty()) {
        if (!doc.empty()) docs.push_back(std::move(doc));
        doc.clear();
      } else {
        doc.push_back(line);
      }
    }
    if (!doc.empty()) docs.push_back(std::move(doc));
  }
  if (docs.empty()) return absl::InvalidArgumentError("bootstrap corpus is empty");
  // Too few documents to hold some out: treat paragraphs as documents.
  if (docs.size() < 20) {
    std::vector<Document> paras;
    for (const Document& d : docs)
      for (const std::string& p : d) paras.push_back({p});
    docs = std::move(paras);
  }
  return docs;
}

// Tokens of `docs`, documents separated by EOS, encoded on all cores.
std::vector<int32_t> Encode(const Tokenizer& tok, const std::vector<const Document*>& docs) {
  size_t workers = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::future<std::vector<int32_t>>> parts;
  for (size_t w = 0; w < workers; ++w) {
    parts.push_back(std::async(std::launch::async, [&, w] {
      std::vector<int32_t> out;
      for (size_t i = w * docs.size() / workers; i < (w + 1) * docs.size() / workers; ++i) {
        for (const std::string& p : *docs[i]) {
          std::vector<int32_t> ids = tok.Encode(p);
          out.insert(out.end(), ids.begin(), ids.end());
        }
        out.push_back(tok.eos_id());
      }
      return out;
    }));
  }
  std::vector<int32_t> all;
  for (auto& f : parts) {
    auto part = f.get();
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

std::string FormatDuration(double s) {
  int total = static_cast<int>(s + 0.5);
  return total >= 60 ? absl::StrFormat("%dm%02ds", total / 60, total % 60)
                     : absl::StrFormat("%ds", total);
}

// What must match for a checkpoint to be resumed.
Json BootstrapFingerprint(const Config& c) {
  return {{"corpus", c.bootstrap.topic.empty() ? Json(c.bootstrap.corpus) : Json(c.bootstrap.topic)},
          {"max_corpus_bytes", c.bootstrap.max_corpus_bytes},
          {"model", ModelConfigToJson(*ModelConfigFromConfig(c))},
          {"steps", c.bootstrap.steps},
          {"batch_size", c.bootstrap.batch_size},
          {"lr", c.bootstrap.lr},
          {"heldout_fraction", c.bootstrap.heldout_fraction},
          {"seed", c.seed}};
}

constexpr char kBootstrapCheckpoint[] = "bootstrap";
constexpr char kBootstrapTokenizer[] = "bootstrap_tokenizer";

}  // namespace

absl::StatusOr<BootstrapResult> RunBootstrap(
    const Config& config, Store* store,
    const std::function<void(const std::string&)>& progress,
    const std::atomic<bool>* stop, const std::string& tokenizer_given) {
  auto start = std::chrono::steady_clock::now();
  auto model_config = ModelConfigFromConfig(config);
  if (!model_config.ok()) return model_config.status();
  auto docs = ReadCorpus(config);
  if (!docs.ok()) return docs.status();

  // Every k-th document is held out for evaluation, spread over the corpus.
  size_t k = std::max<size_t>(2, static_cast<size_t>(std::lround(1.0 / config.bootstrap.heldout_fraction)));
  std::vector<const Document*> train_docs, heldout_docs;
  std::vector<std::string> sentences;
  for (size_t i = 0; i < docs->size(); ++i) {
    if (i % k == k / 2) {
      heldout_docs.push_back(&(*docs)[i]);
    } else {
      train_docs.push_back(&(*docs)[i]);
      for (const std::string& p : (*docs)[i]) sentences.push_back(p);
    }
  }
  // A checkpoint of this same bootstrap, if an earlier run was interrupted.
  const Json fingerprint = BootstrapFingerprint(config);
  auto resume = store->GetCheckpoint(kBootstrapCheckpoint);
  bool resuming = resume.ok() && resume->state.value("fingerprint", Json()) == fingerprint &&
                  !resume->state.value("done", false);
  std::string sp_model;
  if (resuming) {
    auto saved = store->GetEvalSet(kBootstrapTokenizer);
    if (!saved.ok()) return saved.status();
    sp_model = *saved;
    progress(absl::StrCat("bootstrap: resuming at step ", resume->step, " of ",
                          config.bootstrap.steps, " from its checkpoint"));
  } else if (!tokenizer_given.empty()) {
    progress(absl::StrCat("bootstrap: ", docs->size(), " documents (", heldout_docs.size(),
                          " held out); the given tokenizer"));
    sp_model = tokenizer_given;
    absl::Status saved = store->PutEvalSet(kBootstrapTokenizer, sp_model);
    if (!saved.ok()) return saved;
  } else {
    progress(absl::StrCat("bootstrap: ", docs->size(), " documents (", heldout_docs.size(),
                          " held out); training a ", model_config->vocab_size,
                          "-piece tokenizer"));
    SentencePieceTrainOptions sp;
    sp.vocab_size = model_config->vocab_size;
    sp.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    auto trained = TrainSentencePiece(sentences, sp);
    if (!trained.ok()) return trained.status();
    sp_model = *trained;
    absl::Status saved = store->PutEvalSet(kBootstrapTokenizer, sp_model);
    if (!saved.ok()) return saved;
  }
  auto tokenizer = LoadTokenizer(sp_model);
  if (!tokenizer.ok()) return tokenizer.status();

  std::vector<int32_t> train_tokens = Encode(**tokenizer, train_docs);
  const int64_t T = model_config->context_tokens;
  // Held-out documents, kept as text so any model can be scored on them
  // with its own tokenizer; their first context+1 windows are the eval set.
  std::vector<std::string> heldout_texts;
  for (const Document* d : heldout_docs) heldout_texts.push_back(absl::StrJoin(*d, "\n"));
  std::vector<TokenBlock> eval_blocks =
      PackBlocks(**tokenizer, heldout_texts, T + 1, config.bootstrap.eval_sequences);
  if (static_cast<int64_t>(train_tokens.size()) < 4 * (T + 1) || eval_blocks.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bootstrap corpus is too small for model.context_tokens=", T, ": ",
        train_tokens.size(), " training tokens and ", eval_blocks.size(),
        " held-out windows"));
  }

  // Unigram baseline with add-one smoothing, scored on the same targets.
  std::vector<double> counts((*tokenizer)->vocab_size(), 1.0);
  for (int32_t id : train_tokens) counts[id] += 1.0;
  double total = 0;
  for (double c : counts) total += c;
  double unigram_sum = 0;
  int64_t unigram_n = 0;
  for (const TokenBlock& b : eval_blocks) {
    for (size_t t = 1; t < b.size(); ++t, ++unigram_n) unigram_sum -= std::log(counts[b[t]] / total);
  }

  model_config->vocab_size = std::max(model_config->vocab_size, (*tokenizer)->vocab_size());
  auto model = LanguageModel::Create(*model_config, std::move(*tokenizer), config.seed);
  if (!model.ok()) return model.status();
  Trainer trainer(*model, config.bootstrap.lr);
  std::mt19937_64 rng(config.seed);
  const int steps = config.bootstrap.steps;
  const int warmup = std::max(1, std::min(100, steps / 10));
  int first_step = 1;
  double loss_avg = 0;
  if (resuming) {
    absl::Status s = (*model)->LoadWeights(resume->weights);
    if (s.ok()) s = trainer.RestoreOptimizer(resume->optimizer);
    if (!s.ok()) return s;
    std::istringstream rng_state(resume->state.value("rng", ""));
    rng_state >> rng;
    first_step = static_cast<int>(resume->step) + 1;
    loss_avg = resume->state.value("loss_avg", 0.0);
  }
  auto checkpoint = [&](int step, bool done) {
    LearnerCheckpoint c;
    c.name = kBootstrapCheckpoint;
    c.step = step;
    c.weights = (*model)->SerializeWeights();
    c.optimizer = trainer.SerializeOptimizer();
    std::ostringstream rng_state;
    rng_state << rng;
    c.state = {{"fingerprint", fingerprint}, {"rng", rng_state.str()},
               {"loss_avg", loss_avg}, {"done", done}};
    return store->PutCheckpoint(c);
  };
  const double gemm_gflops = MeasureGemmGflops();
  const double flops_per_token = (*model)->config().TrainFlopsPerToken();
  progress(absl::StrFormat(
      "bootstrap: %d training tokens; model %d parameters; %d steps of %dx%d tokens; "
      "this machine's matmul rate %.1f GFLOP/s",
      train_tokens.size(), (*model)->config().ParameterCount(), steps,
      config.bootstrap.batch_size, T, gemm_gflops));
  auto train_start = std::chrono::steady_clock::now();
  for (int step = first_step; step <= steps; ++step) {
    if (stop != nullptr && *stop) {
      absl::Status s = checkpoint(step - 1, false);
      if (!s.ok()) return s;
      return absl::CancelledError(absl::StrCat(
          "bootstrap interrupted; checkpoint at step ", step - 1, " (run it again to resume)"));
    }
    std::vector<TokenBlock> batch;
    for (int b = 0; b < config.bootstrap.batch_size; ++b) {
      size_t s = rng() % (train_tokens.size() - T - 1);
      batch.emplace_back(train_tokens.begin() + s, train_tokens.begin() + s + T + 1);
    }
    double progress_frac = static_cast<double>(step - warmup) / std::max(1, steps - warmup);
    double lr = step <= warmup
                    ? config.bootstrap.lr * step / warmup
                    : config.bootstrap.lr * (0.1 + 0.45 * (1 + std::cos(M_PI * progress_frac)));
    double loss = trainer.Step(batch, lr);
    loss_avg = step == 1 ? loss : 0.9 * loss_avg + 0.1 * loss;
    if (step % config.bootstrap.progress_every_steps == 0 || step == steps) {
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
      int done = step - first_step + 1;
      double tps = static_cast<double>(done) * config.bootstrap.batch_size * T / elapsed;
      progress(absl::StrFormat("bootstrap: step %d/%d loss %.3f tokens/s %.0f MFU %.2f ETA %s",
                               step, steps, loss_avg, tps, tps * flops_per_token / 1e9 / gemm_gflops,
                               FormatDuration(elapsed / done * (steps - step))));
    }
    if (step % config.bootstrap.checkpoint_every_steps == 0 && step < steps) {
      absl::Status s = checkpoint(step, false);
      if (!s.ok()) return s;
    }
  }
  double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
  const int trained_steps = steps - first_step + 1;

  auto losses = (*model)->SequenceLosses(eval_blocks);
  double sum = 0;
  int64_t n = 0;
  for (const SequenceLoss& l : losses) {
    sum += l.sum_nats;
    n += l.tokens;
  }
  BootstrapResult result;
  result.heldout_loss = sum / n;
  result.unigram_loss = unigram_sum / unigram_n;
  result.tokens_trained = static_cast<int64_t>(steps) * config.bootstrap.batch_size * T;
  result.tokens_per_s =
      static_cast<double>(trained_steps) * config.bootstrap.batch_size * T / std::max(train_s, 1e-9);

  // Replay seed: randomly chosen training paragraphs, about enough text for
  // the replay buffer (~4 bytes per token).
  Json replay = Json::array();
  const size_t replay_bytes =
      std::min<size_t>(size_t{4} << 20, size_t(config.learner.replay_capacity_blocks) * T * 4);
  for (size_t bytes = 0; bytes < replay_bytes && !train_docs.empty();) {
    const Document& d = *train_docs[rng() % train_docs.size()];
    const std::string& p = d[rng() % d.size()];
    replay.push_back(p);
    bytes += p.size();
  }
  absl::Status st = store->PutEvalSet(kBaseEvalSet, Json(heldout_texts).dump());
  if (!st.ok()) return st;
  st = store->PutEvalSet(kBaseOriginSet,
                         absl::StrCat("held-out documents of the bootstrap corpus (",
                                      heldout_texts.size(), " of ", docs->size(), ")"));
  if (!st.ok()) return st;
  st = store->PutEvalSet(kReplaySeedSet, replay.dump());
  if (!st.ok()) return st;

  auto id = store->NewSnapshotId();
  if (!id.ok()) return id.status();
  Snapshot snap;
  snap.meta.id = *id;
  snap.meta.created_ms = NowMs();
  snap.meta.origin = "bootstrap";
  snap.meta.model_config = ModelConfigToJson((*model)->config());
  snap.meta.lineage.tokens_trained = result.tokens_trained;
  snap.meta.lineage.step = steps;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  snap.meta.metrics = {{"heldout_loss", result.heldout_loss},
                       {"unigram_loss", result.unigram_loss},
                       {"tokens_per_s", result.tokens_per_s},
                       {"mfu", result.tokens_per_s * flops_per_token / 1e9 / gemm_gflops},
                       {"seconds", result.seconds},
                       {"corpus", config.bootstrap.corpus},
                       {"corpus_documents", docs->size()}};
  snap.weights = (*model)->SerializeWeights();
  snap.tokenizer = (*model)->tokenizer().serialized();
  st = store->PutSnapshot(snap, {kChampion});
  if (!st.ok()) return st;
  st = checkpoint(steps, /*done=*/true);
  if (!st.ok()) return st;
  result.snapshot_id = *id;
  progress(absl::StrFormat(
      "bootstrap: wrote %s as champion: held-out loss %.3f vs unigram %.3f nats/token "
      "(%.0f tokens/s, %s)",
      *id, result.heldout_loss, result.unigram_loss, result.tokens_per_s,
      FormatDuration(result.seconds)));
  return result;
}

absl::StatusOr<std::string> WriteBaseCorpus(const Config& config,
                                            const std::vector<std::string>& files,
                                            Store* store) {
  if (files.empty()) return absl::InvalidArgumentError("--base-corpus needs at least one file");
  const size_t k = std::max<size_t>(
      2, static_cast<size_t>(std::lround(1.0 / config.bootstrap.heldout_fraction)));
  Json base = Json::array(), replay = Json::array();
  std::vector<std::string> parts;
  for (const std::string& path : files) {
    Config one = config;
    one.bootstrap.topic.clear();
    one.bootstrap.corpus = {path};
    auto docs = ReadCorpus(one);
    if (!docs.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--base-corpus ", path, ": ", docs.status().message()));
    }
    const std::string name = std::filesystem::path(path).filename().string();
    size_t held = 0;
    for (size_t i = 0; i < docs->size(); ++i) {
      if (i % k == k / 2) {
        base.push_back({{"text", absl::StrJoin((*docs)[i], "\n")}, {"source", name}});
        ++held;
      } else {
        for (const std::string& p : (*docs)[i]) replay.push_back(p);
      }
    }
    parts.push_back(absl::StrCat(name, " (", held, " of ", docs->size(), " documents held out)"));
  }
  const std::string origin = absl::StrCat("base corpus ", absl::StrJoin(parts, ", "));
  absl::Status s = store->PutEvalSet(kBaseEvalSet, base.dump());
  if (s.ok()) s = store->PutEvalSet(kReplaySeedSet, replay.dump());
  if (s.ok()) s = store->PutEvalSet(kBaseOriginSet, origin);
  if (!s.ok()) return s;
  return origin;
}

}  // namespace streamlm

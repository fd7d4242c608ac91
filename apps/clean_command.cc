#include "apps/clean_command.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"
#include "ingest/pipeline.h"

namespace streamlm {
namespace {

constexpr size_t kBatch = 1024;

struct Tally {
  int64_t read = 0;
  int64_t kept = 0;
  std::map<std::string, int64_t> dropped;
  std::map<std::string, int64_t> redacted;

  void Add(const PiiCounts& p) {
    p.ForEach([&](const char* kind, int n) {
      if (n > 0) redacted[kind] += n;
    });
  }
};

bool IsFeedback(const std::string& line) {
  auto j = ParseJson(line);
  return j.ok() && j->is_object() && j->contains("prompt") && !j->contains("text");
}

}  // namespace

int RunClean(const Config& config, bool text, std::istream& in, std::ostream& out,
             std::ostream& err) {
  PipelineOptions po;
  po.clean = config.clean_text;
  po.max_record_bytes = static_cast<size_t>(config.learner.max_record_bytes);
  po.threads = ResolveThreads(config.ingest.threads);
  TextPipeline pipeline(po);
  Cleaner feedback(config.clean_feedback);
  std::unique_ptr<Deduplicator> dedup;
  if (config.dedup.window_docs > 0) {
    dedup = std::make_unique<Deduplicator>(DedupOptionsFromConfig(config));
  }
  Tally tally;
  bool first_doc = true;

  // One batch of text records (JSON payloads); `originals` are the parsed
  // lines so fields other than "text" are written back unchanged.
  std::vector<IngestItem> items;
  auto flush = [&] {
    pipeline.Run(items, dedup.get(), nullptr);
    for (IngestItem& item : items) {
      if (!item.ok()) {
        ++tally.dropped[item.reason];
        continue;
      }
      ++tally.kept;
      tally.Add(item.clean.pii);
      if (text) {
        // Documents are separated by blank lines, so none may contain one.
        std::string doc = absl::StrReplaceAll(item.record.text, {{"\n\n", "\n"}});
        out << (first_doc ? "" : "\n") << doc << "\n";
        first_doc = false;
      } else {
        // The pipeline parsed this payload already (after the same repair).
        absl::StatusOr<Json> j = ParseJson(ReplaceInvalidUtf8(item.payload));
        if (!j.ok()) j = Json::object();
        (*j)["text"] = item.record.text;
        out << j->dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
      }
    }
    items.clear();
  };
  auto add_text_record = [&](std::string payload) {
    ++tally.read;
    items.emplace_back();
    items.back().payload = std::move(payload);
    if (items.size() >= kBatch) flush();
  };

  std::string line;
  if (text) {
    std::string doc;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) {
        if (!doc.empty()) add_text_record(Json{{"text", doc}}.dump(-1, ' ', false, Json::error_handler_t::replace));
        doc.clear();
        continue;
      }
      if (!doc.empty()) doc.push_back('\n');
      doc += line;
    }
    if (!doc.empty()) add_text_record(Json{{"text", doc}}.dump(-1, ' ', false, Json::error_handler_t::replace));
  } else {
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      if (IsFeedback(line)) {
        flush();  // keep the output in input order
        ++tally.read;
        FeedbackResult f = CleanFeedbackRecord(line, po.max_record_bytes, feedback);
        if (!f.ok()) {
          ++tally.dropped[f.reason];
          continue;
        }
        ++tally.kept;
        tally.Add(f.pii);
        out << f.record.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
        continue;
      }
      add_text_record(line);
    }
  }
  flush();
  out.flush();
  Json counts = {{"read", tally.read},
                 {"kept", tally.kept},
                 {"dropped", tally.dropped},
                 {"redacted", tally.redacted}};
  err << counts.dump() << std::endl;
  return 0;
}

}  // namespace streamlm

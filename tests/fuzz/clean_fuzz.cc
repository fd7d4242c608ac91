// libFuzzer target: cleaning stages 2-4 and 6 (normalizer, HTML to text,
// quality filters, PII redaction) and the feedback record cleaner must take
// any bytes without crashing, and whatever they keep must be valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/json_util.h"
#include "ingest/pipeline.h"

namespace {

const streamlm::Cleaner& TextCleaner(bool html) {
  static const streamlm::Cleaner* plain = [] {
    streamlm::CleanOptions o;
    o.gopher_quality.min_doc_words = 3;  // let short inputs reach every stage
    o.c4.min_sentences = 1;
    o.pii.max_hits = 5;
    return new streamlm::Cleaner(o);
  }();
  static const streamlm::Cleaner* markup = [] {
    streamlm::CleanOptions o;
    o.markup.html = "always";
    o.normalize.unicode_form = "nfkc";
    o.gopher_quality.enabled = false;
    o.fineweb.enabled = false;
    return new streamlm::Cleaner(o);
  }();
  return html ? *markup : *plain;
}

void Check(const streamlm::CleanResult& r) {
  if (r.ok() && (!streamlm::IsValidUtf8(r.text) || r.text.empty())) std::abort();
  if (!r.ok() && r.detail.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Check(TextCleaner(false).Clean(input));
  Check(TextCleaner(true).Clean(input));
  static const streamlm::Cleaner* feedback =
      new streamlm::Cleaner(streamlm::DefaultFeedbackCleanOptions());
  streamlm::FeedbackResult f = streamlm::CleanFeedbackRecord(input, 1 << 16, *feedback);
  if (f.ok() && !streamlm::IsValidUtf8(f.record.dump())) std::abort();
  return 0;
}

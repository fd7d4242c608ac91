// Stage 4 of cleaning: document quality filters (common/clean_options.h):
// for web pages the published ones (Gopher quality, Gopher repetition, C4
// line and page filters as FineWeb applies them, FineWeb's extra filters);
// for every document rules that keep ordinary short human text and drop
// gibberish, navigation, boilerplate and spam; language identification
// (CLD2). Every dropped document names the rule that dropped it.
//
// Thread-safety: a QualityFilter is immutable after construction; Apply()
// may be called from many threads at once.
#ifndef STREAMLM_INGEST_QUALITY_H_
#define STREAMLM_INGEST_QUALITY_H_

#include <string>
#include <string_view>

#include "ingest/clean_options.h"

namespace streamlm {

struct FilterVerdict {
  // nullptr = kept. Otherwise a stable snake_case rule name (a string
  // literal), used as the metrics label and the `reason` on streamlm.rejects.
  const char* reason = nullptr;
  std::string detail;  // for humans: the measured value and the threshold
  int lines_dropped = 0;  // C4 line filters (document kept or not)
  // Whether the document was judged as a web page (PageShapeOptions), so
  // that the web-page rules applied to it.
  bool page_shaped = false;
  bool ok() const { return reason == nullptr; }
};

class QualityFilter {
 public:
  explicit QualityFilter(const CleanOptions& options);

  // Runs the enabled filters on `text` (valid UTF-8, already normalized:
  // LF line endings, paragraphs separated by a blank line). First the
  // document's shape is judged (PageShapeOptions): the web-page rules apply
  // only to page-shaped documents. C4's line filters may remove lines from
  // `text` in place; then the document filters decide. Order: C4 lines,
  // language, text rules, Gopher repetition, Gopher quality, C4 page,
  // FineWeb.
  FilterVerdict Apply(std::string& text) const;

 private:
  CleanOptions options_;
};

}  // namespace streamlm

#endif  // STREAMLM_INGEST_QUALITY_H_

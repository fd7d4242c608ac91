// Options structs of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::dedup, Config::ingest).
#ifndef STREAMLM_INGEST_INGEST_OPTIONS_H_
#define STREAMLM_INGEST_INGEST_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The dedup.* keys: duplicate removal of stream records (ingest/dedup.h).
struct DedupWindowOptions {
  // Exact and MinHash near-duplicates.
  int64_t window_docs = 100000;  // 0 = off
  int64_t window_s = 0;          // also forget after this long; 0 = no time bound
  double threshold = 0.75;
};

// The ingest.* keys: the ingest pipeline (ingest/pipeline.h).
struct IngestOptions {
  int threads = 0;  // threads of the ingest pipeline; 0 = all cores
};

}  // namespace streamlm

#endif  // STREAMLM_INGEST_INGEST_OPTIONS_H_

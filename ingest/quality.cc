#include "ingest/quality.h"

namespace streamlm {
// Implementation in progress.
}  // namespace streamlm

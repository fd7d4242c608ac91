#include "ingest/pii.h"

namespace streamlm {
// Implementation in progress.
}  // namespace streamlm

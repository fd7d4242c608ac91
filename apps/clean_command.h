// `streamlm clean`: ingest stages 1-6 on JSON lines or plain text from a
// stream, the same code the learner runs on `streamlm.text` (and, for
// records with a "prompt", the feedback cleaner with the clean.feedback
// profile).
#ifndef STREAMLM_APPS_CLEAN_COMMAND_H_
#define STREAMLM_APPS_CLEAN_COMMAND_H_

#include <istream>
#include <ostream>

#include "common/config.h"

namespace streamlm {

// Reads `in` (JSON lines, or with `text` plain documents separated by blank
// lines), writes the kept records to `out` in the same format, and the
// counts as one JSON object to `err`:
//   {"read", "kept", "dropped": {reason: n}, "redacted": {kind: n}}.
// Returns the process exit code.
int RunClean(const Config& config, bool text, std::istream& in, std::ostream& out,
             std::ostream& err);

}  // namespace streamlm

#endif  // STREAMLM_APPS_CLEAN_COMMAND_H_

// The parent side of the validator protocol: starts the validator processes for
// one file, follows their events and turns every way they can end into a result or
// an Error (kvq/isolate/open_file.h is the public entry point).
#pragma once

#include <string>
#include <vector>

#include "kvq/base/file_identity.h"
#include "kvq/base/task.h"
#include "kvq/isolate/open_file.h"
#include "kvq/isolate/validator.h"

namespace kvq::isolate {

struct RunRequest {
  std::string path;
  FileIdentity identity;  // as this process saw the file; the children must see the same
  UntrustedKind kind = UntrustedKind::Dump;
  bool statistics = true;   // dumps: scan values and compute statistics
  int workers = 1;          // processes sharing the layers (dumps with statistics)
  std::vector<int> layers;  // dumps with statistics: scan only these (empty: every layer)
  std::string validator;    // the kvq binary
  IsolationLimits limits;
};

struct RunResult {
  DumpInfo info;                  // dumps
  std::vector<LayerStats> stats;  // dumps with statistics: every present layer, ascending
  size_t codebookSets = 0;        // codebook files
};

// Runs the validators to completion. listener.onHeader fires once, with the first
// header; onLayer per layer as it arrives. Throws Error(BadInput) for a refused
// file — the child's own message, or one naming the signal, limit and last step —,
// Error(Internal) for a validator that cannot run or breaks the protocol, and
// Error(Cancelled). Every child is killed and reaped before this returns or throws.
RunResult runValidators(const RunRequest& request, const OpenListener& listener, const TaskControl* control);

}  // namespace kvq::isolate

// Whether stored codebooks fit a dump: the questions to ask before measuring
// codebooks trained on one dump against another (kvq eval, kvq attention, the
// GUI's Evaluate Codebooks).
#pragma once

#include <string>
#include <vector>

#include "kvq/dump/dump.h"
#include "kvq/io/codebook_file.h"

namespace kvq {

// Throws Error(BadInput) naming `codebooksPath` and the first mismatch with the
// dump: head_dim, the kv heads of per-head quantizers, group size and channel
// order against head_dim, or a layer of `layers` (empty: every layer of the file)
// that the file or the dump lacks.
void checkCodebooksFitDump(const CodebookFile& file, const std::string& codebooksPath, const DumpInfo& info,
                           const std::vector<int>& layers = {});

// The layers of the file, ascending, each once.
std::vector<int> codebookLayers(const CodebookFile& file);

}  // namespace kvq

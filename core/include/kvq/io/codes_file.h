// The codes file written by `kvq encode`: the compressed cache of a whole dump.
#pragma once

#include <cstdint>
#include <string>

#include "kvq/base/task.h"
#include "kvq/io/codebook_file.h"
#include "kvq/rvq/backend.h"

namespace kvq {

class DumpReader;

// Root attrs kvq_format = "rvq-codes", kvq_format_version = 1, codebooks, source_dump,
// head_dim, num_kv_heads, codebook_size, depth, group_size; per set
//   /layers/<L>/<kind>/codes  [T, H, G, K] uint16 (C <= 65536; int32 otherwise)
//   /layers/<L>/<kind>/scales [T, H] float16 (the per-vector scale s)
// Encodes every token of the dump (not only the held-out ones).
struct EncodeSummary {
  int64_t tokens = 0;
  int sets = 0;
  uint64_t codeBytes = 0;  // bytes of codes + scales as stored (before HDF5 compression)
};
EncodeSummary encodeDumpToFile(const DumpReader& reader, const CodebookFile& codebooks,
                               const std::string& codebooksPath, const std::string& outPath, Backend& backend,
                               const TaskControl* control = nullptr, int64_t chunkTokens = 1024);

}  // namespace kvq

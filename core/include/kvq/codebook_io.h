// Codebook file format v1 (HDF5; docs/codebook-format.md), its reader, the npz
// export for NumPy users and the codes file written by `kvq encode`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kvq/quantize_study.h"
#include "kvq/rvq_config.h"

namespace kvq {

// Everything a codebook file holds.
struct CodebookFile {
  RvqConfig config;
  std::string sourceDump;  // path of the dump the quantizers were trained on
  std::string model;
  int headDim = 0;
  int numKvHeads = 0;
  std::vector<QuantizerSet> sets;  // one per layer x kind, layer-major
  // Held-out metrics stored as attributes of each layer x kind group (informative;
  // "relative_error", "snr_db", "mean_cosine", "bits_per_channel", ...), same order as sets.
  std::vector<std::map<std::string, double>> metrics;
  std::vector<std::vector<double>> relativeErrorByDepth;  // [sets][K]
};

// The file contents of a study (codebooks, channel orders, config, metrics).
CodebookFile codebookFileFromStudy(const StudyResult& study);

// Writes format v1 atomically (temporary file + rename). Throws Error(BadInput)
// naming the file when it cannot be written.
void writeCodebookFile(const std::string& path, const CodebookFile& file);

// Reads and validates format v1. Throws Error(BadInput) naming the file, the HDF5
// path and the problem (wrong kvq_format/version, missing dataset, bad shape, ...).
CodebookFile readCodebookFile(const std::string& path);

// The config stored in a file, as JSON (the same keys as the root attributes).
std::string configToJson(const RvqConfig& config);

// npz export (a zip of .npy arrays, stored): for every set
//   L<layer>_<kind>_codebooks      [K, C, g] float32 (shared quantizer) or
//   L<layer>_<kind>_head<h>_codebooks  per head
//   L<layer>_<kind>_channel_order  [D] int32
// and `config`, a 0-d unicode array holding the JSON of configToJson plus
// source_dump, model, head_dim, num_kv_heads. Written atomically.
void writeCodebookNpz(const std::string& path, const CodebookFile& file);

// ---- codes file (`kvq encode`) ---------------------------------------------
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

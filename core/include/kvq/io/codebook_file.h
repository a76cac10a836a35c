// Codebook file format v1 (HDF5; docs/codebook-format.md): what it holds, its
// atomic writer and its strict reader.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kvq/base/file_identity.h"
#include "kvq/rvq/codebooks.h"
#include "kvq/rvq/rvq_config.h"
#include "kvq/study/bit_budget.h"

namespace kvq {

struct StudyResult;

// The root attributes kvq_format and kvq_format_version of a codebook file (and
// the same keys of the npz export's config).
inline constexpr const char* kCodebookFormat = "rvq-codebooks";
inline constexpr int kCodebookFormatVersion = 1;

// Everything a codebook file holds.
struct CodebookFile {
  RvqConfig config;
  std::string sourceDump;  // path of the dump the quantizers were trained on
  std::vector<std::string>
      alsoTrainedOn;  // further dumps whose training tokens were pooled (kvq train --also)
  std::string model;
  int headDim = 0;
  int numKvHeads = 0;
  std::vector<QuantizerSet> sets;  // one per layer x kind, layer-major
  // Held-out metrics stored as attributes of each layer x kind group (informative;
  // "relative_error", "snr_db", "mean_cosine", "bits_per_channel", ...), same order as sets.
  std::vector<std::map<std::string, double>> metrics;
  std::vector<std::vector<double>> relativeErrorByDepth;  // [sets][K]
  std::optional<CacheAllocation> allocation;              // a bit allocation of kvq allocate (/allocation)
};

// The file contents of a study (codebooks, channel orders, config, metrics).
CodebookFile codebookFileFromStudy(const StudyResult& study);

// Writes format v1 atomically (temporary file + rename). Throws Error(BadInput)
// naming the file when it cannot be written.
void writeCodebookFile(const std::string& path, const CodebookFile& file);

// Reads and validates format v1. Throws Error(BadInput) naming the file, the HDF5
// path and the problem (wrong kvq_format/version, missing dataset, bad shape, ...).
// expected: the identity the isolated validator checked (kvq/isolate/open_file.h);
// another file, or this one modified since, is refused before HDF5 reads it.
CodebookFile readCodebookFile(const std::string& path, const FileIdentity* expected = nullptr);

// The config stored in a file, as JSON (the same keys as the root attributes).
std::string configToJson(const RvqConfig& config);

}  // namespace kvq

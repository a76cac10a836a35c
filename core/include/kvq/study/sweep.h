// Rate-distortion sweep: for each codebook size one training at the largest
// depth, every depth read from its error-by-depth curve (docs/metrics.md "Sweeps").
#pragma once

#include <string>
#include <vector>

#include "kvq/study/quantize_study.h"

namespace kvq {

struct SweepPoint {
  std::string method;  // "rvq" or "kivi"
  int layer = -1;      // -1: all selected layers
  Kind kind = Kind::Keys;
  int codebookSize = 0;  // rvq: C
  int depth = 0;         // rvq: K
  int bits = 0;          // kivi: b
  int groupSize = 0;     // rvq: g; kivi: n
  double bitsPerChannel = 0;
  double compressionRatio = 0;
  ErrorSums error;
};

struct SweepResult {
  std::vector<int> codebookSizes;
  std::vector<int> depths;
  std::vector<StudyResult> studies;  // one per codebook size, trained at max depth
  std::vector<SweepPoint> points;    // per layer x kind and summed over layers (layer -1)
};

// For each C: one training at the largest depth; every depth is read from its
// error-by-depth curve (stages are trained in sequence, so the first k stages of a
// K-stage quantizer are what a k-stage training yields, greedy encoding).
// Throws BadInput ("beam_width") when options.config.beamWidth > 1.
SweepResult runSweep(const DumpReader& reader, const StudyOptions& options,
                     const std::vector<int>& codebookSizes, const std::vector<int>& depths, Backend& backend,
                     const TaskControl* control = nullptr);

}  // namespace kvq

// Training of residual quantizers: the paper's recipe (k-means initialisation of
// each stage on the residuals of the previous ones, then EMA refinement) plus the
// options of RvqConfig beyond it. Deterministic in config.seed for any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "kvq/base/task.h"
#include "kvq/rvq/backend.h"
#include "kvq/rvq/codebooks.h"
#include "kvq/rvq/rvq_config.h"

namespace kvq {

struct TrainStats {
  std::vector<double> stageErrorAfterInit;  // [K] relative error of the sample after k-means init of stage k
  std::vector<double> stageErrorAfterEma;   // [K] ... after EMA (and Lloyd) of stage k
  std::vector<int> reseeded;                // [K] entries restarted by dead-entry reseeding
  double seconds = 0;
};

// Trains K stages on group vectors.
//   x: [n, g] row-major float32, already scaled and grouped (the training sample;
//      subsampled internally to config.trainSample when n is larger)
// Progress is reported per stage/step; cancellation throws Error(Cancelled).
Codebooks trainRvq(const float* x, int64_t n, int g, const RvqConfig& config, Backend& backend,
                   const TaskControl* control = nullptr, TrainStats* stats = nullptr);

}  // namespace kvq

// A configuration made a training of seconds for the tests (core and GUI).
#pragma once

#include <cstdint>

#include "kvq/rvq/rvq_config.h"

namespace kvq::test {

// base with C entries per stage, K stages of g channels, trained on at most `sample` vectors
// with `emaSteps` EMA mini-batches of `batch` vectors (0: base's); the rest of base unchanged.
inline RvqConfig quickTraining(RvqConfig base, int C, int K, int g, int64_t sample, int emaSteps,
                               int64_t batch = 0) {
  base.codebookSize = C;
  base.depth = K;
  base.groupSize = g;
  base.trainSample = sample;
  base.emaSteps = emaSteps;
  if (batch > 0) base.batchSize = batch;
  return base;
}

}  // namespace kvq::test

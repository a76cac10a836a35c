// RvqConfig — every setting of a residual vector quantizer and of its training.
//
// Defaults are the paper's (Kumar 2024): C = 2048 entries, K = 8 stages, groups of
// g = 32 channels, strided grouping for keys and contiguous for values, k-means
// initialisation on up to 100 000 sampled residuals, EMA with decay 0.99 and
// Laplace epsilon 1e-5. Options beyond the paper are off in the "paper" preset.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/dump/dump.h"

namespace kvq {

enum class Grouping { Contiguous, Strided };
enum class KMeansInit { RandomPoints, PlusPlus, Progressive };

const char* groupingName(Grouping grouping);      // "contiguous", "strided"
Grouping parseGrouping(const std::string& name);  // throws BadInput
const char* kmeansInitName(KMeansInit init);      // "points", "kmeans++", "progressive"

struct RvqConfig {
  std::string preset = "paper";
  int codebookSize = 2048;  // C entries per stage
  int depth = 8;            // K stages
  int groupSize = 32;       // g channels per group; must divide head_dim
  Grouping keyGrouping = Grouping::Strided;
  Grouping valueGrouping = Grouping::Contiguous;
  bool perHead = false;  // one quantizer per head instead of one per layer and kind

  // Training data: group vectors of the training tokens, subsampled to at most this.
  int64_t trainSample = 100000;
  // k-means initialisation of each stage on the residuals of the sample.
  KMeansInit init = KMeansInit::RandomPoints;
  int kmeansIterations = 10;
  // EMA refinement of each stage: `emaSteps` mini-batches of `batchSize` vectors.
  double emaDecay = 0.99;
  double emaEpsilon = 1e-5;
  int emaSteps = 100;
  int64_t batchSize = 16384;
  // Beyond the paper (off in "paper"): restart entries whose EMA count falls below
  // deadThreshold from random residuals; Lloyd iterations after EMA.
  double deadThreshold = 0.0;
  int lloydIterations = 0;

  // Encoding: 1 = greedy (the paper); > 1 = beam search with this width.
  int beamWidth = 1;

  // Held-out evaluation: this fraction of each sequence's tokens (its tail) is
  // kept out of training and used for every reported metric. 0 = train on all.
  double heldOutFraction = 0.25;
  uint64_t seed = 0;

  Grouping grouping(Kind kind) const { return kind == Kind::Keys ? keyGrouping : valueGrouping; }
};

// Named presets: "paper" (the defaults above), "fast" (small sample, few steps:
// interactive exploration), "quality" (dead-entry reseeding, Lloyd refinement,
// beam 4). Throws Error(BadInput) on an unknown name.
RvqConfig presetConfig(const std::string& name);
std::vector<std::string> presetNames();

// Throws Error(BadInput, "", "<option>", problem) when a setting is invalid for a
// dump of head dimension headDim (g must divide headDim, C >= 2, K >= 1, ...).
void validateConfig(const RvqConfig& config, int headDim);

// Bits per channel of the compressed cache, b = K*log2(C)/g + 16/D, and the
// compression ratio against fp16, 16/b (docs/metrics.md).
double rvqBitsPerChannel(int codebookSize, int depth, int groupSize, int headDim);
double compressionRatio(double bitsPerChannel);

}  // namespace kvq

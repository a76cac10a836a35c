#include "kvq/rvq/rvq_config.h"

#include <cmath>

#include "kvq/base/error.h"

namespace kvq {

const char* groupingName(Grouping grouping) {
  return grouping == Grouping::Strided ? "strided" : "contiguous";
}

Grouping parseGrouping(const std::string& name) {
  if (name == "contiguous") return Grouping::Contiguous;
  if (name == "strided" || name == "non-contiguous") return Grouping::Strided;
  throwBadInput("", "--grouping", "unknown grouping '" + name + "' (expected contiguous or strided)");
}

const char* kmeansInitName(KMeansInit init) {
  switch (init) {
    case KMeansInit::PlusPlus:
      return "kmeans++";
    case KMeansInit::Progressive:
      return "progressive";
    case KMeansInit::RandomPoints:
      break;
  }
  return "points";
}

std::vector<std::string> presetNames() {
  return {"paper", "fast", "quality"};
}

RvqConfig presetConfig(const std::string& name) {
  RvqConfig config;
  config.preset = name;
  if (name == "paper") {
    // The reference implementation (iankur/vqllm) runs scipy kmeans2 (10 iterations,
    // minit="points") on <= 100 000 residuals, then one EMA update per optimizer step
    // for max_steps_per_epoch = 200 steps. Its mini-batch (8 packed sequences of 8192
    // tokens, all heads and groups: ~2M group vectors) is far beyond a CPU's budget;
    // 16384 random vectors of the sample per step is the largest batch that keeps a
    // paper-setting quantizer under a minute here (docs/engine.md).
    config.emaSteps = 200;
    config.batchSize = 16384;
    return config;
  }
  if (name == "fast") {
    // Interactive exploration: a small sample, short k-means, a few EMA steps.
    config.trainSample = 20000;
    config.kmeansIterations = 5;
    config.emaSteps = 20;
    config.batchSize = 4096;
    return config;
  }
  if (name == "quality") {
    // Beyond the paper: k-means++ seeding, dead-entry reseeding (entries whose EMA
    // count falls below 3 % of the mean count restart at random residuals), Lloyd
    // refinement after EMA, and beam-4 encoding.
    config.init = KMeansInit::PlusPlus;
    config.emaSteps = 100;
    config.batchSize = 16384;
    config.deadThreshold = 0.03;
    config.lloydIterations = 3;
    config.beamWidth = 4;
    return config;
  }
  throwBadInput("", "--preset", "unknown preset '" + name + "' (expected paper, fast or quality)");
}

void validateConfig(const RvqConfig& config, int headDim) {
  auto bad = [](const char* option, const std::string& problem) { throwBadInput("", option, problem); };
  if (config.codebookSize < 2) bad("--codebook-size", "must be at least 2");
  if (config.codebookSize > (1 << 24)) bad("--codebook-size", "must be at most 16777216");
  if (config.depth < 1) bad("--depth", "must be at least 1");
  if (config.depth > 64) bad("--depth", "must be at most 64");
  if (config.groupSize < 1) bad("--group-size", "must be at least 1");
  if (headDim > 0 && headDim % config.groupSize != 0) {
    bad("--group-size", "group size " + std::to_string(config.groupSize) + " does not divide head_dim " +
                            std::to_string(headDim));
  }
  if (config.trainSample < config.codebookSize) {
    bad("--train-sample", "must be at least the codebook size (" + std::to_string(config.codebookSize) + ")");
  }
  if (config.kmeansIterations < 0) bad("--kmeans-iterations", "must be >= 0");
  if (!(config.emaDecay >= 0.0 && config.emaDecay < 1.0)) bad("--ema-decay", "must be in [0, 1)");
  if (!(config.emaEpsilon > 0.0) || !std::isfinite(config.emaEpsilon)) bad("--ema-epsilon", "must be > 0");
  if (config.emaSteps < 0) bad("--ema-steps", "must be >= 0");
  if (config.batchSize < 1) bad("--batch-size", "must be at least 1");
  if (!(config.deadThreshold >= 0.0) || !std::isfinite(config.deadThreshold)) {
    bad("--dead-threshold", "must be >= 0");
  }
  if (config.lloydIterations < 0) bad("--lloyd-iterations", "must be >= 0");
  if (config.beamWidth < 1) bad("--beam", "must be at least 1");
  if (config.beamWidth > 64) bad("--beam", "must be at most 64");
  if (!(config.heldOutFraction >= 0.0 && config.heldOutFraction < 1.0)) {
    bad("--held-out", "must be in [0, 1)");
  }
}

double rvqBitsPerChannel(int codebookSize, int depth, int groupSize, int headDim) {
  return depth * std::log2(static_cast<double>(codebookSize)) / groupSize + 16.0 / headDim;
}

double compressionRatio(double bitsPerChannel) {
  return 16.0 / bitsPerChannel;
}

}  // namespace kvq

#include "kvq/study/work_estimate.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace kvq {

double trainingWork(const RvqConfig& config, int64_t n) {
  const double ns = static_cast<double>(std::min(std::max<int64_t>(n, 0), config.trainSample));
  const double batch = std::min(static_cast<double>(config.batchSize), ns);
  const double perStage =
      (config.kmeansIterations + config.lloydIterations + 2) * ns + config.emaSteps * batch;
  return perStage * config.codebookSize * config.groupSize * config.depth;
}

double studyWork(const RvqConfig& config, const DumpInfo& info, int layers, int kinds, int64_t trainTokens,
                 int64_t heldOutTokens) {
  if (config.groupSize <= 0 || info.headDim % config.groupSize != 0) return 0.0;
  const int64_t groups = info.headDim / config.groupSize;
  const int quantizers = config.perHead ? info.numKvHeads : 1;
  const int64_t trainVectors = trainTokens * (config.perHead ? 1 : info.numKvHeads) * groups;
  const double train = quantizers * trainingWork(config, trainVectors);
  const double evalVectors =
      static_cast<double>(heldOutTokens) * info.numKvHeads * static_cast<double>(groups);
  const double eval =
      evalVectors * config.codebookSize * config.groupSize * config.depth * std::max(1, config.beamWidth);
  return static_cast<double>(layers) * kinds * (train + eval);
}

double attentionWork(const RvqConfig& config, const AttentionOptions& options, const DumpInfo& info,
                     int layers, int64_t heldOutTokens, const std::vector<int>& baselineBits) {
  if (!options.enabled || layers <= 0 || info.tokens <= 0 || heldOutTokens <= 0) return 0.0;
  const double tokens = static_cast<double>(info.tokens);
  const double encode = 2.0 * info.numKvHeads * tokens * info.headDim * config.depth * config.codebookSize *
                        std::max(1, config.beamWidth);
  const double queries = options.queriesPerLayer > 0
                             ? static_cast<double>(std::min(options.queriesPerLayer, heldOutTokens))
                             : static_cast<double>(heldOutTokens);
  const double sequences = static_cast<double>(std::max<size_t>(1, info.sequenceStarts.size()));
  const double visible = (tokens - 0.5 * static_cast<double>(heldOutTokens)) / sequences;
  const auto rvq = static_cast<double>(options.rvqDepths.empty() ? 1 : options.rvqDepths.size());
  const double kivi = static_cast<double>(baselineBits.size()) * (options.kiviWindow ? 2 : 1);
  const double methods = 1 + rvq + kivi + (options.includeExact ? 1 : 0);  // 1: the reference
  const double attend = queries * info.numQHeads * visible * info.headDim * 2 * methods;
  return static_cast<double>(layers) * (encode + attend);
}

double measureThroughput(Backend& backend) {
  constexpr int64_t kVectors = 16384;
  constexpr int kDim = 32;
  constexpr int kEntries = 256;
  std::mt19937_64 rng(12345);
  std::normal_distribution<float> normal;
  std::vector<float> x(static_cast<size_t>(kVectors) * kDim);
  std::vector<float> codebook(static_cast<size_t>(kEntries) * kDim);
  for (float& v : x) v = normal(rng);
  for (float& v : codebook) v = normal(rng);
  std::vector<int32_t> codes(static_cast<size_t>(kVectors));
  double best = 0.0;
  for (int run = 0; run < 3; ++run) {
    const auto start = std::chrono::steady_clock::now();
    backend.nearest(x.data(), kVectors, codebook.data(), kEntries, kDim, codes.data(), nullptr);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (run == 0 || seconds < best) best = seconds;
  }
  const double work = static_cast<double>(kVectors) * kEntries * kDim;
  return work / std::max(best, 1e-9);
}

RvqConfig previewConfig(const RvqConfig& config) {
  RvqConfig preview = config;
  // A sample of a few vectors per entry is enough to place the entries roughly.
  const int64_t sample = std::max<int64_t>(int64_t{4} * config.codebookSize, 8192);
  preview.trainSample = std::min(config.trainSample, sample);
  preview.kmeansIterations = std::min(config.kmeansIterations, 4);
  preview.emaSteps = std::min(config.emaSteps, 16);
  preview.batchSize = std::min<int64_t>(config.batchSize, preview.trainSample);
  preview.lloydIterations = 0;
  return preview;
}

std::vector<int> neighbourSizes(int c, int minSize, int maxSize) {
  std::vector<int> sizes;
  if (c <= 0) return sizes;
  for (int64_t step = 2;; step *= 2) {
    const int64_t below = c / step;
    const int64_t above = static_cast<int64_t>(c) * step;
    const bool belowFits = below >= minSize && below * step == c;
    const bool aboveFits = above <= maxSize;
    if (!belowFits && !aboveFits) break;
    if (belowFits) sizes.push_back(static_cast<int>(below));
    if (aboveFits) sizes.push_back(static_cast<int>(above));
  }
  return sizes;
}

double studyBytes(const RvqConfig& config, int quantizers) {
  const double entries = static_cast<double>(config.depth) * config.codebookSize;
  return quantizers * (entries * config.groupSize * sizeof(float) + entries * sizeof(int64_t));
}

}  // namespace kvq

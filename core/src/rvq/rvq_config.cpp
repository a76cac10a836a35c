#include "kvq/rvq/rvq_config.h"

#include <cmath>

#include "kvq/base/error.h"

namespace kvq {

template <>
const std::vector<EnumName<Grouping>>& enumNames<Grouping>() {
  static const std::vector<EnumName<Grouping>> names = {{Grouping::Contiguous, "contiguous"},
                                                        {Grouping::Strided, "strided"},
                                                        {Grouping::Strided, "non-contiguous"}};
  return names;
}

template <>
const std::vector<EnumName<KMeansInit>>& enumNames<KMeansInit>() {
  static const std::vector<EnumName<KMeansInit>> names = {{KMeansInit::RandomPoints, "points"},
                                                          {KMeansInit::PlusPlus, "kmeans++"},
                                                          {KMeansInit::Progressive, "progressive"}};
  return names;
}

const char* groupingName(Grouping grouping) {
  return nameOf(grouping);
}

Grouping parseGrouping(const std::string& name, const std::string& field) {
  return parseName<Grouping>(name, field);
}

const char* kmeansInitName(KMeansInit init) {
  return nameOf(init);
}

KMeansInit parseKMeansInit(const std::string& name, const std::string& field) {
  return parseName<KMeansInit>(name, field);
}

const FieldTable<RvqConfig>& rvqConfigTable() {
  static const FieldTable<RvqConfig> table = rvqConfigFields<RvqConfig>();
  return table;
}

std::vector<std::string> presetNames() {
  return {"paper", "fast", "quality", "budget", "model-loss"};
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
  if (name == "budget") {
    // Beyond the paper, for a bit budget (kvq allocate, docs/model.md): small codebooks that
    // generalise to other text (C = 2048, g = 32 lose 8 dB from training to held-out text on
    // SmolLM2; C = 256, g = 8 lose < 0.5 dB, docs/real-data.md) and cost 1 bit per channel per
    // stage, so the allocation can give each layer x kind 1..4 bits in whole-bit steps.
    config.codebookSize = 256;
    config.groupSize = 8;
    config.depth = 4;
    config.emaSteps = 50;
    config.batchSize = 16384;
    return config;
  }
  if (name == "model-loss") {
    // budget plus every lever that lowered the model's loss on other text (docs/real-data.md,
    // issue 15): centred channels, query-aware keys (the dump must store queries), beam-4
    // encoding, and a sample of 200 000 group vectors (all of two 4096-token SmolLM2 dumps).
    config = presetConfig("budget");
    config.preset = name;
    config.centerChannels = true;
    config.queryAware = true;
    config.beamWidth = 4;
    config.trainSample = 200000;
    return config;
  }
  throwUnknownName("preset", name, presetNames());
}

void validateConfig(const RvqConfig& config, int headDim) {
  validateFields(rvqConfigTable(), config);
  if (headDim > 0 && headDim % config.groupSize != 0) {
    throwBadInput("", "group_size",
                  "group size " + std::to_string(config.groupSize) + " does not divide head_dim " +
                      std::to_string(headDim));
  }
  if (config.trainSample < config.codebookSize) {
    throwBadInput("", "train_sample",
                  "must be at least the codebook size (" + std::to_string(config.codebookSize) + ")");
  }
}

double rvqBitsPerChannel(int codebookSize, int depth, int groupSize, int headDim) {
  return depth * std::log2(static_cast<double>(codebookSize)) / groupSize + 16.0 / headDim;
}

double compressionRatio(double bitsPerChannel) {
  return 16.0 / bitsPerChannel;
}

}  // namespace kvq

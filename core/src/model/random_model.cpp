#include "kvq/model/random_model.h"

#include <cmath>
#include <random>

#include "kvq/base/error.h"

namespace kvq {

namespace {

std::vector<float> normal(std::mt19937_64& rng, int64_t n, double stddev) {
  std::normal_distribution<float> dist(0.0f, static_cast<float>(stddev));
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// A matrix [rows, cols] whose products keep the scale of their input.
std::vector<float> matrix(std::mt19937_64& rng, int64_t rows, int64_t cols) {
  return normal(rng, rows * cols, 1.0 / std::sqrt(static_cast<double>(cols)));
}

}  // namespace

std::unique_ptr<DecoderModel> makeRandomDecoderModel(ModelConfig config, uint64_t seed) {
  ModelConfig& c = config;
  if (c.numLayers <= 0 || c.hidden <= 0 || c.numQHeads <= 0 || c.numKvHeads <= 0 || c.headDim <= 0 ||
      c.ffn <= 0 || c.vocab <= 0 || c.numQHeads % c.numKvHeads != 0 || c.rope.dim <= 0 ||
      c.rope.dim % 2 != 0 || c.rope.dim > c.headDim) {
    throwBadInput("", "random model", "shapes the pass cannot run");
  }
  if (c.architecture.empty()) c.architecture = "llama";
  if (c.name.empty()) c.name = "random";
  auto model = std::make_unique<DecoderModel>();
  model->path = "(random weights, seed " + std::to_string(seed) + ")";
  std::mt19937_64 rng(seed);
  const int64_t h = c.hidden, f = c.ffn, qWidth = static_cast<int64_t>(c.numQHeads) * c.headDim;
  model->embedding = normal(rng, static_cast<int64_t>(c.vocab) * h, 1.0);
  for (int l = 0; l < c.numLayers; ++l) {
    LayerWeights w;
    w.attnNorm.assign(static_cast<size_t>(h), 1.0f);
    w.wqkv = matrix(rng, c.qkvRows(), h);
    if (c.qkvBias) w.bqkv = normal(rng, c.qkvRows(), 0.01);
    w.wo = matrix(rng, h, qWidth);
    if (c.outputBias) w.bo = normal(rng, h, 0.01);
    w.ffnNorm.assign(static_cast<size_t>(h), 1.0f);
    w.wGateUp = matrix(rng, 2 * f, h);
    w.wDown = matrix(rng, h, f);
    model->layers.push_back(std::move(w));
  }
  model->outputNorm.assign(static_cast<size_t>(h), 1.0f);
  if (!c.tiedOutput) model->output = normal(rng, static_cast<int64_t>(c.vocab) * h, 1.0);
  model->config = std::move(config);
  return model;
}

ModelConfig decoderConfig(const DecoderShape& shape) {
  ModelConfig c;
  c.numLayers = shape.layers;
  c.hidden = shape.hidden;
  c.numQHeads = shape.qHeads;
  c.numKvHeads = shape.kvHeads;
  c.headDim = shape.headDim;
  c.ffn = shape.ffn;
  c.vocab = shape.vocab;
  c.rope.dim = shape.headDim;
  return c;
}

ModelConfig smolLm2Config() {
  ModelConfig c = decoderConfig(
      {.layers = 30, .hidden = 576, .qHeads = 9, .kvHeads = 3, .headDim = 64, .ffn = 1536, .vocab = 49152});
  c.architecture = "llama";
  c.name = "SmolLM2-135M shapes";
  c.rmsEps = 1e-5;
  c.rope.theta = 100000.0;
  c.tiedOutput = true;
  return c;
}

}  // namespace kvq

// Synthetic dumps with LLM-like structure — for tests and scale checks only.
//
// Keys: near-Gaussian channels, a few channels with large magnitude (outliers),
// rotary-like pairs (channel i and i+D/2 share a slowly varying phase).
// Values: near-Gaussian, milder per-channel scale spread. Deterministic in seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/dump/dump.h"

namespace kvq {

struct SynthOptions {
  int layers = 4;
  int kvHeads = 2;
  int headDim = 64;
  int64_t tokens = 2048;
  uint64_t seed = 1;
  DType dtype = DType::Float16;
  bool queries = false;
};

// Generates one layer's keys and values ([tokens, kvHeads, headDim]).
void synthLayer(const SynthOptions& options, int layer, Slab& keys, Slab& values);
// Generates one layer's queries ([tokens, kvHeads, headDim]; same structure as keys,
// their own outliers and noise).
void synthQueries(const SynthOptions& options, int layer, Slab& queries);
// The key outlier channels of one layer and head, ascending (2-4 of them, fewer
// when headDim < 8): the channels given a large offset (5-20x the others).
std::vector<int> synthKeyOutlierChannels(const SynthOptions& options, int layer, int head);
// Writes a complete dump (model = "synthetic (kvq synth)", source names the
// generator + seed, key_rope "post", rope_theta 10000, rope_dim = headDim).
void writeSynthDump(const std::string& path, const SynthOptions& options);

}  // namespace kvq

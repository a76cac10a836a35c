// Codebooks of one residual quantizer (K stages of C entries of g floats), and
// the quantizers of one layer x kind as a codebook file stores them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvq/dump/dump.h"

namespace kvq {

struct Codebooks {
  int depth = 0;            // K
  int size = 0;             // C
  int dim = 0;              // g
  std::vector<float> data;  // [K, C, g] row-major

  Codebooks() = default;
  Codebooks(int k, int c, int g) : depth(k), size(c), dim(g), data(static_cast<size_t>(k) * c * g, 0.0f) {}

  float* stage(int k) { return data.data() + static_cast<size_t>(k) * size * dim; }
  const float* stage(int k) const { return data.data() + static_cast<size_t>(k) * size * dim; }
  const float* entry(int k, int i) const { return stage(k) + static_cast<size_t>(i) * dim; }
};

// Trained quantizers of one layer x kind, as stored in a codebook file.
struct QuantizerSet {
  int layer = 0;
  Kind kind = Kind::Keys;
  std::vector<int> channelOrder;      // [D]
  std::vector<float> channelWeights;  // [D] weights of scaleAndGroup (dump channel order); empty = none
  std::vector<Codebooks> codebooks;   // [1] shared, or [H] per head
  std::vector<float> channelMeans;    // [H, D] means of scaleAndGroup (dump channel order); empty = none
};

}  // namespace kvq

// Codebooks of one residual quantizer: K stages of C entries of g floats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

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

}  // namespace kvq

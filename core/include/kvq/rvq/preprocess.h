// Preprocessing of token-head vectors into group vectors (docs/metrics.md §1-2).
//
// Channel order: a permutation of the D channels such that group j consists of
// positions j*g ... j*g+g-1 of the permuted vector. contiguous: identity;
// strided (the paper's "non-contiguous", for keys): group j = {j, j+G, j+2G, ...}
// with G = D/g.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvq/rvq/rvq_config.h"

namespace kvq {

// order: [D]; permuted[p] = x[order[p]]. Throws BadInput if g does not divide D.
std::vector<int> channelOrder(int headDim, int groupSize, Grouping grouping);

// Sample standard deviation (D-1 denominator) of x: [D], rounded to fp16; 0 -> 1.
float vectorScale(const float* x, int headDim);

// Scales and groups n vectors.
//   x:       [n, D] row-major float32 (token-head vectors)
//   order:   [D] from channelOrder
//   groups:  [n * D/g, g] out; row i*G + j is group j of vector i, divided by scale
//   scales:  [n] out; the fp16-rounded per-vector scale (of the weighted vector)
//   weights: [D] per-channel weights w (dump channel order, all > 0) or nullptr (= all 1).
//            Each vector is multiplied by w channel-wise before scaling, so that plain squared
//            error in the grouped space is the weighted error sum_c w_c^2 (x_c - x~_c)^2 of the
//            original (query-aware keys: w_c^2 = E[q_c^2], docs/metrics.md).
//   means:   [meanRows, D] channel means mu (dump channel order) or nullptr (= 0): vector i is
//            centred by row i % meanRows before weighting and scaling, (x - mu) * w / s. Token-major
//            vectors of H heads pass the [H, D] means with meanRows = H; one head's vectors pass
//            that head's row with meanRows = 1 (centre_channels, docs/metrics.md).
void scaleAndGroup(const float* x, int64_t n, int headDim, const std::vector<int>& order, int groupSize,
                   float* groups, float* scales, const float* weights = nullptr, const float* means = nullptr,
                   int meanRows = 1);

// Inverse of scaleAndGroup: x[i, order[p]] = scales[i] * groups[i*G + p/g, p%g] / weights[order[p]]
// + means[i % meanRows, order[p]].
void ungroupAndUnscale(const float* groups, const float* scales, int64_t n, int headDim,
                       const std::vector<int>& order, int groupSize, float* x, const float* weights = nullptr,
                       const float* means = nullptr, int meanRows = 1);

// The weights argument of a quantizer's channel weights: nullptr when it has none.
inline const float* weightsOrNull(const std::vector<float>& weights) {
  return weights.empty() ? nullptr : weights.data();
}

// The means argument of a quantizer set's channel means: nullptr when it has none.
inline const float* meansOrNull(const std::vector<float>& means) {
  return means.empty() ? nullptr : means.data();
}

// The [H, D] means of one head's row (for one head's vectors, meanRows = 1): nullptr when none.
inline const float* headMeansOrNull(const std::vector<float>& means, int head, int headDim) {
  return means.empty() ? nullptr : means.data() + static_cast<size_t>(head) * static_cast<size_t>(headDim);
}

// Throws Error(BadInput, file, where, ...) unless weights is empty or holds headDim positive
// finite numbers.
void checkChannelWeights(const std::vector<float>& weights, int headDim, const std::string& file,
                         const std::string& where);

// Throws Error(BadInput, file, where, ...) unless means is empty or holds heads x headDim finite
// numbers.
void checkChannelMeans(const std::vector<float>& means, int heads, int headDim, const std::string& file,
                       const std::string& where);

}  // namespace kvq

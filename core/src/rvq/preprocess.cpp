#include "kvq/rvq/preprocess.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kvq/base/error.h"
#include "kvq/base/half.h"

namespace kvq {

std::vector<int> channelOrder(int headDim, int groupSize, Grouping grouping) {
  if (groupSize < 1 || headDim < 1 || headDim % groupSize != 0) {
    throwBadInput(
        "", "group_size",
        "group size " + std::to_string(groupSize) + " does not divide head_dim " + std::to_string(headDim));
  }
  const int groups = headDim / groupSize;
  std::vector<int> order(static_cast<size_t>(headDim));
  for (int p = 0; p < headDim; ++p) {
    const int j = p / groupSize;  // group
    const int t = p % groupSize;  // position inside the group
    order[static_cast<size_t>(p)] = grouping == Grouping::Contiguous ? p : j + t * groups;
  }
  return order;
}

float vectorScale(const float* x, int headDim) {
  if (headDim < 2) return 1.0f;  // the sample std is undefined; leave the vector unscaled
  // Two passes in double: the mean, then the sum of squared deviations (stable).
  double mean = 0.0;
  for (int c = 0; c < headDim; ++c) mean += x[c];
  mean /= headDim;
  double ss = 0.0;
  for (int c = 0; c < headDim; ++c) {
    const double d = x[c] - mean;
    ss += d * d;
  }
  // The scale is stored in fp16: saturate at its largest finite value, 65504, so a
  // vector with a larger std gets a finite (if coarse) scale instead of inf -> NaN.
  const float s = roundToHalf(static_cast<float>(std::min(std::sqrt(ss / (headDim - 1)), 65504.0)));
  // A constant vector (or a std below fp16's smallest subnormal) has s = 0: use 1.
  return s == 0.0f ? 1.0f : s;
}

void scaleAndGroup(const float* x, int64_t n, int headDim, const std::vector<int>& order, int groupSize,
                   float* groups, float* scales, const float* weights, const float* means, int meanRows) {
  (void)groupSize;  // group j of vector i is positions j*g..j*g+g-1: rows of g follow each other
  std::vector<float> prepared(weights != nullptr || means != nullptr ? static_cast<size_t>(headDim) : 0);
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * headDim;
    if (!prepared.empty()) {  // centred, then weighted: sum_c w_c^2 (x_c - x~_c)^2 becomes plain MSE
      const float* mu = means != nullptr ? means + (i % meanRows) * headDim : nullptr;
      for (int c = 0; c < headDim; ++c) {
        const float centred = mu != nullptr ? xi[c] - mu[c] : xi[c];
        prepared[static_cast<size_t>(c)] = weights != nullptr ? centred * weights[c] : centred;
      }
      xi = prepared.data();
    }
    const float s = vectorScale(xi, headDim);
    scales[i] = s;
    float* out = groups + i * headDim;  // G rows of g = D floats per vector
    for (int p = 0; p < headDim; ++p) out[p] = xi[order[static_cast<size_t>(p)]] / s;
  }
}

void ungroupAndUnscale(const float* groups, const float* scales, int64_t n, int headDim,
                       const std::vector<int>& order, int groupSize, float* x, const float* weights,
                       const float* means, int meanRows) {
  (void)groupSize;
  for (int64_t i = 0; i < n; ++i) {
    const float* in = groups + i * headDim;
    float* xi = x + i * headDim;
    for (int p = 0; p < headDim; ++p) xi[order[static_cast<size_t>(p)]] = scales[i] * in[p];
    if (weights != nullptr) {
      for (int c = 0; c < headDim; ++c) xi[c] /= weights[c];
    }
    if (means != nullptr) {
      const float* mu = means + (i % meanRows) * headDim;
      for (int c = 0; c < headDim; ++c) xi[c] += mu[c];
    }
  }
}

void checkChannelWeights(const std::vector<float>& weights, int headDim, const std::string& file,
                         const std::string& where) {
  if (weights.empty()) return;
  if (static_cast<int>(weights.size()) != headDim) {
    throwBadInput(
        file, where,
        std::to_string(weights.size()) + " channel weights, but head_dim is " + std::to_string(headDim));
  }
  for (size_t c = 0; c < weights.size(); ++c) {
    if (!(std::isfinite(weights[c]) && weights[c] > 0.0f)) {
      throwBadInput(file, where + " channel " + std::to_string(c),
                    "channel weight is not a positive finite number");
    }
  }
}

void checkChannelMeans(const std::vector<float>& means, int heads, int headDim, const std::string& file,
                       const std::string& where) {
  if (means.empty()) return;
  const size_t want = static_cast<size_t>(heads) * static_cast<size_t>(headDim);
  if (means.size() != want) {
    throwBadInput(file, where,
                  std::to_string(means.size()) + " channel means, but num_kv_heads x head_dim is " +
                      std::to_string(want));
  }
  for (size_t i = 0; i < means.size(); ++i) {
    if (!std::isfinite(means[i])) {
      throwBadInput(file,
                    where + " head " + std::to_string(i / static_cast<size_t>(headDim)) + " channel " +
                        std::to_string(i % static_cast<size_t>(headDim)),
                    "channel mean is not finite (NaN or Inf)");
    }
  }
}

}  // namespace kvq

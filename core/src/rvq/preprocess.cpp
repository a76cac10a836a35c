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
                   float* groups, float* scales) {
  (void)groupSize;  // group j of vector i is positions j*g..j*g+g-1: rows of g follow each other
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * headDim;
    const float s = vectorScale(xi, headDim);
    scales[i] = s;
    float* out = groups + i * headDim;  // G rows of g = D floats per vector
    for (int p = 0; p < headDim; ++p) out[p] = xi[order[static_cast<size_t>(p)]] / s;
  }
}

void ungroupAndUnscale(const float* groups, const float* scales, int64_t n, int headDim,
                       const std::vector<int>& order, int groupSize, float* x) {
  (void)groupSize;
  for (int64_t i = 0; i < n; ++i) {
    const float* in = groups + i * headDim;
    float* xi = x + i * headDim;
    for (int p = 0; p < headDim; ++p) xi[order[static_cast<size_t>(p)]] = scales[i] * in[p];
  }
}

}  // namespace kvq

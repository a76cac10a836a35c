#include "kvq/model/rope.h"

#include <cmath>

#include "kvq/base/error.h"

namespace kvq {

const char* ropeLayoutName(RopeLayout layout) {
  return layout == RopeLayout::Half ? "half" : "interleaved";
}

RopeLayout parseRopeLayout(const std::string& text, const std::string& where) {
  if (text == "half") return RopeLayout::Half;
  if (text == "interleaved") return RopeLayout::Interleaved;
  throwBadInput("", where, "\"" + text + "\" is not a RoPE layout (half, interleaved)");
}

std::vector<double> ropeInverseFrequencies(const RopeConfig& rope) {
  if (rope.dim <= 0 || rope.dim % 2 != 0)
    throwInternal("ropeInverseFrequencies", "rope dim must be even and > 0");
  const int half = rope.dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    double f = std::pow(rope.theta, -2.0 * i / rope.dim);
    if (rope.scaling == "linear") f /= rope.factor;
    if (!rope.freqFactors.empty()) f /= static_cast<double>(rope.freqFactors[static_cast<size_t>(i)]);
    inv[static_cast<size_t>(i)] = f;
  }
  return inv;
}

std::vector<int> channelsInLayout(RopeLayout layout, int dim, int headDim) {
  if (dim < 0 || dim % 2 != 0 || dim > headDim)
    throwInternal("channelsInLayout", "rope dim outside [0, head_dim]");
  std::vector<int> at(static_cast<size_t>(headDim));
  for (int c = 0; c < headDim; ++c) at[static_cast<size_t>(c)] = c;
  if (layout == RopeLayout::Interleaved) {
    const int half = dim / 2;
    for (int i = 0; i < half; ++i) {
      const int pair = i + half;
      at[static_cast<size_t>(i)] = 2 * i;
      at[static_cast<size_t>(pair)] = 2 * i + 1;
    }
  }
  return at;
}

void applyRope(float* x, int64_t tokens, int heads, int headDim, int64_t rowStride, int64_t firstPosition,
               const std::vector<double>& invFreq, RopeLayout layout) {
  const auto half = static_cast<int>(invFreq.size());
  if (2 * half > headDim) throwInternal("applyRope", "rope dim exceeds head_dim");
  // Pair i is channels (first(i), first(i) + step): (i, i + half) or (2i, 2i + 1).
  const bool interleaved = layout == RopeLayout::Interleaved;
  const int step = interleaved ? 1 : half;
  std::vector<float> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int64_t t = 0; t < tokens; ++t) {
    const auto pos = static_cast<double>(firstPosition + t);
    for (int i = 0; i < half; ++i) {
      const double angle = pos * invFreq[static_cast<size_t>(i)];
      cs[static_cast<size_t>(i)] = static_cast<float>(std::cos(angle));
      sn[static_cast<size_t>(i)] = static_cast<float>(std::sin(angle));
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + t * rowStride + static_cast<int64_t>(h) * headDim;
      for (int i = 0; i < half; ++i) {
        const int a = interleaved ? 2 * i : i;
        const float x1 = v[a], x2 = v[a + step];
        const float c = cs[static_cast<size_t>(i)], s = sn[static_cast<size_t>(i)];
        v[a] = x1 * c - x2 * s;
        v[a + step] = x2 * c + x1 * s;
      }
    }
  }
}

}  // namespace kvq

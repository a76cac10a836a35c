#include "kvq/attention/rope.h"

#include <cmath>
#include <string>

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

std::vector<double> ropeInverseFrequencies(double theta, int ropeDim) {
  if (!(theta > 0) || ropeDim <= 0 || ropeDim % 2 != 0)
    throwInternal("ropeInverseFrequencies", "needs theta > 0 and an even, positive rope_dim");
  std::vector<double> freq(static_cast<size_t>(ropeDim / 2));
  for (int i = 0; i < ropeDim / 2; ++i) freq[i] = std::pow(theta, -2.0 * i / ropeDim);
  return freq;
}

Rope ropeFromDump(const DumpInfo& info) {
  Rope rope;
  rope.layout = parseRopeLayout(info.ropeLayout, "rope_layout");
  if (!info.ropeInvFreq.empty()) {
    rope.invFreq = info.ropeInvFreq;
  } else if (info.ropeTheta) {
    rope.invFreq = ropeInverseFrequencies(*info.ropeTheta, info.ropeDim.value_or(info.headDim));
  } else {
    throwBadInput(
        info.path, "/",
        "keys are pre-RoPE but the dump has neither /rope_inv_freq nor rope_theta, so they cannot be "
        "rotated for attention");
  }
  return rope;
}

void applyRope(float* x, int64_t n, int heads, int dim, const int64_t* positions, const Rope& rope) {
  const int pairs = static_cast<int>(rope.invFreq.size());
  if (2 * pairs > dim) throwInternal("applyRope", "rope_dim exceeds the head dimension");
  const bool half = rope.layout == RopeLayout::Half;
  std::vector<float> cosines(static_cast<size_t>(pairs)), sines(static_cast<size_t>(pairs));
  for (int64_t t = 0; t < n; ++t) {
    for (int i = 0; i < pairs; ++i) {
      const double angle = static_cast<double>(positions[t]) * rope.invFreq[i];
      cosines[i] = static_cast<float>(std::cos(angle));
      sines[i] = static_cast<float>(std::sin(angle));
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * dim;
      for (int i = 0; i < pairs; ++i) {
        float& a = v[half ? i : 2 * i];
        float& b = v[half ? i + pairs : 2 * i + 1];
        const float c = cosines[i], s = sines[i];
        const float ra = a * c - b * s;
        const float rb = b * c + a * s;
        a = ra;
        b = rb;
      }
    }
  }
}

}  // namespace kvq

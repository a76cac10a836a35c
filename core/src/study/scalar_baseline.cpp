#include "kvq/study/scalar_baseline.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "kvq/base/error.h"
#include "kvq/base/half.h"

namespace kvq {

double scalarBitsPerChannel(int bits, int groupSize) {
  return bits + 32.0 / groupSize;
}

double kiviWindowBitsPerChannel(int bits, int groupSize, Kind kind, int window, int64_t tokens) {
  const double quantized = scalarBitsPerChannel(bits, groupSize);
  if (window <= 0 || tokens <= 0) return quantized;
  const int64_t full = kind == Kind::Keys ? tokens % window : std::min<int64_t>(window, tokens);
  const auto t = static_cast<double>(tokens), f = static_cast<double>(full);
  return ((t - f) * quantized + f * 16.0) / t;
}

void quantizeGroupAsymmetric(const float* x, int64_t n, int64_t stride, int bits, float* out) {
  if (n <= 0) return;
  float lo = x[0], hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, x[i * stride]);
    hi = std::max(hi, x[i * stride]);
  }
  const float levels = static_cast<float>((1 << bits) - 1);
  // Both are stored in fp16, so the reconstruction uses the rounded values; both are
  // clamped to fp16's finite range (+-65504) first, else a group beyond it would get
  // an inf scale and reconstruct as NaN (hi - lo in double: it may overflow float).
  constexpr double kHalfMax = 65504.0;
  const float scale =
      roundToHalf(static_cast<float>(std::min((static_cast<double>(hi) - lo) / levels, kHalfMax)));
  const float zero =
      roundToHalf(static_cast<float>(std::clamp(static_cast<double>(lo), -kHalfMax, kHalfMax)));
  for (int64_t i = 0; i < n; ++i) {
    float q = 0;
    if (scale > 0) q = std::clamp(std::nearbyint((x[i * stride] - zero) / scale), 0.0f, levels);
    out[i * stride] = q * scale + zero;
  }
}

namespace {

// Gives `out` the shape and token range of `in` (its values are then overwritten).
void shapeLike(const Slab& in, Slab& out) {
  out.tokenBegin = in.tokenBegin;
  out.tokens = in.tokens;
  out.heads = in.heads;
  out.dim = in.dim;
  out.data.resize(in.data.size());
}

}  // namespace

void kiviQuantizeKeys(const Slab& keys, const ScalarBaselineConfig& config, Slab& out) {
  shapeLike(keys, out);
  const int64_t stride = static_cast<int64_t>(keys.heads) * keys.dim;
  for (int64_t t0 = 0; t0 < keys.tokens; t0 += config.tokenGroup) {
    const int64_t n = std::min<int64_t>(config.tokenGroup, keys.tokens - t0);
    for (int h = 0; h < keys.heads; ++h) {
      for (int c = 0; c < keys.dim; ++c) {
        const int64_t offset = t0 * stride + static_cast<int64_t>(h) * keys.dim + c;
        quantizeGroupAsymmetric(keys.data.data() + offset, n, stride, config.bits, out.data.data() + offset);
      }
    }
  }
}

void kiviQuantizeValues(const Slab& values, const ScalarBaselineConfig& config, Slab& out) {
  shapeLike(values, out);
  const int64_t rows = values.tokens * values.heads;
  for (int64_t r = 0; r < rows; ++r) {
    for (int c0 = 0; c0 < values.dim; c0 += config.channelGroup) {
      const int64_t n = std::min(config.channelGroup, values.dim - c0);
      const int64_t offset = r * values.dim + c0;
      quantizeGroupAsymmetric(values.data.data() + offset, n, 1, config.bits, out.data.data() + offset);
    }
  }
}

void kiviQuantize(const Slab& in, Kind kind, const ScalarBaselineConfig& config, Slab& out) {
  if (kind == Kind::Keys) {
    kiviQuantizeKeys(in, config, out);
  } else {
    kiviQuantizeValues(in, config, out);
  }
}

void validateScalarBaseline(const ScalarBaselineConfig& config, int headDim) {
  if (config.bits < 1 || config.bits > 8) throwBadInput("", "baseline_bits", "bits must be in 1..8");
  if (config.tokenGroup < 1) throwBadInput("", "baseline_token_group", "must be at least 1");
  if (config.channelGroup < 1 || headDim % config.channelGroup != 0) {
    throwBadInput("", "baseline_channel_group",
                  "must divide head_dim " + std::to_string(headDim) + " (got " +
                      std::to_string(config.channelGroup) + ")");
  }
}

}  // namespace kvq

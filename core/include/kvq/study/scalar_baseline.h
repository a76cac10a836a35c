// KIVI-style scalar baseline (docs/metrics.md "Scalar baseline").
//
// Asymmetric uniform b-bit quantization with an fp16 scale and zero point per
// group: keys per channel over groups of n_t consecutive tokens, values per token
// over groups of n_c consecutive channels. Bits per channel = b + 32/n. KIVI's
// full-precision window of recent tokens is not modelled here (every token is
// quantized); kiviWindowBitsPerChannel counts its bits, the attention metrics and the
// model pass read the window's tokens at full precision.
#pragma once

#include <cstdint>

#include "kvq/dump/dump.h"

namespace kvq {

struct ScalarBaselineConfig {
  int bits = 2;           // b in 1..8
  int tokenGroup = 32;    // n_t: tokens per key group (KIVI: 32 or 128)
  int channelGroup = 32;  // n_c: channels per value group; must divide head_dim
};

// b + 32/n for the kind's group size (n_t for keys, n_c for values).
double scalarBitsPerChannel(int bits, int groupSize);

// Bits per channel of one kind of a KIVI cache holding a sequence of `tokens` tokens
// with KIVI's full-precision recent window R (`window`; 0 = none): the F tokens held at
// full precision cost 16 bits, the others b + 32/n. Keys are quantized R tokens at a
// time, so F = tokens mod R of them are full precision; values leave the window one
// at a time, so F = min(R, tokens) (docs/metrics.md), as the model pass counts them
// (cache_quantizer.cpp, which adds its exact sinks).
double kiviWindowBitsPerChannel(int bits, int groupSize, Kind kind, int window, int64_t tokens);

// Quantizes one group of n values read with a stride, writing the dequantized
// values to out (same stride). min/max over the group give
//   scale = fp16((max - min) / (2^b - 1)), zero = fp16(min),
//   q = clamp(round((x - zero) / scale), 0, 2^b - 1), out = q * scale + zero
// (scale 0 -> every value becomes zero).
void quantizeGroupAsymmetric(const float* x, int64_t n, int64_t stride, int bits, float* out);

// Keys: slab [t, H, D]; for each head and channel, groups of tokenGroup tokens
// starting at the slab's first token (a shorter last group keeps its own scale).
// out receives the dequantized slab (same shape).
void kiviQuantizeKeys(const Slab& keys, const ScalarBaselineConfig& config, Slab& out);
// Values: slab [t, H, D]; for each token and head, groups of channelGroup channels.
void kiviQuantizeValues(const Slab& values, const ScalarBaselineConfig& config, Slab& out);
// Dispatches on kind (Keys -> per channel, otherwise per token).
void kiviQuantize(const Slab& in, Kind kind, const ScalarBaselineConfig& config, Slab& out);

// Throws Error(BadInput) naming the StudyOptions field ("baseline_bits", ...) when invalid.
void validateScalarBaseline(const ScalarBaselineConfig& config, int headDim);

}  // namespace kvq

// Rotary position embedding (RoPE), the one rotation of core: pair i turns by position *
// invFreq[i]. Pairs in the Hugging Face channel layout ("rotate_half", the default): within
// each head, channel i (< dim/2) pairs with channel i + dim/2; or interleaved (GPT-J,
// llama.cpp's own row order): channels 2i and 2i + 1. Channels dim..D-1 (partial rotary
// embeddings) pass through unchanged. Shared by the model pass and the attention metrics
// (kvq/attention/dump_rope.h says which rotation a dump describes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvq {

enum class RopeLayout {
  Half,        // pair i = channels (i, i + dim/2): Hugging Face / GPT-NeoX "rotate_half"
  Interleaved  // pair i = channels (2i, 2i + 1)
};
const char* ropeLayoutName(RopeLayout layout);  // "half", "interleaved"
// Throws Error(BadInput) naming `where` for anything but "half" / "interleaved".
RopeLayout parseRopeLayout(const std::string& text, const std::string& where);

struct RopeConfig {
  double theta = 10000.0;  // base of the frequencies
  int dim = 0;             // rotated channels per head (even, <= head_dim)
  // Scaling: "none", or "linear" (positions divided by factor, i.e. every frequency divided by
  // it). Llama-3-style per-frequency factors (GGUF tensor rope_freqs.weight) divide invFreq[i]
  // by freqFactors[i].
  std::string scaling = "none";
  double factor = 1.0;
  std::vector<float> freqFactors;  // [] or [dim/2]
};

// invFreq[i] = theta^(-2i/dim) / factor / freqFactors[i], i < dim/2, in double.
std::vector<double> ropeInverseFrequencies(const RopeConfig& rope);

// Where each Hugging Face ("half") channel of a head sits in `layout`: [headDim], entry c is
// the channel of `layout` that holds half channel c. Interleaved: half channel i (< dim/2) is
// 2i and half channel i + dim/2 is 2i + 1 (llama.cpp's q/k row permutation); channels
// dim..headDim-1, and every channel of Half, stay where they are.
std::vector<int> channelsInLayout(RopeLayout layout, int dim, int headDim);

// Rotates x in place.
//   x:        [tokens, heads, rowStride/..] row-major float32; token t's head h starts at
//             x + t * rowStride + h * headDim
//   invFreq:  [dim/2] from ropeInverseFrequencies (dim = 2 * invFreq.size() <= headDim)
//   position of token t = firstPosition + t
//   layout:   which channels pair up
// cos/sin of position * invFreq[i] are computed in double and rounded to float; the rotation
// itself is float32: (x1 cos - x2 sin, x2 cos + x1 sin).
void applyRope(float* x, int64_t tokens, int heads, int headDim, int64_t rowStride, int64_t firstPosition,
               const std::vector<double>& invFreq, RopeLayout layout = RopeLayout::Half);

}  // namespace kvq
